"""Workflows and activities of the worker-versioning tests: a pinned workflow that reports which build
ran each of its steps, and an activity each worker build answers with its own name."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import VersioningBehavior


@workflow.defn(name="VersionedSteps", versioning_behavior=VersioningBehavior.PINNED)
class VersionedSteps:
    """Runs the `whoami` activity, waits for the `go` signal, and returns the builds seen: the one that
    ran its first task, the activity's, and the one that ran its last task."""

    def __init__(self) -> None:
        self.go = False

    @workflow.run
    async def run(self) -> list[str]:
        first = workflow.info().get_current_build_id()
        by_activity = await workflow.execute_activity("whoami", start_to_close_timeout=timedelta(seconds=20))
        await workflow.wait_condition(lambda: self.go)
        return [first, by_activity, workflow.info().get_current_build_id()]

    @workflow.signal
    def proceed(self) -> None:
        self.go = True


def whoami_activity(build_id: str) -> Callable[[], Any]:
    """The `whoami` activity of one worker build: it answers that build's id."""

    @activity.defn(name="whoami")
    async def whoami() -> str:
        return build_id

    return whoami
