"""Which runs are standalone activities (issue 15): the one fact transition.py and the engine share.

A standalone activity is kept as a hidden run of its own (no workflow tasks, one activity, closed with the
activity's outcome), so it is stored, recovered, timed out and retried exactly as runs are. Its workflow id
is the activity id under a reserved prefix that no client workflow id can take.
"""

from __future__ import annotations

PREFIX = "__hourglass_standalone_activity__/"


def workflow_id(activity_id: str) -> str:
    """The hidden run's workflow id for an activity id."""
    return PREFIX + activity_id


def is_standalone(workflow_id_: str) -> bool:
    return workflow_id_.startswith(PREFIX)


def activity_id(workflow_id_: str) -> str:
    return workflow_id_[len(PREFIX) :]
