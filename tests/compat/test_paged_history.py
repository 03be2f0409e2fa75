"""Histories larger than one gRPC message: they leave the server in pages, and workflows keep running.

Three 1.9 MiB signals (the blob limit is 2 MiB) take a run's history past 4 MiB, what a client accepts in
one message by default. The reference pages histories (first page in the workflow task with a
next_page_token, the rest through GetWorkflowExecutionHistory); Hourglass does too, and also bounds each
page in bytes, so no response is over 4 MiB. Before, every poll for such a run failed with
RESOURCE_EXHAUSTED and no worker could ever run it again.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    GetWorkflowExecutionHistoryRequest,
    GetWorkflowExecutionHistoryReverseRequest,
    PollWorkflowTaskQueueRequest,
    ResetWorkflowExecutionRequest,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from .helpers import new_id, run_worker
from .servers import REFERENCE, ServerProcess

BLOB = "x" * (1900 * 1024)  # under the 2 MiB blob limit; three of them pass 4 MiB
GRPC_DEFAULT_LIMIT = 4 * 1024 * 1024
SIGNALED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED


@workflow.defn(sandboxed=False)
class BigSignals:
    """Waits for `count` signals and returns the size of each (its result stays small)."""

    def __init__(self) -> None:
        self._sizes: list[int] = []

    @workflow.run
    async def run(self, count: int) -> list[int]:
        await workflow.wait_condition(lambda: len(self._sizes) >= count)
        return self._sizes

    @workflow.signal
    def blob(self, data: str) -> None:
        self._sizes.append(len(data))

    @workflow.query
    def sizes(self) -> list[int]:
        return list(self._sizes)


def _worker(client: Client, task_queue: str, **kwargs):
    return run_worker(client, task_queue=task_queue, workflows=[BigSignals], activities=[], **kwargs)


async def _big_run(client: Client, task_queue: str, count: int = 4) -> WorkflowHandle:
    handle = await client.start_workflow(BigSignals.run, count, id=new_id("paged"), task_queue=task_queue)
    for _ in range(3):
        await handle.signal(BigSignals.blob, BLOB)
    return handle


async def _query_until(handle: WorkflowHandle, expected: list[int], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while (sizes := await handle.query(BigSignals.sizes)) != expected:
        assert time.monotonic() < deadline, f"the workflow saw {sizes}, not {expected}"
        await asyncio.sleep(0.2)


def _history_request(handle: WorkflowHandle, **fields) -> GetWorkflowExecutionHistoryRequest:
    execution = WorkflowExecution(workflow_id=handle.id, run_id=fields.pop("run_id", handle.result_run_id))
    return GetWorkflowExecutionHistoryRequest(namespace="default", execution=execution, **fields)


async def _pages(client: Client, handle: WorkflowHandle, page_size: int) -> list[list[int]]:
    """The event ids of every page of the run's history read with `page_size`."""
    pages, token = [], b""
    while True:
        request = _history_request(handle, maximum_page_size=page_size, next_page_token=token)
        resp = await client.workflow_service.get_workflow_execution_history(request)
        pages.append([e.event_id for e in resp.history.events])
        token = resp.next_page_token
        if not token:
            return pages


async def _reverse_pages(client: Client, handle: WorkflowHandle, page_size: int) -> list[list[int]]:
    pages, token = [], b""
    while True:
        resp = await client.workflow_service.get_workflow_execution_history_reverse(
            GetWorkflowExecutionHistoryReverseRequest(
                namespace="default",
                execution=WorkflowExecution(workflow_id=handle.id, run_id=handle.result_run_id),
                maximum_page_size=page_size,
                next_page_token=token,
            )
        )
        pages.append([e.event_id for e in resp.history.events])
        token = resp.next_page_token
        if not token:
            return pages


async def test_a_history_past_4_mib_keeps_running(client: Client) -> None:
    """Sticky worker: the first task carries the whole history (paged), the next ones what came after."""
    tq = new_id("tq")
    handle = await _big_run(client, tq)
    async with _worker(client, tq):
        await _query_until(handle, [len(BLOB)] * 3)
        await handle.signal(BigSignals.blob, BLOB)
        assert await asyncio.wait_for(handle.result(), 40) == [len(BLOB)] * 4
    events = (await handle.fetch_history()).events
    assert [e.event_id for e in events] == list(range(1, len(events) + 1))
    assert sum(e.event_type == SIGNALED for e in events) == 4


async def test_a_history_past_4_mib_on_a_worker_without_cache(client: Client) -> None:
    """Without a cache every workflow task and every query (a legacy query task) replays the whole
    history, which the worker reads page by page."""
    tq = new_id("tq")
    handle = await _big_run(client, tq)
    async with _worker(client, tq, max_cached_workflows=0):
        await _query_until(handle, [len(BLOB)] * 3)
        await handle.signal(BigSignals.blob, BLOB)
        assert await asyncio.wait_for(handle.result(), 40) == [len(BLOB)] * 4


async def test_a_reset_run_with_a_history_past_4_mib_runs(client: Client) -> None:
    """A reset run starts with the base run's events up to the reset point (on Hourglass, copied in one
    batch of 5.7 MiB): its first workflow task still reaches the worker, which replays them all."""
    tq = new_id("tq")
    handle = await _big_run(client, tq)
    async with _worker(client, tq):
        await _query_until(handle, [len(BLOB)] * 3)
        first_task_completed = next(
            e.event_id
            for e in (await handle.fetch_history()).events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        )
        reset = await client.workflow_service.reset_workflow_execution(
            ResetWorkflowExecutionRequest(
                namespace="default",
                workflow_execution=WorkflowExecution(workflow_id=handle.id, run_id=handle.result_run_id),
                reason="paging test",
                workflow_task_finish_event_id=first_task_completed,
                request_id=str(uuid.uuid4()),
            )
        )
        new_run = client.get_workflow_handle(handle.id, run_id=reset.run_id)
        await new_run.signal(BigSignals.blob, BLOB)
        assert await asyncio.wait_for(new_run.result(), 40) == [len(BLOB)] * 4


async def test_every_page_fits_in_a_default_grpc_message(client: Client, server: ServerProcess) -> None:
    """The poll's first page and every following page stay under 4 MiB, and together they are the whole
    history. (The reference bounds pages by count only: it sends these 5.7 MiB in one message.)"""
    if server.kind == REFERENCE:
        pytest.skip("the reference sends the 5.7 MiB history in one message (its pages have no byte bound)")
    tq = new_id("tq")
    handle = await _big_run(client, tq)
    try:
        poll = await client.workflow_service.poll_workflow_task_queue(
            PollWorkflowTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=tq), identity="raw")
        )
        assert poll.ByteSize() <= GRPC_DEFAULT_LIMIT
        assert poll.next_page_token, "the history cannot fit in one page"
        ids = [e.event_id for e in poll.history.events]
        token = poll.next_page_token
        while token:
            resp = await client.workflow_service.get_workflow_execution_history(
                _history_request(handle, next_page_token=token)
            )
            assert resp.ByteSize() <= GRPC_DEFAULT_LIMIT
            ids += [e.event_id for e in resp.history.events]
            token = resp.next_page_token
        assert ids == list(range(1, poll.started_event_id + 1))
        for page_size in (0, -5):
            first = await client.workflow_service.get_workflow_execution_history(
                _history_request(handle, maximum_page_size=page_size)
            )
            assert first.ByteSize() <= GRPC_DEFAULT_LIMIT
            assert first.next_page_token
    finally:
        await handle.terminate()


async def test_history_pages_concatenate_to_the_whole_history(client: Client) -> None:
    """maximum_page_size 1 pages by batch; 0 and negative sizes take the default (256), never INTERNAL."""
    tq = new_id("tq")
    handle = await client.start_workflow(BigSignals.run, 8, id=new_id("paged"), task_queue=tq)
    for i in range(8):
        await handle.signal(BigSignals.blob, str(i))
    async with _worker(client, tq):
        assert await asyncio.wait_for(handle.result(), 30) == [1] * 8
    whole = [e.event_id for e in (await handle.fetch_history()).events]
    assert whole == list(range(1, len(whole) + 1)) and len(whole) > 10
    one = await _pages(client, handle, 1)
    assert [i for page in one for i in page] == whole
    assert len(one) > 5
    assert await _pages(client, handle, 0) == [whole]
    assert await _pages(client, handle, -5) == [whole]
    backwards = list(reversed(whole))
    assert [i for page in await _reverse_pages(client, handle, 3) for i in page] == backwards
    assert await _reverse_pages(client, handle, 0) == [backwards]
    assert await _reverse_pages(client, handle, -5) == [backwards]


async def test_forged_history_page_tokens_are_invalid_argument(client: Client) -> None:
    handle = await client.start_workflow(BigSignals.run, 1, id=new_id("paged"), task_queue=new_id("tq"))
    try:
        await handle.signal(BigSignals.blob, "a")
        run_id = handle.result_run_id
        forged = [b"garbage", b'{"run_id":"' + run_id.encode() + b'","next_event_id":1e400}']
        for token in forged:
            with pytest.raises(RPCError) as info:
                await client.workflow_service.get_workflow_execution_history(
                    _history_request(handle, run_id="", next_page_token=token)
                )
            assert (info.value.status, info.value.message) == (
                RPCStatusCode.INVALID_ARGUMENT,
                "Invalid NextPageToken.",
            ), token
        first = await client.workflow_service.get_workflow_execution_history(
            _history_request(handle, maximum_page_size=1)
        )
        assert first.next_page_token
        with pytest.raises(RPCError) as info:
            await client.workflow_service.get_workflow_execution_history(
                _history_request(handle, run_id=str(uuid.uuid4()), next_page_token=first.next_page_token)
            )
        assert (info.value.status, info.value.message) == (
            RPCStatusCode.INVALID_ARGUMENT,
            "RunId in the request does not match the NextPageToken.",
        )
    finally:
        await handle.terminate()
