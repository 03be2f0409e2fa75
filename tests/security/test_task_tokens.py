"""Task tokens as an attacker uses them, through the official SDK against `hourglass server start-dev`.

A worker of namespace `other` (or anyone who can reach the frontend) holds, or makes up, the task token of
an activity of namespace `default`: completing, failing, cancelling or heartbeating through it must be
refused with the reference's status and message, and the activity must still be there, untouched, for
its real worker. Before task tokens were sealed (4007caf) every one of these attacks went through.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from compat.servers import ServerProcess, free_port, hourglass_executable
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    PollWorkflowTaskQueueRequest,
    RespondWorkflowTaskCompletedRequest,
)
from temporalio.client import AsyncActivityHandle, Client, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

pytestmark = pytest.mark.timeout(120)

OTHER = "other"
MISMATCH = "Operation requested with a token from a different namespace."
UNREADABLE = "Error deserializing task token."

# workflow id -> the task token its activity saw (the activity then leaves completion to the test).
CAPTURED: dict[str, bytes] = {}


@activity.defn
async def hand_out_token() -> str:
    info = activity.info()
    CAPTURED[info.workflow_id] = info.task_token
    activity.raise_complete_async()


@workflow.defn
class AwaitsAnOutsideCompletion:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            hand_out_token,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    """start-dev with a second namespace, on a database file (so a restart keeps its state)."""
    workdir = tmp_path_factory.mktemp("task-tokens")
    port = free_port()
    db = workdir / "hourglass.db"
    argv = [
        hourglass_executable(), "server", "start-dev", "--headless",
        "--ip", "127.0.0.1", "--port", str(port),
        "--namespace", OTHER,
        "--db-filename", str(db),
        "--log-level", "warning",
    ]  # fmt: skip
    srv = ServerProcess(kind="hourglass", port=port, workdir=workdir, db_filename=db, argv=argv)
    await srv.start()
    try:
        yield srv
    finally:
        srv.stop()


async def connect(server: ServerProcess, namespace: str = "default") -> Client:
    return await Client.connect(server.address, namespace=namespace)


@asynccontextmanager
async def worker(client: Client, task_queue: str) -> AsyncIterator[None]:
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[AwaitsAnOutsideCompletion],
        activities=[hand_out_token],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        yield


async def start_and_capture(client: Client, name: str) -> tuple[WorkflowHandle, bytes]:
    """Starts a run whose activity hands out its token and waits to be completed from outside."""
    wf_id = f"{name}-{time.monotonic_ns()}"
    handle = await client.start_workflow(AwaitsAnOutsideCompletion.run, id=wf_id, task_queue=name)
    for _ in range(200):
        if wf_id in CAPTURED:
            return handle, CAPTURED[wf_id]
        await asyncio.sleep(0.05)
    raise AssertionError("the activity never started")


async def pending_activity(handle: WorkflowHandle):
    """The run's one pending activity: still there, still on its first attempt."""
    description = await handle.describe()
    pending = description.raw_description.pending_activities
    assert description.status is not None and description.status.name == "RUNNING"
    assert len(pending) == 1 and pending[0].attempt == 1, pending
    return pending[0]


async def refused(call: Awaitable[object]) -> tuple[RPCStatusCode, str]:
    with pytest.raises(RPCError) as info:
        await call
    return info.value.status, info.value.message


async def completed_by_its_own_worker(client: Client, handle: WorkflowHandle, token: bytes) -> None:
    """Nothing the attacker did stuck: the genuine token still completes the activity, with its result."""
    await client.get_async_activity_handle(task_token=token).complete("genuine")
    assert await asyncio.wait_for(handle.result(), 30) == "genuine"


OPERATIONS: dict[str, Callable[[AsyncActivityHandle], Awaitable[object]]] = {
    "complete": lambda h: h.complete("forged result"),
    "fail": lambda h: h.fail(ApplicationError("forged failure", non_retryable=True)),
    "cancel": lambda h: h.report_cancellation("forged"),
    "heartbeat": lambda h: h.heartbeat("forged progress"),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
async def test_a_token_of_another_namespace_is_refused(server: ServerProcess, operation: str) -> None:
    client = await connect(server)
    other = await connect(server, OTHER)
    tq = f"cross-{operation}"
    async with worker(client, tq):
        handle, token = await start_and_capture(client, tq)
        assert await refused(OPERATIONS[operation](other.get_async_activity_handle(task_token=token))) == (
            RPCStatusCode.INVALID_ARGUMENT,
            MISMATCH,
        )
        assert not (await pending_activity(handle)).heartbeat_details.payloads
        await completed_by_its_own_worker(client, handle, token)


async def test_a_workflow_task_token_of_another_namespace_is_refused(server: ServerProcess) -> None:
    client = await connect(server)
    tq = f"raw-{time.monotonic_ns()}"
    handle = await client.start_workflow("NobodyRunsThis", id=tq, task_queue=tq)
    task = await client.workflow_service.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(namespace="default", task_queue={"name": tq}, identity="raw"),
        timeout=timedelta(seconds=10),
    )
    assert task.task_token
    complete = RespondWorkflowTaskCompletedRequest(
        namespace=OTHER, task_token=task.task_token, identity="raw"
    )
    assert await refused(client.workflow_service.respond_workflow_task_completed(complete)) == (
        RPCStatusCode.INVALID_ARGUMENT,
        MISMATCH,
    )
    history = await handle.fetch_history()
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED not in [e.event_type for e in history.events]
    await handle.terminate()


async def test_forged_and_tampered_tokens_are_refused(server: ServerProcess) -> None:
    client = await connect(server)
    tq = "forged"
    async with worker(client, tq):
        victim, victim_token = await start_and_capture(client, tq)
        decoy, decoy_token = await start_and_capture(client, tq)
        forgeries = {
            # The victim's activity written as a plain JSON token, from what any reader of the API sees.
            "unsigned JSON": await unsigned_json_token(client, victim),
            # The attacker's own token, retargeted at the victim's run.
            "retargeted": decoy_token.replace(decoy.id.encode(), victim.id.encode()).replace(
                (await run_id(decoy)).encode(), (await run_id(victim)).encode()
            ),
            "first byte flipped": bytes([victim_token[0] ^ 1]) + victim_token[1:],
            "middle byte flipped": flip(victim_token, len(victim_token) // 2),
            "last byte flipped": flip(victim_token, len(victim_token) - 1),
            "truncated": victim_token[:-1],
            "garbage": b"\x00not a task token",
        }
        for name, forged in forgeries.items():
            for operation in ("complete", "heartbeat"):
                answer = await refused(
                    OPERATIONS[operation](client.get_async_activity_handle(task_token=forged))
                )
                assert answer == (RPCStatusCode.INVALID_ARGUMENT, UNREADABLE), (name, operation)
        assert not (await pending_activity(victim)).heartbeat_details.payloads
        await completed_by_its_own_worker(client, victim, victim_token)
        await completed_by_its_own_worker(client, decoy, decoy_token)


async def test_tokens_issued_before_a_restart_are_still_accepted(server: ServerProcess) -> None:
    client = await connect(server)
    tq = "restart"
    async with worker(client, tq):
        handle, token = await start_and_capture(client, tq)
    await server.restart()  # kill -9, same database file
    client = await connect(server)
    async with worker(client, tq):
        await pending_activity(handle)
        await completed_by_its_own_worker(client, client.get_workflow_handle(handle.id), token)


def flip(token: bytes, index: int) -> bytes:
    return token[:index] + bytes([token[index] ^ 0x01]) + token[index + 1 :]


async def run_id(handle: WorkflowHandle) -> str:
    return (await handle.describe()).run_id


async def unsigned_json_token(client: Client, handle: WorkflowHandle) -> bytes:
    """What a token was before it was sealed: JSON naming the namespace id, run and attempt."""
    namespace = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace="default")
    )
    history = await handle.fetch_history()
    scheduled = next(
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    )
    return json.dumps(
        {
            "namespace_id": namespace.namespace_info.id,
            "workflow_id": handle.id,
            "run_id": await run_id(handle),
            "scheduled_event_id": scheduled.event_id,
            "attempt": 1,
            "started_event_id": 0,
            "activity_id": scheduled.activity_task_scheduled_event_attributes.activity_id,
            "query_id": "",
            "started_time_ms": 0,
        },
        separators=(",", ":"),
    ).encode()
