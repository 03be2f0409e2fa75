"""Routing of pinned work: a task of a run pinned to a worker deployment version goes only to pollers of
that version, and waits in the backlog (in order, behind nothing it cannot pass) until one polls.

History names the version when it adds the task (see cluster/history/workflow_versioning.py); a poller's
version comes from its `deployment_options` (only a worker using versioning has one). The version travels
with the task: in memory on the MatchedTask, and in a backlog row's `data` next to the attempt, so a pinned
task read back after a restart or a partition move is still pinned. Unpinned tasks are not decided here.
"""

from __future__ import annotations

_SEPARATOR = b"|"


def may_take(pinned: str, poller_version: str) -> bool:
    """Whether a poller of `poller_version` ("" = unversioned) may take a task pinned to `pinned`."""
    return not pinned or pinned == poller_version


def encode_data(attempt: int, pinned: str) -> bytes:
    """A backlog row's `data`: the attempt, then the pinned version if any ("3" or "3|deploy:build")."""
    data = str(attempt).encode()
    return data + _SEPARATOR + pinned.encode() if pinned else data


def decode_data(data: bytes) -> tuple[int, str]:
    """(attempt, pinned version) of a backlog row (rows written before versioning hold just the attempt)."""
    attempt, _, pinned = (data or b"0").partition(_SEPARATOR)
    return int(attempt or b"0"), pinned.decode()
