"""The workload fault tests run: activities and a timer per workflow, so every task kind is in flight."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHistory
from temporalio.common import RetryPolicy

ACTIVITIES_PER_WORKFLOW = 3


@activity.defn
async def double(value: int) -> int:
    return value * 2


@workflow.defn
class ActivitiesAndTimer:
    """Three activities around a short timer; the result proves every step ran with its input."""

    @workflow.run
    async def run(self, seed: int) -> int:
        total = 0
        for step in range(ACTIVITIES_PER_WORKFLOW):
            total += await workflow.execute_activity(
                double,
                seed + step,
                start_to_close_timeout=timedelta(seconds=2),
                retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200)),
            )
            if step == 0:
                await workflow.sleep(timedelta(milliseconds=500))
        return total


def expected_result(seed: int) -> int:
    return sum((seed + step) * 2 for step in range(ACTIVITIES_PER_WORKFLOW))


async def assert_history_sound(client: Client, workflow_id: str) -> None:
    """What a user checks after a fault: ids contiguous from 1, one completion per activity, one close."""
    history: WorkflowHistory = await client.get_workflow_handle(workflow_id).fetch_history()
    events = history.events
    assert [e.event_id for e in events] == list(range(1, len(events) + 1)), (
        f"{workflow_id}: event ids have gaps"
    )
    scheduled = [e.event_id for e in events if e.HasField("activity_task_scheduled_event_attributes")]
    completed = [
        e.activity_task_completed_event_attributes.scheduled_event_id
        for e in events
        if e.HasField("activity_task_completed_event_attributes")
    ]
    assert sorted(completed) == scheduled, f"{workflow_id}: activities {scheduled} completed as {completed}"
    closes = [e for e in events if e.HasField("workflow_execution_completed_event_attributes")]
    assert len(closes) == 1 and events[-1] is closes[0], f"{workflow_id}: not closed exactly once, last"
