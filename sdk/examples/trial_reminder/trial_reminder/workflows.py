"""A free trial: if the user has not upgraded after 7 days, email them a reminder."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

TRIAL = timedelta(days=7)


@activity.defn
async def send_reminder(email: str) -> str:
    # A real project calls its mail service here.
    return f"reminder sent to {email}"


@workflow.defn
class TrialWorkflow:
    def __init__(self) -> None:
        self.upgraded = False

    @workflow.signal
    def upgrade(self) -> None:
        self.upgraded = True

    @workflow.query
    def days_left(self) -> float:
        return (self.trial_end - workflow.now()).total_seconds() / 86400

    @workflow.run
    async def run(self, email: str) -> str:
        start = workflow.now()
        self.trial_end = start + TRIAL
        try:
            await workflow.wait_condition(lambda: self.upgraded, timeout=TRIAL)
            return f"upgraded on day {(workflow.now() - start).days}"
        except TimeoutError:
            return await workflow.execute_activity(
                send_reminder, email, start_to_close_timeout=timedelta(minutes=1)
            )
