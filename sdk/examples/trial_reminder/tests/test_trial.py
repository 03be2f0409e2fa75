"""The trial workflow's week, tested in seconds with hourglass.sdk.testing's fixtures.

`hourglass_env` is temporalio's time-skipping WorkflowEnvironment on an embedded Hourglass: awaiting a
result skips the 7 days; `hourglass_client` is a client of a (wall clock) embedded server.
"""

import uuid
from datetime import timedelta

from temporalio import activity
from temporalio.worker import Worker
from trial_reminder.workflows import TrialWorkflow, send_reminder


async def test_a_reminder_is_sent_after_seven_days(hourglass_env):
    start = await hourglass_env.get_current_time()
    async with Worker(
        hourglass_env.client, task_queue="trial", workflows=[TrialWorkflow], activities=[send_reminder]
    ):
        result = await hourglass_env.client.execute_workflow(
            TrialWorkflow.run, "ada@example.com", id=f"trial-{uuid.uuid4()}", task_queue="trial"
        )
    assert result == "reminder sent to ada@example.com"
    assert await hourglass_env.get_current_time() - start >= timedelta(days=7)


async def test_no_reminder_after_an_upgrade(hourglass_env):
    sent: list[str] = []

    @activity.defn(name="send_reminder")
    async def record_reminder(email: str) -> str:
        sent.append(email)
        return "sent"

    async with Worker(
        hourglass_env.client, task_queue="trial", workflows=[TrialWorkflow], activities=[record_reminder]
    ):
        handle = await hourglass_env.client.start_workflow(
            TrialWorkflow.run, "bob@example.com", id=f"trial-{uuid.uuid4()}", task_queue="trial"
        )
        # The trial starts when the worker runs the workflow's first task: wait for it (a query answers
        # after that task) so the 3 days below are counted from the trial's start.
        assert await handle.query(TrialWorkflow.days_left) == 7.0
        await hourglass_env.sleep(timedelta(days=3))  # skips 3 days, then time stands still again
        await handle.signal(TrialWorkflow.upgrade)
        assert await handle.result() == "upgraded on day 3"
    assert sent == []


async def test_a_new_trial_has_seven_days_left(hourglass_client):
    async with Worker(hourglass_client, task_queue="trial-wall", workflows=[TrialWorkflow]):
        handle = await hourglass_client.start_workflow(
            TrialWorkflow.run, "cy@example.com", id=f"trial-{uuid.uuid4()}", task_queue="trial-wall"
        )
        assert 6.9 < await handle.query(TrialWorkflow.days_left) <= 7.0
        await handle.terminate()
