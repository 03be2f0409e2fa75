"""Which runs are standalone activities and Nexus operations (issue 15): the fact transition.py and the
engine share.

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


# Standalone Nexus operations (StartNexusOperationExecution) are hidden runs too, under their own prefix:
# one scheduled operation, no workflow tasks, closed with the operation's outcome (standalone_nexus.py).
NEXUS_PREFIX = "__hourglass_standalone_nexus__/"
RESERVED_PREFIXES = (PREFIX, NEXUS_PREFIX)


def nexus_workflow_id(operation_id: str) -> str:
    """The hidden run's workflow id for a standalone Nexus operation id."""
    return NEXUS_PREFIX + operation_id


def is_standalone_nexus(workflow_id_: str) -> bool:
    return workflow_id_.startswith(NEXUS_PREFIX)


def operation_id(workflow_id_: str) -> str:
    return workflow_id_[len(NEXUS_PREFIX) :]


def is_hidden(workflow_id_: str) -> bool:
    """A standalone activity's or Nexus operation's run: no workflow tasks, not listed as a workflow."""
    return workflow_id_.startswith(RESERVED_PREFIXES)
