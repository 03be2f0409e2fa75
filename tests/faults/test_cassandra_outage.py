"""Cassandra paused or crashed under load: RPCs fail with UNAVAILABLE, nothing is half-written or lost,
and every workflow completes once the database is back.

Runs on a Cassandra node of its own (cassandra_node.py), never the shared development node.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
from compat.servers import ServerProcess, hourglass_cassandra_server
from temporalio.api.common.v1 import WorkflowType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import StartWorkflowExecutionRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from hourglass.persistence.cassandra import testing

from .cassandra_node import FaultCassandra
from .workflows import ActivitiesAndTimer, assert_history_sound, double, expected_result

pytestmark = [
    pytest.mark.skipif(
        testing.skip_requested() or not testing.devserver_script().exists(),
        reason=f"needs the Cassandra jars (tools/cassandra) and {testing.SKIP_ENV} unset",
    ),
    # Two Cassandra starts (JVM start-up dominates) and a load that must finish after each outage.
    pytest.mark.timeout(900),
]

WORKFLOWS_BEFORE = 10
WORKFLOWS_AFTER = 5
# Statements time out quickly here so an outage turns into UNAVAILABLE well within the client's deadline.
STORE_OPTIONS = {"request_timeout_s": 3, "reconnect_max_delay_s": 1}
OUTAGE_RPC_DEADLINE = timedelta(seconds=30)
COMPLETION_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def fault_cassandra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultCassandra]:
    node = FaultCassandra(tmp_path_factory.mktemp("fault-cassandra") / "node")
    node.up()
    try:
        yield node
    finally:
        node.down(wipe=True)


@pytest.fixture(scope="module")
async def server(
    fault_cassandra: FaultCassandra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    srv = hourglass_cassandra_server(
        tmp_path_factory.mktemp("fault-hourglass"),
        [fault_cassandra.address],
        fault_cassandra.port,
        STORE_OPTIONS,
    )
    await srv.start()
    try:
        yield srv
    finally:
        srv.stop()


async def _start_load(client: Client, queue: str, seeds: range) -> list[WorkflowHandle]:
    return [
        await client.start_workflow(
            ActivitiesAndTimer.run,
            seed,
            id=f"{queue}-{seed}",
            task_queue=queue,
            # Tasks handed out just before the outage are retried on timeout: keep that short.
            task_timeout=timedelta(seconds=2),
        )
        for seed in seeds
    ]


async def _run_through_outage(server: ServerProcess, outage, recover) -> None:
    """Load, an outage during which a start must fail with UNAVAILABLE, recovery, then check everything."""
    client = await Client.connect(server.address)
    queue = f"outage-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[ActivitiesAndTimer], activities=[double]):
        handles = await _start_load(client, queue, range(WORKFLOWS_BEFORE))
        await asyncio.sleep(1.0)  # let the load get going: tasks in flight everywhere
        during_id, request_id = f"{queue}-during-outage", str(uuid.uuid4())
        request = await _start_request(client, queue, during_id, request_id, seed=100)
        await outage()
        try:
            with pytest.raises(RPCError) as failure:
                await client.workflow_service.start_workflow_execution(
                    request, retry=False, timeout=OUTAGE_RPC_DEADLINE
                )
            assert failure.value.status == RPCStatusCode.UNAVAILABLE, failure.value
        finally:
            await recover()
        # The start that failed: retried with its request id it exists exactly once, whatever the outage did.
        await client.workflow_service.start_workflow_execution(
            request, retry=True, timeout=OUTAGE_RPC_DEADLINE
        )
        handles.append(client.get_workflow_handle(during_id))
        handles += await _start_load(
            client, queue, range(WORKFLOWS_BEFORE, WORKFLOWS_BEFORE + WORKFLOWS_AFTER)
        )
        results = await _results_or_diagnosis(client, handles)
    seeds = [*range(WORKFLOWS_BEFORE), 100, *range(WORKFLOWS_BEFORE, WORKFLOWS_BEFORE + WORKFLOWS_AFTER)]
    assert results == [expected_result(seed) for seed in seeds]
    for handle in handles:
        await assert_history_sound(client, handle.id)
    runs = [w async for w in client.list_workflows(f"WorkflowId = '{during_id}'")]
    assert len(runs) == 1, f"{during_id} has {len(runs)} runs"


async def _results_or_diagnosis(client: Client, handles: list[WorkflowHandle]) -> list[object]:
    """Every workflow's result; a workflow that does not finish in time fails the test with its history."""
    tasks = [asyncio.ensure_future(h.result()) for h in handles]
    _, pending = await asyncio.wait(tasks, timeout=COMPLETION_TIMEOUT_S)
    if pending:
        stuck = []
        for handle, task in zip(handles, tasks, strict=True):
            if task in pending:
                task.cancel()
                history = await handle.fetch_history()
                last = [f"{e.event_id}:{e.event_type}" for e in history.events[-4:]]
                described = (await handle.describe()).raw_description
                pending = [
                    f"activity {a.activity_id} state {a.state} attempt {a.attempt}"
                    for a in described.pending_activities
                ]
                stuck.append(
                    f"{handle.id} (status {described.workflow_execution_info.status}, last events {last}, "
                    f"pending {pending}, workflow task {described.pending_workflow_task.state or None})"
                )
        pytest.fail(
            f"{len(stuck)} workflows did not complete in {COMPLETION_TIMEOUT_S}s: " + "; ".join(stuck)
        )
    return [task.result() for task in tasks]


async def _start_request(
    client: Client, queue: str, workflow_id: str, request_id: str, seed: int
) -> StartWorkflowExecutionRequest:
    """The raw request the SDK would send, so it can be sent again with the same request id."""
    request = StartWorkflowExecutionRequest(
        namespace="default",
        workflow_id=workflow_id,
        workflow_type=WorkflowType(name="ActivitiesAndTimer"),
        task_queue=TaskQueue(name=queue),
        request_id=request_id,
    )
    request.input.payloads.extend(await client.data_converter.encode([seed]))
    request.workflow_task_timeout.FromTimedelta(timedelta(seconds=2))
    return request


async def test_paused_cassandra(server: ServerProcess, fault_cassandra: FaultCassandra) -> None:
    async def outage() -> None:
        fault_cassandra.pause()

    async def recover() -> None:
        await asyncio.sleep(2)  # past the store's request timeout: statements in flight time out
        fault_cassandra.resume()

    await _run_through_outage(server, outage, recover)


async def test_crashed_and_restarted_cassandra(
    server: ServerProcess, fault_cassandra: FaultCassandra
) -> None:
    async def outage() -> None:
        fault_cassandra.kill9()

    async def recover() -> None:
        await asyncio.to_thread(fault_cassandra.up)  # replays its commit log

    await _run_through_outage(server, outage, recover)
