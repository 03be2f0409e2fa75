"""The sdk driver: official `temporalio` workers answer the tasks, and the starter uses the SDK client.

This is what users of the server see; the worker's own CPU cost (activations, replay) is part of it.
Workflows run unsandboxed unless `sandbox` is asked for: the sandbox costs worker CPU that the server
under test would otherwise share the machine with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from temporalio.client import Client
from temporalio.worker import (
    PollerBehaviorSimpleMaximum,
    UnsandboxedWorkflowRunner,
    Worker,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from hourglass.loadtest.connect import connect
from hourglass.loadtest.scenarios import Scenario
from hourglass.loadtest.workers import WorkerSpec


async def serve(spec: WorkerSpec, mark_ready: Callable[[], None], stopping: asyncio.Event) -> None:
    """Run one SDK worker on the spec's task queue until `stopping` is set."""
    scenario = spec.scenario.load()
    client = await connect(spec.address, spec.namespace, spec.tls, spec.api_key)
    pollers: dict[str, PollerBehaviorSimpleMaximum] = {}
    if spec.pollers:
        pollers = {
            # The SDK needs at least two workflow pollers (sticky and normal queue).
            "workflow_task_poller_behavior": PollerBehaviorSimpleMaximum(max(2, spec.pollers)),
            "activity_task_poller_behavior": PollerBehaviorSimpleMaximum(spec.pollers),
        }
    worker = Worker(
        client,
        task_queue=spec.task_queue,
        workflows=list(scenario.all_workflows),
        activities=list(scenario.activities),
        workflow_runner=SandboxedWorkflowRunner() if spec.sandbox else UnsandboxedWorkflowRunner(),
        **pollers,
    )
    async with worker:
        mark_ready()
        await stopping.wait()


class SdkStarter:
    """Starts one workflow with the SDK client, signals it if the scenario says so, awaits its result."""

    def __init__(self, client: Client, scenario: Scenario, task_queue: str) -> None:
        self._client = client
        self._scenario = scenario
        self._task_queue = task_queue

    async def execute(self, workflow_id: str) -> None:
        s = self._scenario
        handle = await self._client.start_workflow(
            s.workflow_type, args=list(s.args), id=workflow_id, task_queue=self._task_queue
        )
        if s.signal is not None:
            await handle.signal(s.signal, args=list(s.signal_args))
        await handle.result()
