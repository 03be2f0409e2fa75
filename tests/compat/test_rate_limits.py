"""Rate limits and the concurrent long-poll limit, as the reference applies them: a flood is refused with
RESOURCE_EXHAUSTED, the reference's message and a ResourceExhaustedFailure saying why (cause) and whose
limit it was (scope); an SDK worker under a low namespace rate still completes everything.

Each module server is of the target's kind (SQLite for Hourglass), started with the reference's dynamic
config keys: `frontend.namespaceCount` (concurrent long-running requests per namespace and method) and
`frontend.namespaceRPS`. The other limits keep the reference's defaults (RegisterNamespace: 20/s per node,
burst 40; visibility: 100/s per namespace on start-dev, burst 100).
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import ResourceExhaustedCause, ResourceExhaustedScope
from temporalio.api.errordetails.v1 import ResourceExhaustedFailure
from temporalio.api.workflowservice.v1 import (
    GetWorkflowExecutionHistoryRequest,
    ListWorkflowExecutionsRequest,
    RegisterNamespaceRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from . import servers
from .helpers import new_id, run_worker
from .servers import REFERENCE, ServerProcess, compat_target
from .workflows import ActivitySpec, GreetSomeone, RunActivity, WaitForSignal

POLLERS = 2  # frontend.namespaceCount of the limits server
SLOW_RPS = 5  # frontend.namespaceRPS of the slow server: burst 10


async def _server(tmp_path_factory: pytest.TempPathFactory, name: str, *values: str) -> ServerProcess:
    workdir = tmp_path_factory.mktemp(name)
    srv = (
        servers.reference_server(workdir)
        if compat_target() == REFERENCE
        else servers.hourglass_server(workdir)
    )
    for value in values:
        srv.argv += ["--dynamic-config-value", value]
    await srv.start()
    return srv


@pytest.fixture(scope="module")
async def limits_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    srv = await _server(tmp_path_factory, "rate-limits", f"frontend.namespaceCount={POLLERS}")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
async def slow_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    srv = await _server(tmp_path_factory, "rate-limits-slow", f"frontend.namespaceRPS={SLOW_RPS}")
    try:
        yield srv
    finally:
        srv.stop()


def _exhausted(err: RPCError) -> tuple[str, str, str]:
    """(message, cause, scope) of a RESOURCE_EXHAUSTED, read from its ResourceExhaustedFailure."""
    assert err.status == RPCStatusCode.RESOURCE_EXHAUSTED, (err.status, err.message)
    details = list(err.grpc_status.details)
    assert len(details) == 1 and details[0].Is(ResourceExhaustedFailure.DESCRIPTOR), details
    failure = ResourceExhaustedFailure()
    details[0].Unpack(failure)
    return (
        err.message,
        ResourceExhaustedCause.Name(failure.cause).removeprefix("RESOURCE_EXHAUSTED_CAUSE_"),
        ResourceExhaustedScope.Name(failure.scope).removeprefix("RESOURCE_EXHAUSTED_SCOPE_"),
    )


async def _flood(
    count: int, concurrency: int, call: Callable[[int], Awaitable[object]]
) -> collections.Counter:
    """`count` calls, `concurrency` at a time: how many succeeded ("ok"), failed otherwise, or were refused."""
    outcomes: collections.Counter = collections.Counter()
    pending = iter(range(count))

    async def lane() -> None:
        for i in pending:
            try:
                await call(i)
                outcomes["ok"] += 1
            except RPCError as e:
                if e.status == RPCStatusCode.RESOURCE_EXHAUSTED:
                    outcomes[_exhausted(e)] += 1
                else:
                    outcomes[(e.status.name, e.message)] += 1

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return outcomes


async def test_register_namespace_flood_is_refused_by_the_service_rate_limit(
    limits_server: ServerProcess,
) -> None:
    client = await Client.connect(limits_server.address)
    prefix = f"rl-{uuid.uuid4().hex[:8]}"

    async def register(i: int) -> object:
        return await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=f"{prefix}-{i}", workflow_execution_retention_period=Duration(seconds=86400)
            ),
            retry=False,
        )

    loop = asyncio.get_running_loop()
    started = loop.time()
    outcomes = await _flood(200, 10, register)
    elapsed = loop.time() - started
    refused = outcomes.pop(("service rate limit exceeded", "RPS_LIMIT", "SYSTEM"), 0)
    accepted = outcomes.pop("ok", 0)
    assert not outcomes, outcomes  # nothing else: no other error, no other limit
    # frontend.rps.namespaceReplicationInducingAPIs: 20/s, burst 40 (twice the rate).
    assert 40 <= accepted <= 40 + 20 * elapsed + 2, (accepted, elapsed)
    assert refused == 200 - accepted


async def test_visibility_burst_is_refused_by_the_namespace_rate_limit(limits_server: ServerProcess) -> None:
    client = await Client.connect(limits_server.address)

    async def list_runs(_: int) -> object:
        return await client.workflow_service.list_workflow_executions(
            ListWorkflowExecutionsRequest(namespace="default", page_size=1), retry=False
        )

    loop = asyncio.get_running_loop()
    started = loop.time()
    outcomes = await _flood(300, 50, list_runs)
    elapsed = loop.time() - started
    refused = outcomes.pop(("namespace rate limit exceeded", "RPS_LIMIT", "NAMESPACE"), 0)
    accepted = outcomes.pop("ok", 0)
    assert not outcomes, outcomes
    # frontend.namespaceRPS.visibility: 100/s on start-dev (both servers), with a burst of 100 (ratio 1).
    assert 100 <= accepted <= 100 + 100 * elapsed + 2, (accepted, elapsed)
    assert refused == 300 - accepted > 0


async def test_concurrent_long_polls_past_the_namespace_limit_are_refused(
    limits_server: ServerProcess,
) -> None:
    client = await Client.connect(limits_server.address)
    # A run nobody works on: a history long poll on it waits for an event that does not come.
    handle = await client.start_workflow(WaitForSignal.run, id=new_id(), task_queue=new_id("nobody"))
    poll = GetWorkflowExecutionHistoryRequest(
        namespace="default",
        execution=WorkflowExecution(workflow_id=handle.id),
        wait_new_event=True,
        next_page_token=b"",
    )
    first = await client.workflow_service.get_workflow_execution_history(poll, retry=False)
    waiting_poll = GetWorkflowExecutionHistoryRequest()
    waiting_poll.CopyFrom(poll)
    waiting_poll.next_page_token = first.next_page_token
    assert waiting_poll.next_page_token, "the first page of a running workflow's long poll has a token"

    async def long_poll() -> object:
        return await client.workflow_service.get_workflow_execution_history(
            waiting_poll, retry=False, timeout=timedelta(seconds=4)
        )

    holders = [asyncio.create_task(long_poll()) for _ in range(POLLERS)]
    try:
        await asyncio.sleep(1.0)  # the first POLLERS are waiting on the server now
        assert not any(h.done() for h in holders), [h.exception() for h in holders if h.done()]
        with pytest.raises(RPCError) as refused:
            await long_poll()
        assert _exhausted(refused.value) == (
            "namespace concurrent poller limit exceeded",
            "CONCURRENT_LIMIT",
            "NAMESPACE",
        )
        # A history read that does not wait is not a long poll: never limited by the count.
        await client.workflow_service.get_workflow_execution_history(
            GetWorkflowExecutionHistoryRequest(namespace="default", execution=poll.execution), retry=False
        )
    finally:
        for h in holders:
            h.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
    # The slots are given back when the polls end: the next long polls are admitted.
    await asyncio.sleep(0.5)
    await handle.signal(WaitForSignal.finish, "go")
    again = await client.workflow_service.get_workflow_execution_history(
        waiting_poll, retry=False, timeout=timedelta(seconds=4)
    )
    assert again.history.events
    await handle.terminate()


async def test_worker_under_a_low_namespace_rate_completes_every_workflow(slow_server: ServerProcess) -> None:
    client = await Client.connect(slow_server.address)
    # The limit is real: a burst of reads past 2 x frontend.namespaceRPS is refused.
    missing = GetWorkflowExecutionHistoryRequest(
        namespace="default", execution=WorkflowExecution(workflow_id=new_id("missing"))
    )

    async def read(_: int) -> object:
        return await client.workflow_service.get_workflow_execution_history(missing, retry=False)

    outcomes = await _flood(30, 30, read)
    assert outcomes[("namespace rate limit exceeded", "RPS_LIMIT", "NAMESPACE")] >= 30 - 2 * SLOW_RPS - 2, (
        outcomes
    )
    # The SDK retries RESOURCE_EXHAUSTED with backoff: the worker still completes every workflow.
    async with run_worker(client) as tq:
        handles = [
            await client.start_workflow(GreetSomeone.run, f"n{i}", id=new_id(), task_queue=tq)
            for i in range(3)
        ] + [
            await client.start_workflow(
                RunActivity.run,
                ActivitySpec(activity="say_hello", args=[f"a{i}"], start_to_close=10),
                id=new_id(),
                task_queue=tq,
            )
            for i in range(2)
        ]
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), timeout=45)
    assert results == ["Hello, n0!", "Hello, n1!", "Hello, n2!", "Hello, a0!", "Hello, a1!"]
