"""Small helpers shared by the compatibility tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from .workflows import ALL_ACTIVITIES, ALL_WORKFLOWS


def new_id(prefix: str = "wf") -> str:
    return f"{prefix}-{uuid.uuid4()}"


@asynccontextmanager
async def run_worker(
    client: Client,
    *,
    task_queue: str | None = None,
    workflows: Sequence[type] = ALL_WORKFLOWS,
    activities: Sequence[Callable[..., Any]] = ALL_ACTIVITIES,
    **worker_kwargs: Any,
) -> AsyncIterator[str]:
    """Runs a Worker for the body of the `async with` on a fresh task queue (a uuid); yields its name."""
    task_queue = task_queue or new_id("tq")
    async with Worker(
        client, task_queue=task_queue, workflows=list(workflows), activities=list(activities), **worker_kwargs
    ):
        yield task_queue


def event_type_name(event: HistoryEvent) -> str:
    return EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")


async def event_types(handle: WorkflowHandle[Any, Any]) -> list[str]:
    history = await handle.fetch_history()
    return [event_type_name(e) for e in history.events]


async def wait_for_event(
    handle: WorkflowHandle[Any, Any], event_type: str, *, count: int = 1, timeout: float = 10.0
) -> list[str]:
    """Polls the history until `event_type` (e.g. "WORKFLOW_TASK_COMPLETED") occurs `count` times."""
    deadline = time.monotonic() + timeout
    while True:
        types = await event_types(handle)
        if types.count(event_type) >= count:
            return types
        if time.monotonic() > deadline:
            raise AssertionError(f"{event_type} x{count} not in history after {timeout}s: {types}")
        await asyncio.sleep(0.05)
