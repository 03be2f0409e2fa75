"""Nexus operations with the official Python SDK (`workflow.create_nexus_client`, a `nexusrpc` service handler
in the worker) on Hourglass and the reference in the same run: the caller workflow's history compared event
by event (NexusOperationScheduled, then Completed / Failed / TimedOut), and what the workflow saw.

The endpoint targets the worker's own namespace and task queue: the worker runs the caller workflow and
polls the Nexus requests (PollNexusTaskQueue) that the caller's server dispatches to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, NamedTuple

import pytest
from google.protobuf.json_format import MessageToDict
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from .conftest import ServerProcess
from .history_diff import diff, normalize
from .nexus_endpoint import worker_endpoint
from .nexus_workflows import (
    CANCEL_HEADERS,
    CancelWithHeaders,
    GreetingHandler,
    GreetingWorkflow,
    ManyNexusCalls,
    NexusCaller,
    SharedCalls,
    SharedWorkflow,
    SignalTarget,
    SignalWithStartCaller,
)

RESULT_TIMEOUT_S = 30


class NexusRig(NamedTuple):
    client: Client
    suffix: str
    task_queue: str
    endpoint: str
    workflow_id: str


@contextlib.asynccontextmanager
async def caller_and_handler(srv: ServerProcess, *workflows: type) -> AsyncIterator[NexusRig]:
    """A fresh task queue, an endpoint to it and one worker running `workflows` and GreetingHandler: the
    caller and the handler side by side, as most tests here need them."""
    client = await Client.connect(srv.address)
    suffix = uuid.uuid4().hex[:10]
    rig = NexusRig(client, suffix, f"nexus-tq-{suffix}", f"nexus-ep-{suffix}", f"nexus-wf-{suffix}")
    async with worker_endpoint(client.operator_service, rig.endpoint, rig.task_queue):
        async with Worker(
            client,
            task_queue=rig.task_queue,
            workflows=list(workflows),
            nexus_service_handlers=[GreetingHandler()],
        ):
            yield rig


async def run_caller(
    srv: ServerProcess, operation: str, timeout_s: float = 0, run_timeout: timedelta | None = None
) -> tuple[str, list[dict]]:
    """Register an endpoint to a fresh task queue, run NexusCaller on a worker that also handles the
    endpoint's requests; the workflow's result and its normalized history."""
    async with caller_and_handler(srv, NexusCaller, GreetingWorkflow) as rig:
        client, suffix, task_queue, endpoint, workflow_id = rig
        handle = await client.start_workflow(
            NexusCaller.run,
            args=[endpoint, operation, timeout_s],
            id=workflow_id,
            task_queue=task_queue,
            run_timeout=run_timeout,
        )
        result = await handle.result(rpc_timeout=None)
        history = await handle.fetch_history()
    redactions = {endpoint: "<endpoint>", task_queue: "<task queue>", workflow_id: "<workflow id>"}
    return result, normalize(history, redactions)


def without_workflow_tasks(history: list[dict]) -> list[dict]:
    """The history's other events, for runs where a workflow task and the operation's outcome race (either
    may come first, on the reference too): event ids and workflow task references dropped."""
    kept = []
    for event in history:
        if event["type"].startswith("WORKFLOW_TASK_"):
            continue
        attributes = (
            dict(event["attributes"]) if isinstance(event["attributes"], dict) else event["attributes"]
        )
        if isinstance(attributes, dict):
            attributes.pop("workflow_task_completed_event_id", None)
        kept.append({"type": event["type"], "attributes": attributes})
    return kept


async def on_both(
    server: ServerProcess,
    reference: ServerProcess,
    operation: str,
    timeout_s: float = 0,
    races: bool = False,
    run_timeout: timedelta | None = None,
) -> tuple[str, list[str]]:
    ours, ours_history = await run_caller(server, operation, timeout_s, run_timeout)
    theirs, their_history = await run_caller(reference, operation, timeout_s, run_timeout)
    if races:
        ours_history, their_history = (
            without_workflow_tasks(ours_history),
            without_workflow_tasks(their_history),
        )
    difference = diff(their_history, ours_history, "reference", server.kind)
    assert not difference, f"histories differ (- reference, + {server.kind})\n{difference}"
    assert ours == theirs
    return ours, [e["type"] for e in ours_history]


NEXUS_HEAD = [
    "WORKFLOW_EXECUTION_STARTED",
    "WORKFLOW_TASK_SCHEDULED",
    "WORKFLOW_TASK_STARTED",
    "WORKFLOW_TASK_COMPLETED",
    "NEXUS_OPERATION_SCHEDULED",
]
TAIL = [
    "WORKFLOW_TASK_SCHEDULED",
    "WORKFLOW_TASK_STARTED",
    "WORKFLOW_TASK_COMPLETED",
    "WORKFLOW_EXECUTION_COMPLETED",
]


async def test_a_sync_operation_returns_its_result(
    server: ServerProcess, reference_server: ServerProcess
) -> None:
    result, types = await on_both(server, reference_server, "greet")
    assert result == "Hello, Nexus!"
    assert types == [*NEXUS_HEAD, "NEXUS_OPERATION_COMPLETED", *TAIL]


@pytest.mark.parametrize("timeout_s", [0, 120])
async def test_an_operation_may_not_outlive_its_run(
    server: ServerProcess, reference_server: ServerProcess, timeout_s: float
) -> None:
    """The scheduled event's schedule-to-close timeout is cut to the run's timeout (compared in the history)."""
    result, _ = await on_both(server, reference_server, "greet", timeout_s, run_timeout=timedelta(seconds=60))
    assert result == "Hello, Nexus!"


@pytest.mark.parametrize(
    ("operation", "cause"),
    [
        ("refuse", "ApplicationError: OperationError: no greeting for Nexus"),
        ("bad_request", "HandlerError: cannot greet Nexus"),
    ],
)
async def test_a_failed_operation_fails_the_call(
    server: ServerProcess, reference_server: ServerProcess, operation: str, cause: Any
) -> None:
    """An operation error and a handler error that must not be retried both close the operation failed."""
    result, types = await on_both(server, reference_server, operation)
    assert result == f"NexusOperationError: nexus operation completed unsuccessfully <- {cause}"
    assert types == [*NEXUS_HEAD, "NEXUS_OPERATION_FAILED", *TAIL]


async def test_schedule_to_close_timeout(server: ServerProcess, reference_server: ServerProcess) -> None:
    result, types = await on_both(server, reference_server, "never_answer", timeout_s=3)
    assert result == (
        "NexusOperationError: nexus operation completed unsuccessfully <- TimeoutError: operation timed out"
    )
    assert types == [*NEXUS_HEAD, "NEXUS_OPERATION_TIMED_OUT", *TAIL]


async def test_an_async_operation_completes_when_its_workflow_does(
    server: ServerProcess, reference_server: ServerProcess
) -> None:
    """The handler starts a workflow (an operation token), the caller records NexusOperationStarted; the
    workflow's completion reaches the caller's run through the completion callback."""
    result, types = await on_both(server, reference_server, "greet_in_workflow")
    assert result == "Hello from a workflow, Nexus!"
    assert types == [
        *NEXUS_HEAD,
        "NEXUS_OPERATION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "NEXUS_OPERATION_COMPLETED",
        *TAIL,
    ]


async def test_an_async_operation_fails_when_its_workflow_fails(
    server: ServerProcess, reference_server: ServerProcess
) -> None:
    result, types = await on_both(server, reference_server, "fail_in_workflow")
    assert result == (
        "NexusOperationError: nexus operation completed unsuccessfully <- ApplicationError: Refused: cannot greet fail-Nexus"
    )
    assert types[-5:] == ["NEXUS_OPERATION_FAILED", *TAIL]


CANCELED_AFTER_START = (
    "NexusOperationError: Nexus operation cancelled after starting <- CancelledError: Cancelled"
)


@pytest.mark.parametrize(
    ("cancellation", "result", "after_cancel_request"),
    [
        # The handler hears of the cancel, its workflow is canceled, and that outcome closes the operation.
        (
            "WAIT_COMPLETED",
            "NexusOperationError: nexus operation completed unsuccessfully <- CancelledError: operation canceled",
            [
                "NEXUS_OPERATION_CANCEL_REQUEST_COMPLETED",
                "NEXUS_OPERATION_CANCELED",
                "WORKFLOW_EXECUTION_COMPLETED",
            ],
        ),
        # The workflow does not wait: it closes right after asking.
        ("TRY_CANCEL", CANCELED_AFTER_START, ["WORKFLOW_EXECUTION_COMPLETED"]),
    ],
)
async def test_cancelling_an_async_operation(
    server: ServerProcess,
    reference_server: ServerProcess,
    cancellation: str,
    result: str,
    after_cancel_request: list[str],
) -> None:
    """Compared without the workflow tasks: the handler's answer to the cancel request, the workflow task it
    wakes and the handler workflow's cancellation race each other, on the reference as here."""
    got, types = await on_both(
        server, reference_server, f"cancel:{cancellation}:wait_in_workflow", races=True
    )
    assert got == result
    assert types[:3] == ["WORKFLOW_EXECUTION_STARTED", "NEXUS_OPERATION_SCHEDULED", "NEXUS_OPERATION_STARTED"]
    requested = types.index("NEXUS_OPERATION_CANCEL_REQUESTED")
    assert types[requested + 1 :] == after_cancel_request


async def test_abandoning_an_async_operation(server: ServerProcess, reference_server: ServerProcess) -> None:
    """ABANDON sends no cancel request: the history shows none."""
    got, types = await on_both(server, reference_server, "cancel:ABANDON:wait_in_workflow")
    assert got == CANCELED_AFTER_START
    assert "NEXUS_OPERATION_CANCEL_REQUESTED" not in types


async def _describe_waiting_operation(srv: ServerProcess) -> dict:
    """DescribeWorkflowExecution's pending Nexus operation of a caller whose operation's workflow waits."""
    async with caller_and_handler(srv, NexusCaller, GreetingWorkflow) as rig:
        client, suffix, task_queue, endpoint, workflow_id = rig
        handle = await client.start_workflow(
            NexusCaller.run,
            args=[endpoint, "wait_in_workflow", 30],
            id=workflow_id,
            task_queue=task_queue,
        )
        for _ in range(100):
            described = await handle.describe()
            pending = described.raw_description.pending_nexus_operations
            if pending and pending[0].operation_token:
                break
            await asyncio.sleep(0.1)
        await handle.terminate()
    [operation] = pending
    shown = MessageToDict(operation)
    for key in ("scheduledTime", "lastAttemptCompleteTime"):
        assert key in shown
        shown[key] = "<time>"
    assert shown.pop("operationToken") == shown.pop("operationId")
    shown["endpoint"] = shown["endpoint"].replace(endpoint, "<endpoint>")
    return shown


async def test_describe_shows_the_pending_operation(
    server: ServerProcess, reference_server: ServerProcess
) -> None:
    ours = await _describe_waiting_operation(server)
    assert ours == await _describe_waiting_operation(reference_server)
    assert ours["state"] == "PENDING_NEXUS_OPERATION_STATE_STARTED" and ours["scheduledEventId"] == "5"


async def _first_failed_task(srv: ServerProcess, count: int, registered: bool = True) -> list[dict]:
    """The history of a run that schedules `count` operations in one workflow task, up to the task's failure
    (`registered`: whether the endpoint it names exists)."""
    async with caller_and_handler(srv, ManyNexusCalls) as rig:
        client, suffix, task_queue, endpoint, workflow_id = rig
        handle = await client.start_workflow(
            ManyNexusCalls.run,
            args=[endpoint if registered else f"unknown-{endpoint}", count],
            id=workflow_id,
            task_queue=task_queue,
        )
        for _ in range(200):
            events = (await handle.fetch_history()).events
            if any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED for e in events):
                break
            await asyncio.sleep(0.1)
        await handle.terminate()
    failed = next(
        i for i, e in enumerate(events) if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    )
    return normalize(
        events[: failed + 1], {endpoint: "<endpoint>", task_queue: "<task queue>", workflow_id: "<wf>"}
    )


@pytest.mark.parametrize(
    ("count", "registered", "cause"),
    [
        # 31 operations at once, one more than a run may have pending.
        (31, True, "WORKFLOW_TASK_FAILED_CAUSE_PENDING_NEXUS_OPERATIONS_LIMIT_EXCEEDED"),
        (1, False, "WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_NEXUS_OPERATION_ATTRIBUTES"),
    ],
    ids=["pending-limit", "unknown-endpoint"],
)
async def test_a_refused_schedule_fails_the_workflow_task(
    server: ServerProcess, reference_server: ServerProcess, count: int, registered: bool, cause: str
) -> None:
    """The workflow task fails as on the reference: cause, message and failure compared."""
    ours = await _first_failed_task(server, count, registered)
    theirs = await _first_failed_task(reference_server, count, registered)
    difference = diff(theirs, ours, "reference", server.kind)
    assert not difference, difference
    assert ours[-1]["attributes"]["cause"] == cause


async def _handler_starts_late(srv: ServerProcess, delay_s: float) -> tuple[str, list[str]]:
    """The caller's worker runs first; the handler's worker (another task queue) starts `delay_s` later."""
    client = await Client.connect(srv.address)
    suffix = uuid.uuid4().hex[:10]
    caller_queue, handler_queue, endpoint = (
        f"nexus-caller-{suffix}",
        f"nexus-handler-{suffix}",
        f"nexus-ep-{suffix}",
    )
    async with worker_endpoint(client.operator_service, endpoint, handler_queue):
        async with Worker(client, task_queue=caller_queue, workflows=[NexusCaller]):
            handle = await client.start_workflow(
                NexusCaller.run, args=[endpoint, "greet", 0], id=f"nexus-wf-{suffix}", task_queue=caller_queue
            )
            await asyncio.sleep(delay_s)
            async with Worker(client, task_queue=handler_queue, nexus_service_handlers=[GreetingHandler()]):
                result = await asyncio.wait_for(handle.result(), 60)
            types = [e["type"] for e in normalize(await handle.fetch_history())]
    return result, types


async def test_a_handler_that_starts_late_still_gets_the_request(
    server: ServerProcess, reference_server: ServerProcess
) -> None:
    """No worker polls the endpoint's queue when the operation is scheduled: the request waits (and is
    retried) until one does."""
    ours = await _handler_starts_late(server, 2)
    assert ours == await _handler_starts_late(reference_server, 2)
    assert ours == ("Hello, Nexus!", [*NEXUS_HEAD, "NEXUS_OPERATION_COMPLETED", *TAIL])


def _links(event, names: dict[str, str]) -> list[dict]:
    """An event's links as compared across servers: run and request ids replaced by markers, workflow ids
    by the names the test gave them."""
    shown = []
    for link in event.links:
        d = MessageToDict(link)
        ref = d.get("workflowEvent", {})
        if "runId" in ref:
            ref["runId"] = "<run id>"
        if "workflowId" in ref:
            ref["workflowId"] = names.get(ref["workflowId"], "<other workflow>")
        if "requestId" in ref.get("requestIdRef", {}):
            ref["requestIdRef"]["requestId"] = "<request id>"
        shown.append(d)
    return shown


def _first(events, event_type: int):
    return next(e for e in events if e.event_type == event_type)


async def _async_call_links(srv: ServerProcess) -> dict:
    """The links an asynchronous operation leaves: on the caller's NexusOperationStarted (to the handler's
    workflow) and on the handler workflow's start (to the caller's NexusOperationScheduled)."""
    async with caller_and_handler(srv, NexusCaller, GreetingWorkflow) as rig:
        client, suffix, task_queue, endpoint, workflow_id = rig
        handle = await client.start_workflow(
            NexusCaller.run,
            args=[endpoint, "greet_in_workflow", 0],
            id=workflow_id,
            task_queue=task_queue,
        )
        assert await handle.result() == "Hello from a workflow, Nexus!"
        caller = (await handle.fetch_history()).events
    started = _first(caller, EventType.EVENT_TYPE_NEXUS_OPERATION_STARTED)
    [to_handler] = started.links
    handler_id = to_handler.workflow_event.workflow_id
    names = {workflow_id: "<caller>", handler_id: "<handler>"}
    handler_events = (await client.get_workflow_handle(handler_id).fetch_history()).events
    handler_start = _first(handler_events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)
    callbacks = handler_start.workflow_execution_started_event_attributes.completion_callbacks
    return {
        "started": _links(started, names),
        "completed": _links(_first(caller, EventType.EVENT_TYPE_NEXUS_OPERATION_COMPLETED), names),
        "handler started": _links(handler_start, names),
        "handler callback": [_links(cb, names) for cb in callbacks],
    }


async def test_an_async_operation_links_caller_and_handler(
    server: ServerProcess, reference_server: ServerProcess
) -> None:
    """The handler's answer names the workflow it started: the caller's NexusOperationStarted keeps that
    link, and the handler's workflow keeps the link back to the caller's NexusOperationScheduled (on its
    completion callback)."""
    ours = await _async_call_links(server)
    assert ours == await _async_call_links(reference_server)
    assert ours["started"][0]["workflowEvent"]["workflowId"] == "<handler>"
    # The link back travels on the completion callback; the start's copy of it is dropped (kept once).
    [[back]] = ours["handler callback"]
    assert back["workflowEvent"]["eventRef"]["eventType"] == "EVENT_TYPE_NEXUS_OPERATION_SCHEDULED"
    assert ours["handler started"] == []


async def _signal_links(srv: ServerProcess) -> dict:
    """A handler signals a workflow: the links on its WorkflowExecutionSignaled event and on the caller's
    NexusOperationCompleted."""
    async with caller_and_handler(srv, NexusCaller, SignalTarget) as rig:
        client, suffix, task_queue, endpoint, workflow_id = rig
        target_id = f"nexus-target-{suffix}"
        names = {workflow_id: "<caller>", target_id: "<target>"}
        target = await client.start_workflow(SignalTarget.run, id=target_id, task_queue=task_queue)
        handle = await client.start_workflow(
            NexusCaller.run,
            args=[endpoint, f"signal_target:{target_id}", 0],
            id=workflow_id,
            task_queue=task_queue,
        )
        assert await handle.result() == "signaled"
        assert await target.result() == "from Nexus"
        signaled = _first(
            (await target.fetch_history()).events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        )
        completed = _first(
            (await handle.fetch_history()).events, EventType.EVENT_TYPE_NEXUS_OPERATION_COMPLETED
        )
    return {"signaled": _links(signaled, names), "completed": _links(completed, names)}


async def test_a_handlers_signal_carries_the_callers_link(
    server: ServerProcess, reference_server: ServerProcess
) -> None:
    """A signal a Nexus handler sends keeps the link to the caller's NexusOperationScheduled event."""
    ours = await _signal_links(server)
    assert ours == await _signal_links(reference_server)
    [link] = ours["signaled"]
    assert link["workflowEvent"]["workflowId"] == "<caller>"
    assert link["workflowEvent"]["eventRef"]["eventType"] == "EVENT_TYPE_NEXUS_OPERATION_SCHEDULED"


def _callbacks(described) -> list[dict]:
    shown = []
    for info in described.raw_description.callbacks:
        d = MessageToDict(info)
        for key in ("registrationTime", "lastAttemptCompleteTime"):
            if key in d:
                d[key] = "<time>"
        header = d["callback"]["nexus"].get("header", {})
        d["callback"]["nexus"]["header"] = sorted(header)
        d["callback"].pop("links", None)
        shown.append(d)
    return shown


async def _shared_handler(srv: ServerProcess, count: int) -> dict:
    """`count` operations backed by one workflow (USE_EXISTING): what its describe and history show
    before and after it ends, and what the caller got."""
    async with caller_and_handler(srv, SharedCalls, SharedWorkflow) as rig:
        client, suffix, task_queue, endpoint, workflow_id = rig
        handle = await client.start_workflow(
            SharedCalls.run, args=[endpoint, suffix, count], id=workflow_id, task_queue=task_queue
        )
        shared = client.get_workflow_handle(f"shared-{suffix}")
        for _ in range(300):
            caller_events = (await handle.fetch_history()).events
            started = [
                e for e in caller_events if e.event_type == EventType.EVENT_TYPE_NEXUS_OPERATION_STARTED
            ]
            if len(started) == count:
                break
            await asyncio.sleep(0.1)
        running = await shared.describe()
        await shared.signal(SharedWorkflow.finish)
        result = await asyncio.wait_for(handle.result(), RESULT_TIMEOUT_S)
        for _ in range(100):
            closed = await shared.describe()
            if all(cb.state == 4 for cb in closed.raw_description.callbacks):  # CALLBACK_STATE_SUCCEEDED
                break
            await asyncio.sleep(0.1)
        shared_events = (await shared.fetch_history()).events
    names = {workflow_id: "<caller>", f"shared-{suffix}": "<shared>"}
    updates = [
        {
            "attached request id": bool(
                e.workflow_execution_options_updated_event_attributes.attached_request_id
            ),
            "attached callbacks": len(
                e.workflow_execution_options_updated_event_attributes.attached_completion_callbacks
            ),
            "links": _links(e, names),
            "worker may ignore": e.worker_may_ignore,
        }
        for e in shared_events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED
    ]
    request_ids = running.raw_description.workflow_extended_info.request_id_infos
    return {
        "result": [text.replace(suffix, "<name>") for text in result],
        "running callbacks": _callbacks(running),
        "closed callbacks": _callbacks(closed),
        "request id events": sorted(EventType.Name(info.event_type) for info in request_ids.values()),
        "options updated": updates,
        "caller started links": [_links(e, names) for e in started],
    }


async def test_operations_attach_to_one_running_workflow(
    server: ServerProcess, reference_server: ServerProcess
) -> None:
    """Operations whose handler starts the same workflow id with USE_EXISTING attach their callbacks (and
    request id and links) to the one running workflow: each completes when it closes."""
    ours = await _shared_handler(server, 3)
    assert ours == await _shared_handler(reference_server, 3)
    assert ours["result"] == ["Hello to all, <name>!"] * 3
    assert [cb["state"] for cb in ours["closed callbacks"]] == ["CALLBACK_STATE_SUCCEEDED"] * 3
    assert len(ours["options updated"]) == 2


async def _workflow_signal_with_start(srv: ServerProcess) -> dict:
    """A workflow signal-with-starts another (through the server's own Nexus endpoint, __temporal_system):
    both histories, the links on them and the operation's result as the caller's history keeps it."""
    client = await Client.connect(srv.address)
    suffix = uuid.uuid4().hex[:10]
    task_queue, workflow_id, target_id = f"nexus-tq-{suffix}", f"nexus-wf-{suffix}", f"nexus-target-{suffix}"
    async with Worker(client, task_queue=task_queue, workflows=[SignalWithStartCaller, SignalTarget]):
        handle = await client.start_workflow(
            SignalWithStartCaller.run, args=[target_id, task_queue], id=workflow_id, task_queue=task_queue
        )
        assert await asyncio.wait_for(handle.result(), RESULT_TIMEOUT_S) == target_id
        target = client.get_workflow_handle(target_id)
        assert await asyncio.wait_for(target.result(), RESULT_TIMEOUT_S) == "from a workflow"
        caller_events = (await handle.fetch_history()).events
        target_events = (await target.fetch_history()).events
    names = {workflow_id: "<caller>", target_id: "<target>"}
    redactions = {task_queue: "<task queue>", workflow_id: "<caller>", target_id: "<target>"}
    completed = _first(caller_events, EventType.EVENT_TYPE_NEXUS_OPERATION_COMPLETED)
    result = completed.nexus_operation_completed_event_attributes.result
    return {
        "caller": [e["type"] for e in normalize(caller_events, redactions)],
        "scheduled": normalize(
            [_first(caller_events, EventType.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED)], redactions
        )[0]["attributes"]["endpoint"],
        "completed links": _links(completed, names),
        "result metadata": sorted((k, v.decode()) for k, v in result.metadata.items()),
        "target": [e["type"] for e in normalize(target_events, redactions)],
        "target started links": _links(target_events[0], names),
        "target signaled links": _links(
            _first(target_events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED), names
        ),
    }


async def test_a_workflows_signal_with_start_goes_through_the_system_endpoint(
    server: ServerProcess, reference_server: ServerProcess
) -> None:
    """workflow.signal_with_start_workflow is a Nexus operation on __temporal_system that the server runs
    itself: a synchronous result, the signal's link on the caller's NexusOperationCompleted, the caller's
    link on the target's events."""
    ours = await _workflow_signal_with_start(server)
    assert ours == await _workflow_signal_with_start(reference_server)
    assert ours["scheduled"] == "__temporal_system"
    assert "NEXUS_OPERATION_COMPLETED" in ours["caller"]
    assert ours["target signaled links"][0]["workflowEvent"]["workflowId"] == "<caller>"


async def _cancel_headers(srv: ServerProcess) -> dict:
    """The headers a workflow gave an operation, as its cancel request reaches the handler."""
    async with caller_and_handler(srv, CancelWithHeaders) as rig:
        client, suffix, task_queue, endpoint, workflow_id = rig
        handle = await client.start_workflow(
            CancelWithHeaders.run, args=[endpoint, suffix], id=workflow_id, task_queue=task_queue
        )
        outcome = await asyncio.wait_for(handle.result(), RESULT_TIMEOUT_S)
        types = [e["type"] for e in normalize(await handle.fetch_history())]
    headers = CANCEL_HEADERS.pop(f"recorded-{suffix}")
    return {
        "outcome": outcome,
        "history": types,
        "caller's headers": {
            k: v.replace(suffix, "<name>") for k, v in headers.items() if k.startswith("x-")
        },
    }


async def test_a_cancel_request_carries_the_workflows_headers(
    server: ServerProcess, reference_server: ServerProcess
) -> None:
    """The Nexus headers a workflow gives an operation reach the handler with the cancel request too."""
    ours = await _cancel_headers(server)
    assert ours == await _cancel_headers(reference_server)
    assert ours["caller's headers"] == {"x-caller-header": "for <name>"}
    assert "NEXUS_OPERATION_CANCEL_REQUEST_COMPLETED" in ours["history"]
