"""The workflows the Web UI tests run (a module of its own so the SDK's workflow sandbox does not import the
browser tests' imports): one that waits for a signal, then greets through an activity; and those the tour
of every page seeds on both servers."""

from __future__ import annotations

import asyncio
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


# The tour of every page (test_every_page.py) runs these on both servers: a parent with a finished and a
# running child (the Relationships tab's family tree), a workflow with a pending activity (the Pending
# Activities tab, queries and the stack trace, answered by the worker the tour keeps polling).


@activity.defn
async def heartbeat_for(seconds: float) -> str:
    """Pending while the tour runs (it heartbeats; the worker's shutdown cancels it)."""
    for _ in range(int(seconds * 2)):
        activity.heartbeat("working")
        await asyncio.sleep(0.5)
    return "done"


@workflow.defn
class Doubler:
    @workflow.run
    async def run(self, n: int) -> int:
        return n * 2


@workflow.defn
class WaitForever:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


@workflow.defn
class FamilyParent:
    """Starts one child that completes and one that keeps running, then waits for `finish`."""

    def __init__(self) -> None:
        self.done = False

    @workflow.query
    def state(self) -> str:
        return "waiting"

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.run
    async def run(self) -> int:
        wid = workflow.info().workflow_id
        doubled = await workflow.execute_child_workflow(Doubler.run, 21, id=f"{wid}-child-1")
        await workflow.start_child_workflow(WaitForever.run, id=f"{wid}-child-2")
        await workflow.wait_condition(lambda: self.done)
        return doubled


@workflow.defn
class PendingActivity:
    @workflow.query
    def state(self) -> str:
        return "running the activity"

    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            heartbeat_for,
            600.0,
            start_to_close_timeout=timedelta(minutes=20),
            heartbeat_timeout=timedelta(seconds=30),
        )
