"""A user's own scenario, as `--scenario-file` takes it: workflows, activities and a SCENARIO object."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow

from hourglass.loadtest.scenarios import Scenario


@activity.defn(name="example.shout")
async def shout(text: str) -> str:
    return text.upper()


@workflow.defn(name="example.TwoInParallel")
class TwoInParallel:
    @workflow.run
    async def run(self, text: str) -> list[str]:
        calls = (
            workflow.execute_activity(shout, text, start_to_close_timeout=timedelta(seconds=10))
            for _ in range(2)
        )
        return list(await asyncio.gather(*calls))


SCENARIO = Scenario(
    name="two-in-parallel",
    description="two activities in parallel, then complete",
    workflow=TwoInParallel,
    activities=(shout,),
    activities_per_workflow=2,
)
