"""A backlog row's `data`: the task's attempt, and on rows written by Hourglass before a pinned run's tasks
went to their version's own queue (versioning.py), the version the run was pinned to.

Such rows ("3|deployment:build") still read: the matching engine moves the task to that version's queue
when it comes out of the backlog, so an upgrade loses no pinned task. New rows hold just the attempt.
"""

from __future__ import annotations

_SEPARATOR = b"|"


def encode(attempt: int, pinned: str = "") -> bytes:
    """A backlog row's `data` ("3"; "3|deployment:build" only for a task read from such an old row)."""
    data = str(attempt).encode()
    return data + _SEPARATOR + pinned.encode() if pinned else data


def decode(data: bytes) -> tuple[int, str]:
    """(attempt, pinned version or "") of a backlog row, old or new."""
    attempt, _, pinned = (data or b"0").partition(_SEPARATOR)
    return int(attempt or b"0"), pinned.decode()
