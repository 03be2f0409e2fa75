"""Task tokens: what a worker echoes back to complete a workflow or activity task.

They name the run and the exact attempt, so a completion of a task that timed out, was retried or whose
workflow moved on is recognised as stale and rejected instead of being applied twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from hourglass.cluster.errors import InvalidArgument


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

    def encode(self) -> bytes:
        # The instance's own dict (fields only, in order): asdict's recursive copy showed in profiles.
        return json.dumps(vars(self), separators=(",", ":")).encode()

    @staticmethod
    def decode(data: bytes) -> TaskToken:
        if not data:
            raise InvalidArgument("Task token not set on request.")
        try:
            return TaskToken(**json.loads(data))
        except (ValueError, TypeError) as e:
            raise InvalidArgument("Error deserializing task token.") from e
