"""Nexus over HTTP between two servers: a caller workflow on server A calls, through an endpoint whose target
is `external { url }`, an operation whose handler worker polls server B; the URL is B's Nexus HTTP route
(`/nexus/endpoints/{id}/services`), and an asynchronous operation's outcome comes back to A by B's POST to A's
callback route (`/namespaces/{namespace}/nexus/callback`, the URL A gave the handler).

Run Hourglass -> Hourglass, reference -> reference, and mixed both ways (a strong interoperability proof:
each side speaks the protocol to the other's implementation); every caller history is compared with the
reference -> reference one. The reference dev server leaves the callback URL template unset (its external
endpoints never attempt a start), so its caller gets the template, as its own functional tests set it.
Also: a forged or misplaced callback token is refused with the reference's error and records nothing.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from aiohttp import web
from temporalio.api.common.v1 import Callback, WorkflowType
from temporalio.api.enums.v1 import CallbackState, EventType
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import CreateNexusEndpointRequest, DeleteNexusEndpointRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import StartWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from . import servers
from .conftest import _start
from .history_diff import diff, normalize
from .nexus_endpoint import worker_endpoint
from .nexus_workflows import GreetingHandler, GreetingWorkflow, NexusCaller
from .servers import HOURGLASS, REFERENCE, ServerProcess
from .test_nexus import without_workflow_tasks

CALLBACK_TEMPLATE_KEY = "component.nexusoperations.callback.endpoint.template"
# Completion callbacks to any address, http included (both servers allow none by default).
ALLOW_ANY_ADDRESS = 'callback.allowedAddresses=[{"Pattern":"*","AllowInsecure":true}]'


@pytest.fixture(scope="module")
async def reference_caller(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    """A reference dev server whose external endpoints get its own HTTP port's callback route, and which
    delivers completion callbacks to any address (its default allows none). Both the caller and the handler
    server of the reference -> reference runs: its external endpoint calls its own HTTP port."""
    srv = servers.reference_server(tmp_path_factory.mktemp("nexus-http-reference"))
    template = f"http://127.0.0.1:{srv.http_port}/namespaces/{{{{.NamespaceName}}}}/nexus/callback"
    srv.argv += [
        "--dynamic-config-value", f'{CALLBACK_TEMPLATE_KEY}="{template}"',
        "--dynamic-config-value", ALLOW_ANY_ADDRESS,
    ]  # fmt: skip
    try:
        yield await _start(srv)
    finally:
        srv.stop()


@pytest.fixture(scope="module")
async def second_hourglass(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    """A second Hourglass dev server (its own store): the handler's side, allowing callbacks anywhere."""
    srv = servers.hourglass_server(tmp_path_factory.mktemp("nexus-http-hourglass"))
    srv.argv += ["--dynamic-config-value", ALLOW_ANY_ADDRESS]
    try:
        yield await _start(srv)
    finally:
        srv.stop()


def pick(
    servers_: dict[str, ServerProcess], caller_kind: str, handler_kind: str
) -> tuple[ServerProcess, ServerProcess]:
    """(caller server, handler server) for a combination; Hourglass ones skip when the target is the reference."""
    if HOURGLASS in (caller_kind, handler_kind) and servers_["server"].kind == REFERENCE:
        pytest.skip("an Hourglass side needs Hourglass as the compat target")
    caller = servers_["server"] if caller_kind == HOURGLASS else servers_["reference_caller"]
    handler = servers_["second_hourglass"] if handler_kind == HOURGLASS else servers_["reference_caller"]
    return caller, handler


@pytest.fixture
def both_sides(
    server: ServerProcess,
    reference_caller: ServerProcess,
    second_hourglass: ServerProcess,
) -> dict[str, ServerProcess]:
    return {
        "server": server,
        "reference_caller": reference_caller,
        "second_hourglass": second_hourglass,
    }


@asynccontextmanager
async def external_endpoint(operator_service, name: str, url: str) -> AsyncIterator[None]:
    created = await operator_service.create_nexus_endpoint(
        CreateNexusEndpointRequest(
            spec=EndpointSpec(name=name, target=EndpointTarget(external=EndpointTarget.External(url=url)))
        )
    )
    try:
        yield
    finally:
        await operator_service.delete_nexus_endpoint(
            DeleteNexusEndpointRequest(id=created.endpoint.id, version=created.endpoint.version)
        )


async def call_across(
    caller: ServerProcess, handler: ServerProcess, operation: str, route: str = "endpoint"
) -> tuple[str, list[dict], list[tuple[str, int, str, str]]]:
    """Run NexusCaller on `caller` against `operation` served by a worker of `handler`, over HTTP both ways
    (`route`: the handler's endpoint route, or its task-queue route); the workflow's result, its normalized
    history and the handler workflow's callbacks."""
    caller_client = await Client.connect(caller.address)
    handler_client = await Client.connect(handler.address)
    suffix = uuid.uuid4().hex[:10]
    handler_tq, caller_tq = f"nexus-handler-{suffix}", f"nexus-caller-{suffix}"
    endpoint, workflow_id = f"nexus-http-{suffix}", f"nexus-http-wf-{suffix}"
    async with worker_endpoint(handler_client.operator_service, f"{endpoint}-handler", handler_tq) as created:
        url = f"http://127.0.0.1:{handler.http_port}/nexus/endpoints/{created.endpoint.id}/services"
        if route == "task-queue":
            url = f"http://127.0.0.1:{handler.http_port}/namespaces/default/task-queues/{handler_tq}/nexus-services"
        async with (
            external_endpoint(caller_client.operator_service, endpoint, url),
            Worker(
                handler_client,
                task_queue=handler_tq,
                workflows=[GreetingWorkflow],
                nexus_service_handlers=[GreetingHandler()],
            ),
            Worker(caller_client, task_queue=caller_tq, workflows=[NexusCaller]),
        ):
            handle = await caller_client.start_workflow(
                NexusCaller.run, args=[endpoint, operation, 60], id=workflow_id, task_queue=caller_tq
            )
            result = await handle.result(rpc_timeout=None)
            history = await handle.fetch_history()
            callbacks = await handler_callbacks(handler_client, history, caller)
    redactions = {endpoint: "<endpoint>", caller_tq: "<task queue>", workflow_id: "<workflow id>"}
    return result, normalize(history, redactions), callbacks


async def handler_callbacks(
    client: Client, history, caller: ServerProcess
) -> list[tuple[str, int, str, str]]:
    """The handler workflow's completion callbacks as its describe shows them once delivered (state,
    attempt, URL, trigger); [] for a synchronous operation (no workflow)."""
    scheduled = next(e for e in history.events if e.HasField("nexus_operation_scheduled_event_attributes"))
    if not any(e.HasField("nexus_operation_started_event_attributes") for e in history.events):
        return []
    handle = client.get_workflow_handle(
        f"greeting-{scheduled.nexus_operation_scheduled_event_attributes.request_id}"
    )
    for _ in range(50):
        described = (await handle.describe()).raw_description
        if all(c.state != CallbackState.CALLBACK_STATE_SCHEDULED for c in described.callbacks):
            break
        await asyncio.sleep(0.2)
    return [
        (
            CallbackState.Name(c.state),
            c.attempt,
            c.callback.nexus.url.replace(str(caller.http_port), "<caller http port>"),
            c.trigger.WhichOneof("variant"),
        )
        for c in described.callbacks
    ]


COMBINATIONS = [(HOURGLASS, HOURGLASS), (HOURGLASS, REFERENCE), (REFERENCE, HOURGLASS)]
ASYNC_DONE = [
    "NEXUS_OPERATION_SCHEDULED",
    "NEXUS_OPERATION_STARTED",
    "WORKFLOW_TASK_SCHEDULED",
    "WORKFLOW_TASK_STARTED",
    "WORKFLOW_TASK_COMPLETED",
]


@pytest.mark.parametrize(("caller_kind", "handler_kind"), COMBINATIONS)
@pytest.mark.parametrize(
    ("operation", "expected", "outcome_event"),
    [
        ("greet_in_workflow", "Hello from a workflow, Nexus!", "NEXUS_OPERATION_COMPLETED"),
        (
            "fail_in_workflow",
            "NexusOperationError: nexus operation completed unsuccessfully <- "
            "ApplicationError: Refused: cannot greet fail-Nexus",
            "NEXUS_OPERATION_FAILED",
        ),
        ("greet", "Hello, Nexus!", "NEXUS_OPERATION_COMPLETED"),
        (
            "refuse",
            "NexusOperationError: nexus operation completed unsuccessfully <- "
            "ApplicationError: OperationError: no greeting for Nexus",
            "NEXUS_OPERATION_FAILED",
        ),
        (
            "bad_request",
            "NexusOperationError: nexus operation completed unsuccessfully <- HandlerError: cannot greet Nexus",
            "NEXUS_OPERATION_FAILED",
        ),
    ],
)
async def test_an_operation_across_servers_over_http(
    both_sides: dict[str, ServerProcess],
    caller_kind: str,
    handler_kind: str,
    operation: str,
    expected: str,
    outcome_event: str,
) -> None:
    """The caller's history, and what its workflow saw, are the reference -> reference ones."""
    caller, handler = pick(both_sides, caller_kind, handler_kind)
    theirs, their_history, their_callbacks = await call_across(
        both_sides["reference_caller"], both_sides["reference_caller"], operation
    )
    ours, our_history, our_callbacks = await call_across(caller, handler, operation)
    # The handler's describe: the callback delivered at the first attempt, on both.
    assert our_callbacks == their_callbacks
    if operation.endswith("_in_workflow"):
        assert [c[:2] for c in our_callbacks] == [("CALLBACK_STATE_SUCCEEDED", 1)]
    assert theirs == expected
    assert ours == expected
    types = [e["type"] for e in our_history]
    assert outcome_event in types
    if operation == "greet_in_workflow":
        assert types[types.index("NEXUS_OPERATION_SCHEDULED") : types.index(outcome_event)] == ASYNC_DONE
    elif operation == "fail_in_workflow":
        assert types.index("NEXUS_OPERATION_STARTED") < types.index(outcome_event)
    if operation == "fail_in_workflow":
        # The handler's workflow fails at once: its completion and the workflow task after the start race
        # (either may come first, on the reference too).
        their_history, our_history = (
            without_workflow_tasks(their_history),
            without_workflow_tasks(our_history),
        )
    difference = diff(their_history, our_history, "reference->reference", f"{caller_kind}->{handler_kind}")
    assert not difference, f"histories differ\n{difference}"


@pytest.mark.parametrize(("caller_kind", "handler_kind"), COMBINATIONS)
async def test_cancelling_an_operation_across_servers_over_http(
    both_sides: dict[str, ServerProcess], caller_kind: str, handler_kind: str
) -> None:
    """The caller cancels a started operation: the cancel request goes to the handler's server over HTTP,
    the handler workflow is canceled, and its cancellation comes back by the callback. Compared without the
    workflow tasks, which race the handler's answers (on the reference too)."""
    caller, handler = pick(both_sides, caller_kind, handler_kind)
    operation = "cancel:WAIT_COMPLETED:wait_in_workflow"
    theirs, their_history, their_callbacks = await call_across(
        both_sides["reference_caller"], both_sides["reference_caller"], operation
    )
    ours, our_history, our_callbacks = await call_across(caller, handler, operation)
    assert (
        ours
        == theirs
        == (
            "NexusOperationError: nexus operation completed unsuccessfully <- CancelledError: operation canceled"
        )
    )
    assert our_callbacks == their_callbacks
    types = [e["type"] for e in without_workflow_tasks(our_history)]
    assert types[types.index("NEXUS_OPERATION_CANCEL_REQUESTED") + 1 :] == [
        "NEXUS_OPERATION_CANCEL_REQUEST_COMPLETED",
        "NEXUS_OPERATION_CANCELED",
        "WORKFLOW_EXECUTION_COMPLETED",
    ]
    difference = diff(
        without_workflow_tasks(their_history),
        without_workflow_tasks(our_history),
        "reference->reference",
        f"{caller_kind}->{handler_kind}",
    )
    assert not difference, f"histories differ\n{difference}"


@pytest.mark.parametrize(("caller_kind", "handler_kind"), COMBINATIONS)
async def test_the_task_queue_route(
    both_sides: dict[str, ServerProcess], caller_kind: str, handler_kind: str
) -> None:
    """`/namespaces/{namespace}/task-queues/{task queue}/nexus-services` as the external endpoint's URL: the
    handler's worker on that queue gets the operation, as through the endpoint route."""
    caller, handler = pick(both_sides, caller_kind, handler_kind)
    operation = "greet_in_workflow"
    theirs, their_history, _ = await call_across(
        both_sides["reference_caller"], both_sides["reference_caller"], operation, "task-queue"
    )
    ours, our_history, _ = await call_across(caller, handler, operation, "task-queue")
    assert ours == theirs == "Hello from a workflow, Nexus!"
    difference = diff(their_history, our_history, "reference->reference", f"{caller_kind}->{handler_kind}")
    assert not difference, f"histories differ\n{difference}"


@asynccontextmanager
async def async_handler() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A Nexus handler of our own on a free port: every start is an asynchronous one (201, token "op-1");
    yields its URL and the headers of the requests it got (the caller's callback URL and token among them)."""
    seen: list[dict[str, str]] = []

    async def start(request: web.Request) -> web.Response:
        seen.append(
            {
                **{k.lower(): v for k, v in request.headers.items()},
                "callback": request.query.get("callback", ""),
            }
        )
        return web.json_response({"token": "op-1", "state": "running"}, status=201)

    app = web.Application()
    app.router.add_post("/{tail:.*}", start)
    runner = web.AppRunner(app)
    await runner.setup()
    port = servers.free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/handler", seen
    finally:
        await runner.cleanup()


def tampered(token: str) -> str:
    """The caller's token with one byte of its sealed part changed."""
    envelope = json.loads(token)
    sealed = bytearray(base64.b64decode(envelope["d"]))
    sealed[len(sealed) // 2] ^= 0x01
    return json.dumps({"v": 1, "d": base64.b64encode(bytes(sealed)).decode()}, separators=(",", ":"))


@pytest.mark.parametrize("kind", [HOURGLASS, REFERENCE])
async def test_a_forged_callback_token_is_refused(
    server: ServerProcess, reference_caller: ServerProcess, kind: str
) -> None:
    """An operation waits for its completion; completions with no token, a token the server did not seal
    (one byte changed), or the right token on another namespace's route are refused with the reference's
    400 "invalid callback token", and nothing is recorded; the genuine completion then completes it."""
    if kind == HOURGLASS and server.kind == REFERENCE:
        pytest.skip("needs Hourglass as the compat target")
    srv = server if kind == HOURGLASS else reference_caller
    client = await Client.connect(srv.address)
    suffix = uuid.uuid4().hex[:10]
    endpoint, task_queue = f"nexus-forged-{suffix}", f"nexus-forged-{suffix}"
    invalid = {
        "message": "invalid callback token",
        "metadata": {"type": "nexus.HandlerError"},
        "details": {"type": "BAD_REQUEST"},
    }
    async with (
        async_handler() as (url, seen),
        external_endpoint(client.operator_service, endpoint, url),
        Worker(client, task_queue=task_queue, workflows=[NexusCaller]),
        httpx.AsyncClient(timeout=10) as http,
    ):
        handle = await client.start_workflow(
            NexusCaller.run,
            args=[endpoint, "greet_in_workflow", 60],
            id=f"nexus-forged-{suffix}",
            task_queue=task_queue,
        )
        for _ in range(100):
            if seen and "NEXUS_OPERATION_STARTED" in await event_types(handle):
                break
            await asyncio.sleep(0.2)
        callback, token = seen[0]["callback"], seen[0]["nexus-callback-temporal-callback-token"]
        assert callback == f"http://127.0.0.1:{srv.http_port}/namespaces/default/nexus/callback"
        succeeded = {"Nexus-Operation-State": "succeeded", "Content-Type": "application/json"}
        forged = [
            (callback, succeeded),
            (callback, {**succeeded, "Temporal-Callback-Token": "garbage"}),
            (
                callback.replace("/default/", "/another-namespace/"),
                {**succeeded, "Temporal-Callback-Token": token},
            ),
        ]
        if kind == HOURGLASS:
            # Hourglass seals its tokens: one changed byte is caught. The reference's are plain protobuf, which
            # a changed byte may leave readable (naming another operation), so it is not asked there.
            forged.append((callback, {**succeeded, "Temporal-Callback-Token": tampered(token)}))
        for url_, headers in forged:
            response = await http.post(url_, headers=headers, content=b'"forged"')
            assert (response.status_code, response.json()) == (400, invalid), (url_, headers)
        response = await http.post(
            callback, headers={"Nexus-Operation-State": "bogus", "Temporal-Callback-Token": token}
        )
        assert response.status_code == 400
        assert response.json()["message"] == 'invalid request operation state: "bogus"'
        too_long = {**succeeded, "Temporal-Callback-Token": token, "Nexus-Operation-Token": "t" * 5000}
        response = await http.post(callback, headers=too_long, content=b'"x"')
        assert (response.status_code, response.json()["message"]) == (
            400,
            "operation token length exceeds allowed limit (5000/4096)",
        )
        types = await event_types(handle)
        assert "NEXUS_OPERATION_STARTED" in types
        assert not any(
            t.startswith("NEXUS_OPERATION_") for t in types[types.index("NEXUS_OPERATION_STARTED") + 1 :]
        )
        response = await http.post(
            callback, headers={**succeeded, "Temporal-Callback-Token": token}, content=b'"genuine"'
        )
        assert response.status_code == 200, response.text
        assert await handle.result(rpc_timeout=None) == "genuine"


async def event_types(handle) -> list[str]:
    history = await handle.fetch_history()
    return [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events]


async def start_with_callback(srv: ServerProcess, url: str) -> str:
    """Start a workflow with a completion callback to `url`: "" when accepted, else the error's message."""
    client = await Client.connect(srv.address)
    request = StartWorkflowExecutionRequest(
        namespace="default",
        workflow_id=f"callback-{uuid.uuid4().hex[:10]}",
        workflow_type=WorkflowType(name="NotRun"),
        task_queue=TaskQueue(name=f"callback-{uuid.uuid4().hex[:10]}"),
        request_id=str(uuid.uuid4()),
        completion_callbacks=[Callback(nexus=Callback.Nexus(url=url))],
    )
    try:
        await client.workflow_service.start_workflow_execution(request)
    except RPCError as e:
        assert e.status == RPCStatusCode.INVALID_ARGUMENT, e
        return e.message
    return ""


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:1/callback", "invalid url: url does not match any configured callback address: "),
        ("https://example.com/callback", "invalid url: url does not match any configured callback address: "),
        ("ftp://example.com/callback", "invalid url: unknown scheme: "),
    ],
)
async def test_callback_addresses_are_allowed_by_configuration_only(
    server: ServerProcess,
    reference_server: ServerProcess,
    second_hourglass: ServerProcess,
    reference_caller: ServerProcess,
    url: str,
    message: str,
) -> None:
    """Without callback.allowedAddresses a start's http(s) completion callback is refused, as on the
    reference (the server would POST wherever a client asks); with a rule that matches it is accepted."""
    ours, theirs = await start_with_callback(server, url), await start_with_callback(reference_server, url)
    assert ours == theirs == message + url
    allowed = "" if not url.startswith("ftp") else message + url
    assert await start_with_callback(second_hourglass, url) == await start_with_callback(
        reference_caller, url
    )
    assert await start_with_callback(second_hourglass, url) == allowed
