"""The workflow the Web UI test runs: it waits for a signal, then greets through an activity (a module of
its own so the SDK's workflow sandbox does not import the browser test's imports)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def greet(name: str) -> str:
    return f"Hello, {name}!"


@workflow.defn
class GreetAfterSignal:
    def __init__(self) -> None:
        self.name: str | None = None

    @workflow.signal
    def set_name(self, name: str) -> None:
        self.name = name

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.name is not None)
        assert self.name is not None
        return await workflow.execute_activity(greet, self.name, start_to_close_timeout=timedelta(seconds=30))
