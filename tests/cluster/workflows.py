"""The workload of the cluster tests: activities and a timer, so failover has both kinds of task."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def echo(text: str) -> str:
    return text


@workflow.defn
class ActivityTimerWorkflow:
    @workflow.run
    async def run(self, n: int) -> str:
        first = await workflow.execute_activity(echo, f"a{n}", start_to_close_timeout=timedelta(seconds=5))
        await workflow.sleep(2)
        second = await workflow.execute_activity(echo, f"b{n}", start_to_close_timeout=timedelta(seconds=5))
        return first + second

    @workflow.query
    def ping(self) -> str:
        return "pong"

    @workflow.update
    def bump(self, value: int) -> int:
        return value + 1


@workflow.defn
class WaitForSignal:
    """Waits for one signal and returns it: its second workflow task comes after the worker may be gone."""

    def __init__(self) -> None:
        self.value: str | None = None

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.value is not None)
        return self.value or ""

    @workflow.query
    def ping(self) -> str:
        return "pong"

    @workflow.update
    def bump(self, value: int) -> int:
        return value + 1

    @workflow.signal
    def finish(self, value: str) -> None:
        self.value = value
