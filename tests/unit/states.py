"""Run states the unit tests start from."""

from __future__ import annotations

from hourglass.cluster.history.mutable_state import ExecutionInfo, MutableState


def minimal_state() -> MutableState:
    """A run as its start leaves it, before any event beyond the first."""
    return MutableState(
        ExecutionInfo(
            namespace_id="ns",
            workflow_id="w",
            run_id="r",
            first_run_id="r",
            workflow_type="T",
            task_queue="q",
            create_request_id="req",
            start_time_ms=1,
            execution_time_ms=1,
            workflow_task_timeout_ms=10_000,
        )
    )
