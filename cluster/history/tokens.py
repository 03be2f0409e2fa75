"""Task tokens: what a worker echoes back to complete a workflow or activity task.

They name the run and the exact attempt, so a completion of a task that timed out, was retried or whose
workflow moved on is recognised as stale and rejected instead of being applied twice. What a worker holds
is the token sealed by `hourglass.cluster.security.task_tokens.TaskTokenCodec`; this module only says what
a token contains and how its fields are written.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from hourglass.cluster.errors import InvalidArgument

# The reference's answers for a missing token and for bytes that are not a token it issued.
TOKEN_NOT_SET = "Task token not set on request."
TOKEN_UNREADABLE = "Error deserializing task token."
# ... and for a token presented in a request naming another namespace than the token's.
TOKEN_NAMESPACE_MISMATCH = "Operation requested with a token from a different namespace."


@dataclass(frozen=True)
class TaskToken:
    namespace_id: str
    workflow_id: str
    run_id: str
    scheduled_event_id: int
    attempt: int
    started_event_id: int = 0
    activity_id: str = ""
    # For legacy query tasks: the id the frontend waits on.
    query_id: str = ""
    # Workflow tasks: when the attempt started. Tells a dropped speculative task from its successor,
    # which may have the same scheduled event id and attempt.
    started_time_ms: int = 0
    # For Nexus tasks: the id the dispatching matching engine waits on (member id | uuid).
    nexus_task_id: str = ""

    def to_json(self) -> bytes:
        # The instance's own dict (fields only, in order): asdict's recursive copy showed in profiles.
        return json.dumps(vars(self), separators=(",", ":")).encode()

    @staticmethod
    def from_json(data: bytes) -> TaskToken:
        """The token written by `to_json`; anything else (bad JSON, unknown or missing fields, a field of
        the wrong type) is the reference's INVALID_ARGUMENT for an unreadable token, never an internal
        error later on."""
        try:
            fields = json.loads(data)
        except ValueError as e:
            raise InvalidArgument(TOKEN_UNREADABLE) from e
        if not isinstance(fields, dict) or not _well_typed(fields):
            raise InvalidArgument(TOKEN_UNREADABLE)
        try:
            return TaskToken(**fields)
        except TypeError as e:  # a required field missing
            raise InvalidArgument(TOKEN_UNREADABLE) from e


_FIELD_TYPES: dict[str, type] = {
    f.name: str if f.type in ("str", str) else int for f in dataclasses.fields(TaskToken)
}


def _well_typed(fields: dict[str, Any]) -> bool:
    for name, value in fields.items():
        expected = _FIELD_TYPES.get(name)
        # bool is an int to Python but never a valid event id or attempt.
        if expected is None or not isinstance(value, expected) or isinstance(value, bool):
            return False
    return True
