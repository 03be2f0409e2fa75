"""The HTTP API (`--http-port`): what a serverless function does with `httpx` alone - start a workflow, signal,
query and update it, describe, list and terminate it - on the target server, and the same calls' JSON on
Hourglass and the reference compared after normalizing ids and times. A worker of the official Python SDK
runs the workflow behind it. Errors: the reference's HTTP status and `{"code", "message", "details"}`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError

from .helpers import new_id, run_worker
from .servers import REFERENCE, ServerProcess, compat_target, hourglass_server, reference_server
from .workflows import Counter

NS = "/api/v1/namespaces/default"
# A uuid, alone or ending a name (`tq-<uuid>`); a time; a worker's sticky queue (`pid@host`).
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
_STICKY = re.compile(r"^\d+@\S+$")
# Values that differ between any two runs of the same calls (counters, sizes), normalized away.
_RUN_SPECIFIC = {"taskId", "requestId", "historySizeBytes", "stateTransitionCount"}


def http_base(srv: ServerProcess) -> str:
    assert srv.http_port is not None, f"{srv} serves no HTTP API"
    return f"http://{srv.ip}:{srv.http_port}"


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=http_base(server), timeout=30) as c:
        yield c


def normalize(value: Any, drop: set[str] = frozenset(), ids: dict[str, str] | None = None) -> Any:
    """`value` with ids, times and run-specific counters replaced by stable names (the same id keeps its
    name), the SDK's flag list sorted, and the keys `drop` removed."""
    ids = {} if ids is None else ids
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in drop:
                continue
            if k == "coreUsedFlags":  # the SDK lists the same flags in any order
                v = sorted(v)
            out[normalize(k, drop, ids)] = "<varies>" if k in _RUN_SPECIFIC else normalize(v, drop, ids)
        return out
    if isinstance(value, list):
        return [normalize(v, drop, ids) for v in value]
    if isinstance(value, str):
        if _UUID.search(value):
            return ids.setdefault(value, f"<id{len(ids)}>")
        if _TIME.match(value):
            return "<time>"
        if _STICKY.match(value):
            return "<sticky queue>"
    return value


async def _ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, (response.status_code, response.text)
    # Hourglass says application/json; the reference's start-dev says `*` (its marshaler is registered for
    # every type) - a serverless client parses the body as JSON either way.
    content_type = response.headers["content-type"]
    assert content_type.startswith("application/json") or content_type == "*", content_type
    return response.json()


async def _visible(http: httpx.AsyncClient, workflow_id: str, status: str) -> dict[str, Any]:
    """The list entry of `workflow_id` once visibility shows it with `status`."""
    deadline = time.monotonic() + 15
    while True:
        body = await _ok(await http.get(f"{NS}/workflows", params={"query": f"WorkflowId = '{workflow_id}'"}))
        executions = body.get("executions", [])
        if executions and executions[0]["status"] == status:
            return body
        assert time.monotonic() < deadline, f"{workflow_id} not listed as {status}: {body}"
        await asyncio.sleep(0.2)


async def _wait_for_event(http: httpx.AsyncClient, workflow_id: str, event_type: str) -> None:
    deadline = time.monotonic() + 15
    while True:
        history = await _ok(await http.get(f"{NS}/workflows/{workflow_id}/history"))
        if any(e["eventType"] == event_type for e in history["history"]["events"]):
            return
        assert time.monotonic() < deadline, f"no {event_type} in {workflow_id}'s history: {history}"
        await asyncio.sleep(0.1)


async def run_calls(http: httpx.AsyncClient, client: Client, workflow_id: str) -> dict[str, Any]:
    """Every call of a serverless client's life with one workflow; returns each answer's JSON by name."""
    answers: dict[str, Any] = {}
    async with run_worker(client, workflows=[Counter], activities=[]) as task_queue:
        answers["start"] = await _ok(
            await http.post(
                f"{NS}/workflows/{workflow_id}",
                json={
                    "workflowType": {"name": "Counter"},
                    "taskQueue": {"name": task_queue},
                    "memo": {"fields": {"owner": {"team": "billing", "tier": 2}}},
                    "workflowIdReusePolicy": "AllowDuplicate",  # the reference's short enum names
                },
            )
        )
        # The worker has run the first workflow task (else the update may ride on it or on its own).
        await _wait_for_event(http, workflow_id, "EVENT_TYPE_WORKFLOW_TASK_COMPLETED")
        answers["update"] = await _ok(
            await http.post(
                f"{NS}/workflows/{workflow_id}/update/add",
                json={
                    "request": {"meta": {"updateId": "add-5"}, "input": {"args": [5]}},
                    "waitPolicy": {"lifecycleStage": "UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED"},
                },
            )
        )
        answers["signal"] = await _ok(await http.post(f"{NS}/workflows/{workflow_id}/signal/open", json={}))
        answers["query"] = await _ok(await http.post(f"{NS}/workflows/{workflow_id}/query/value", json={}))
        answers["describe"] = await _ok(await http.get(f"{NS}/workflows/{workflow_id}"))
        answers["list"] = await _visible(http, workflow_id, "WORKFLOW_EXECUTION_STATUS_RUNNING")
        answers["terminate"] = await _ok(
            await http.post(f"{NS}/workflows/{workflow_id}/terminate", json={"reason": "done over HTTP"})
        )
        answers["history"] = await _ok(await http.get(f"{NS}/workflows/{workflow_id}/history"))
    return answers


async def test_a_serverless_client_drives_a_workflow_over_http(
    server: ServerProcess, http: httpx.AsyncClient, client: Client
) -> None:
    workflow_id = new_id("http")
    answers = await run_calls(http, client, workflow_id)

    run_id = answers["start"]["runId"]
    assert answers["start"]["started"] is True
    assert answers["update"]["outcome"] == {"success": [5]}  # the payload in shorthand: the JSON value
    assert answers["update"]["stage"] == "UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED"
    assert answers["query"] == {"queryResult": [5]}
    info = answers["describe"]["workflowExecutionInfo"]
    assert info["execution"] == {"workflowId": workflow_id, "runId": run_id}
    assert info["status"] == "WORKFLOW_EXECUTION_STATUS_RUNNING"
    assert info["memo"] == {"fields": {"owner": {"team": "billing", "tier": 2}}}
    assert [e["execution"]["runId"] for e in answers["list"]["executions"]] == [run_id]
    events = answers["history"]["history"]["events"]
    assert [e["eventType"] for e in events][-1] == "EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED"
    assert events[-1]["workflowExecutionTerminatedEventAttributes"]["reason"] == "done over HTTP"
    signaled = [e for e in events if e["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED"]
    assert [e["workflowExecutionSignaledEventAttributes"]["signalName"] for e in signaled] == ["open"]

    # What the HTTP client did is what the SDK sees.
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    assert (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    memo = await (await handle.describe()).memo_value("owner")
    assert memo == {"team": "billing", "tier": 2}


async def test_same_json_as_the_reference(
    server: ServerProcess, reference_server: ServerProcess, client: Client, reference_client: Client
) -> None:
    async with (
        httpx.AsyncClient(base_url=http_base(server), timeout=30) as ours,
        httpx.AsyncClient(base_url=http_base(reference_server), timeout=30) as theirs,
    ):
        # Ids of their own: the two may be one server (HOURGLASS_COMPAT_TARGET=reference).
        mine = await run_calls(ours, client, new_id("http-diff"))
        reference = await run_calls(theirs, reference_client, new_id("http-diff"))
    assert mine.keys() == reference.keys()
    for name in mine:
        # Every field, the gRPC answers' too: start's status and link, signal's and update's link, an
        # empty meteringMetadata per completed workflow task, `identity: frontend-service` on termination.
        assert normalize(mine[name]) == normalize(reference[name]), name


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "expected"),
    [
        (
            "GET",
            f"{NS}/workflows/no-such-workflow",
            None,
            404,
            {
                "code": 5,
                "message": "workflow not found for ID: no-such-workflow",
                "details": [{"@type": "type.googleapis.com/temporal.api.errordetails.v1.NotFoundFailure"}],
            },
        ),
        ("GET", "/api/v1/no/such/route", None, 404, {"code": 5, "message": "Not Found"}),
        ("DELETE", f"{NS}/workflows/any", None, 501, {"code": 12, "message": "Method Not Allowed"}),
        (
            "GET",
            f"{NS}/workflows/any/history?execution.runId=nope",
            None,
            400,
            {"code": 3, "message": "Invalid RunId."},
        ),
        ("POST", f"{NS}/workflows/any", b"{not json", 400, None),
        ("POST", f"{NS}/workflows/any", b'{"workflowType": {"name": "X"}, "noSuchField": 1}', 400, None),
        ("GET", f"{NS}/workflows/any/history?maximumPageSize=abc", None, 400, None),
    ],
    ids=[
        "not-found",
        "unknown-route",
        "wrong-method",
        "bad-run-id",
        "bad-json",
        "unknown-field",
        "bad-parameter",
    ],
)
async def test_errors_answer_the_references_status_and_body(
    http: httpx.AsyncClient, method: str, path: str, body: bytes | None, status: int, expected: Any
) -> None:
    response = await http.request(method, path, content=body)
    assert response.status_code == status, response.text
    error = response.json()
    if expected is not None:
        assert error == expected
    else:  # the wording of a JSON parser's complaint is the server's own; the status is the reference's
        assert error["code"] == 3 and error["message"], error
        assert "noSuchField" in error["message"] or "noSuchField" not in (body or b"").decode()


async def test_the_grpc_timeout_header_is_the_calls_deadline(http: httpx.AsyncClient) -> None:
    """An update nobody can run, waited for with `Grpc-Timeout: 2S`: DEADLINE_EXCEEDED, 504, in time."""
    workflow_id = new_id("http-deadline")
    start = {"workflowType": {"name": "Counter"}, "taskQueue": {"name": new_id("nobody-polls")}}
    await _ok(await http.post(f"{NS}/workflows/{workflow_id}", json=start))
    began = time.monotonic()
    answer = await http.post(
        f"{NS}/workflows/{workflow_id}/update/add",
        json={
            "request": {"meta": {"updateId": "u"}, "input": {"args": [1]}},
            "waitPolicy": {"lifecycleStage": "Completed"},
        },
        headers={"Grpc-Timeout": "2S"},
    )
    assert (answer.status_code, answer.json()) == (504, {"code": 4, "message": "context deadline exceeded"})
    assert time.monotonic() - began < 10
    await http.post(f"{NS}/workflows/{workflow_id}/terminate", json={})


async def test_a_form_posted_to_a_get_route_is_that_call(http: httpx.AsyncClient) -> None:
    """grpc-gateway's fallback, which `curl -d` meets: a form POSTed to a GET route runs it."""
    described = await http.post(
        NS, content=b"{}", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert (await _ok(described))["namespaceInfo"]["name"] == "default"
    listed = await http.post(
        f"{NS}/workflows", data={"pageSize": "1", "query": "WorkflowId = 'none'"}
    )  # the form's fields are the request's
    assert await _ok(listed) == {}
    wrong = await http.post(NS, json={})  # JSON is no form: the path has no POST route
    assert (wrong.status_code, wrong.json()) == (501, {"code": 12, "message": "Method Not Allowed"})


async def test_payload_shorthand_round_trips_and_can_be_turned_off(
    http: httpx.AsyncClient, client: Client
) -> None:
    workflow_id = new_id("http-payloads")
    value = {"z": {"b": None}, "a": [1, 2.5, "é<&>", True], "big": 12345678901234567890}
    await _ok(
        await http.post(
            f"{NS}/workflows/{workflow_id}",
            json={
                "workflowType": {"name": "Counter"},
                "taskQueue": {"name": new_id("tq")},
                "input": [value, None],
            },
        )
    )
    history = await _ok(await http.get(f"{NS}/workflows/{workflow_id}/history"))
    started = history["history"]["events"][0]["workflowExecutionStartedEventAttributes"]
    # Go's float64 for an integer beyond int64, keys sorted; null as the binary/null payload.
    assert started["input"] == [
        {"a": [1, 2.5, "é<&>", True], "big": 12345678901234567000, "z": {"b": None}},
        {"metadata": {"encoding": "YmluYXJ5L251bGw="}},
    ]
    full = await _ok(
        await http.get(f"{NS}/workflows/{workflow_id}/history", params={"noPayloadShorthand": ""})
    )
    payloads = full["history"]["events"][0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"]
    assert payloads[0]["metadata"] == {"encoding": "anNvbi9wbGFpbg=="}  # json/plain
    # The SDK reads the same values from the stored payloads.
    handle = client.get_workflow_handle(workflow_id)
    events = [e async for e in handle.fetch_history_events()]
    args = await client.data_converter.decode(
        events[0].workflow_execution_started_event_attributes.input.payloads
    )
    assert args == [{"a": [1, 2.5, "é<&>", True], "big": 12345678901234567000, "z": {"b": None}}, None]
    pretty = await http.get(f"{NS}/workflows/{workflow_id}", params={"pretty": ""})
    assert pretty.text.startswith('{\n  "executionConfig": {\n    "taskQueue": {\n'), pretty.text[:80]
    await client.get_workflow_handle(workflow_id).terminate()


async def test_the_sdk_reads_what_an_http_client_wrote_and_back(
    http: httpx.AsyncClient, client: Client
) -> None:
    """A workflow the SDK starts is signalled and its result read over HTTP."""
    async with run_worker(client, workflows=[Counter], activities=[]) as task_queue:
        handle = await client.start_workflow(Counter.run, id=new_id("http-sdk"), task_queue=task_queue)
        update = await _ok(
            await http.post(
                f"{NS}/workflows/{handle.id}/update/add",
                json={
                    "request": {"meta": {"updateId": "u"}, "input": {"args": [7]}},
                    "waitPolicy": {"lifecycleStage": "Completed"},
                },
            )
        )
        assert update["outcome"] == {"success": [7]}
        await _ok(await http.post(f"{NS}/workflows/{handle.id}/signal/stop", json={}))
        assert await handle.result() == 7
    history = await _ok(
        await http.get(
            f"{NS}/workflows/{handle.id}/history", params={"execution.runId": handle.result_run_id}
        )
    )
    completed = history["history"]["events"][-1]
    assert completed["workflowExecutionCompletedEventAttributes"]["result"] == [7]


@pytest.fixture(scope="module")
async def slow_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    """A server of the target's kind whose namespaces take 5 requests/s (burst 10)."""
    workdir = tmp_path_factory.mktemp("http-slow")
    srv = reference_server(workdir) if compat_target() == REFERENCE else hourglass_server(workdir)
    srv.argv += ["--dynamic-config-value", "frontend.namespaceRPS=5"]
    await srv.start()
    try:
        yield srv
    finally:
        srv.stop()


async def test_rate_limits_apply_to_http_calls(slow_server: ServerProcess) -> None:
    """The namespace's rate covers HTTP calls too: a burst is refused with 429 and the reference's
    RESOURCE_EXHAUSTED body, the ResourceExhaustedFailure saying why."""
    async with httpx.AsyncClient(base_url=http_base(slow_server), timeout=30) as http:
        answers = await asyncio.gather(*(http.get(f"{NS}/workflows/none-{i}") for i in range(40)))
    refused = [a for a in answers if a.status_code == 429]
    assert refused and all(a.status_code in (404, 429) for a in answers), [a.status_code for a in answers]
    assert refused[0].json() == {
        "code": 8,
        "message": "namespace rate limit exceeded",
        "details": [
            {
                "@type": "type.googleapis.com/temporal.api.errordetails.v1.ResourceExhaustedFailure",
                "cause": "RESOURCE_EXHAUSTED_CAUSE_RPS_LIMIT",
                "scope": "RESOURCE_EXHAUSTED_SCOPE_NAMESPACE",
            }
        ],
    }


@pytest.mark.skipif(compat_target() == REFERENCE, reason="the reference's start-dev has no JWT authorizer")
async def test_jwt_bearer_tokens_go_through_the_authorizer(tmp_path) -> None:
    from security.jwt_helpers import ec_key

    key = ec_key("http")
    public = tmp_path / "key.pem"
    public.write_bytes(key.public_pem())
    srv = hourglass_server(tmp_path)
    srv.argv += ["--auth-jwt-key-uri", public.as_uri() + "#http"]
    await srv.start()
    try:
        async with httpx.AsyncClient(base_url=http_base(srv), timeout=30) as http:
            start = {"workflowType": {"name": "Counter"}, "taskQueue": {"name": "nobody"}}
            denied = {"code": 7, "message": "Request unauthorized.", "details": [
                {"@type": "type.googleapis.com/temporal.api.errordetails.v1.PermissionDeniedFailure"}
            ]}  # fmt: skip
            anonymous = await http.get(f"{NS}/workflows")
            assert (anonymous.status_code, anonymous.json()) == (403, denied)
            forged = await http.get(f"{NS}/workflows", headers={"Authorization": "Bearer not.a.token"})
            assert (forged.status_code, forged.json()) == (403, denied)
            reader = {"Authorization": f"Bearer {key.token(['default:read'])}"}
            assert (await http.get(f"{NS}/workflows", headers=reader)).status_code == 200
            refused = await http.post(f"{NS}/workflows/{new_id('jwt')}", json=start, headers=reader)
            assert (refused.status_code, refused.json()) == (403, denied)
            writer = {"Authorization": f"Bearer {key.token(['default:write'])}"}
            started = await http.post(f"{NS}/workflows/{new_id('jwt')}", json=start, headers=writer)
            assert started.status_code == 200 and started.json()["started"] is True
    finally:
        srv.stop()
