"""A backlog row's `data`: the task's attempt, and on rows written by Hourglass before a pinned run's tasks
went to their version's own queue (versioning.py), the version the run was pinned to.

Such rows ("3|deployment:build") still read: the matching engine moves the task to that version's queue
when it comes out of the backlog, so an upgrade loses no pinned task. New rows hold just the attempt, and
"3|~" marks an unpinned task that routing put on a version's queue: when that version stops being current
or ramping, only such tasks move on to where the task queue routes now (a row without the mark, pinned or
written before the mark existed, stays with its version).
"""

from __future__ import annotations

_SEPARATOR = b"|"
_ROUTED = b"~"


def encode(attempt: int, pinned: str = "", routed: bool = False) -> bytes:
    """A backlog row's `data` ("3"; "3|deployment:build" only for a task read from such an old row; "3|~"
    for an unpinned task routed to a version's queue)."""
    data = str(attempt).encode()
    if pinned:
        return data + _SEPARATOR + pinned.encode()
    return data + _SEPARATOR + _ROUTED if routed else data


def decode(data: bytes) -> tuple[int, str]:
    """(attempt, pinned version or "") of a backlog row, old or new."""
    attempt, _, pinned = (data or b"0").partition(_SEPARATOR)
    return int(attempt or b"0"), "" if pinned == _ROUTED else pinned.decode()


def routed(data: bytes) -> bool:
    """Whether the row is an unpinned task that routing put on a version's queue."""
    return (data or b"").partition(_SEPARATOR)[2] == _ROUTED
