"""State transitions estimated from history, for servers that do not count them (the reference).

A transition is one committed update of a workflow's mutable state. Most of them add events, and a
few event types mark where a new one begins (a workflow task or activity recorded as started, a task
completed, a timer fired, a signal arrived, a child started or closed...); the events a transition
writes along with them (scheduled tasks, the close event) do not. Counting the marking events of a
small sample of completed workflows, children included, gives transitions per workflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
from temporalio.client import Client

MAX_PAGES = 50

TRANSITION_EVENTS = frozenset(
    {
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
        EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
        EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
        EventType.EVENT_TYPE_TIMER_FIRED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
        EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED,
        EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED,
        EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED,
        EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED,
        EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED,
        EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT,
        EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED,
        EventType.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED,
        EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
        EventType.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
        EventType.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
    }
)


def transitions_in(events: Iterable[HistoryEvent]) -> int:
    return sum(1 for e in events if e.event_type in TRANSITION_EVENTS)


@dataclass(frozen=True)
class HistorySample:
    """Per started workflow (children included): mean history events and estimated transitions."""

    workflows: int
    events_per_workflow: float | None
    transitions_per_workflow: float | None


async def fetch_history(client: Client, workflow_id: str) -> list[HistoryEvent]:
    events: list[HistoryEvent] = []
    token = b""
    for _ in range(MAX_PAGES):
        page = await client.workflow_service.get_workflow_execution_history(
            GetWorkflowExecutionHistoryRequest(
                namespace=client.namespace,
                execution=WorkflowExecution(workflow_id=workflow_id),
                next_page_token=token,
            ),
            retry=True,
        )
        events.extend(page.history.events)
        token = page.next_page_token
        if not token:
            break
    return events


def _children(events: Sequence[HistoryEvent]) -> list[str]:
    return [
        e.child_workflow_execution_started_event_attributes.workflow_execution.workflow_id
        for e in events
        if e.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED
    ]


async def sample_histories(client: Client, workflow_ids: Sequence[str]) -> HistorySample:
    """Fetch the histories of a few completed workflows (and their children) and average them."""
    total_events = total_transitions = 0
    for workflow_id in workflow_ids:
        pending = [workflow_id]
        while pending:
            events = await fetch_history(client, pending.pop())
            total_events += len(events)
            total_transitions += transitions_in(events)
            pending.extend(_children(events))
    n = len(workflow_ids)
    if n == 0:
        return HistorySample(0, None, None)
    return HistorySample(n, total_events / n, total_transitions / n)
