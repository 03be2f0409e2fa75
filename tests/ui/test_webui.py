"""The official Web UI served by `hourglass server start-dev` (issue 17, item 1), in headless Chromium: a
workflow run through the SDK (an activity and a signal) shows its whole history and result on the UI's
workflow page, the namespace list loads, and no call the UI makes to the API fails. Also: --headless
serves no UI, the UI child never outlives the server (SIGTERM or kill -9), a missing binary is one line
naming `make ui`, and the UI sits behind the frontend's identities (its JWT authorizer, its TLS)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import ssl
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import trustme
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.worker import Worker

from .devserver import (
    DevServer,
    children,
    free_port,
    hourglass_exe,
    require_ui_binary,
    run_server,
    running_or_gone,
    start_dev,
    wait_dead,
)
from .workflows import GreetAfterSignal, greet

pytestmark = pytest.mark.timeout(180)

PAGE_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    require_ui_binary()
    with start_dev(tmp_path_factory.mktemp("webui"), ready_line="Web UI: ") as server:
        yield server


def ui_url(server: DevServer) -> str:
    return f"http://127.0.0.1:{server.ui_port}"


def event_type_title(event_type_name: str) -> str:
    """EVENT_TYPE_WORKFLOW_EXECUTION_STARTED -> Workflow Execution Started, as the UI writes it."""
    return event_type_name.removeprefix("EVENT_TYPE_").replace("_", " ").title()


def test_start_dev_says_where_the_ui_is(dev_server: DevServer) -> None:
    assert f"Web UI: http://127.0.0.1:{dev_server.ui_port}" in dev_server.log_text()
    assert len(dev_server.children()) == 1


async def test_the_workflow_page_shows_the_history_and_result(dev_server: DevServer, page, tmp_path) -> None:
    client = await Client.connect(dev_server.address)
    queue = f"ui-{uuid.uuid4().hex[:8]}"
    # The worker stays up while the page loads: the UI queries the workflow's metadata through it.
    async with Worker(client, task_queue=queue, workflows=[GreetAfterSignal], activities=[greet]):
        handle = await client.start_workflow(GreetAfterSignal.run, id=f"{queue}-wf", task_queue=queue)
        await handle.signal(GreetAfterSignal.set_name, "Hourglass")
        assert await handle.result() == "Hello, Hourglass!"
        history = await handle.fetch_history()
        expected = [event_type_title(EventType.Name(e.event_type)) for e in history.events]
        assert expected[0] == "Workflow Execution Started"
        assert expected[-1] == "Workflow Execution Completed"
        assert "Workflow Execution Signaled" in expected and "Activity Task Completed" in expected

        run_id = handle.result_run_id
        await page.goto(f"{ui_url(dev_server)}/namespaces/default/workflows/{handle.id}/{run_id}/history")
        try:
            started_row = page.locator("table tbody tr", has_text="Workflow Execution Started")
            await started_row.first.wait_for(timeout=PAGE_TIMEOUT_MS)
        finally:
            await page.screenshot(path=str(tmp_path / "workflow-history.png"))
        shown = await shown_events(page)
        # Newest first, as the UI lists them by default: every event, each with its type, nothing else.
        assert [event_id for event_id, _ in shown] == list(range(len(expected), 0, -1)), shown
        for event_id, cells in shown:
            assert expected[event_id - 1] in cells, (event_id, expected[event_id - 1], cells)
        # The status badge (its text is "Completed", shown upper-case).
        assert await page.get_by_text(re.compile(r"^completed$", re.IGNORECASE)).first.is_visible()
        # The result, in the summary's Result box and on the completion event.
        assert await page.get_by_text('"Hello, Hourglass!"').count() >= 1
        assert run_id in await page.inner_text("body")
        await page.screenshot(path=str(tmp_path / "workflow-history.png"))
    page.failed_responses.assert_none()


async def shown_events(page) -> list[tuple[int, list[str]]]:
    """The rows of the history table, top to bottom: (event ID, the row's cell texts)."""
    rows = []
    for row in await page.locator("table tbody tr").all():
        cells = [c.strip() for c in await row.locator("td").all_inner_texts()]
        if cells and cells[0].isdigit():
            rows.append((int(cells[0]), cells))
    return rows


async def test_the_namespace_list_loads(dev_server: DevServer, page, tmp_path) -> None:
    await page.goto(f"{ui_url(dev_server)}/namespaces")
    row = page.locator("table tbody tr", has_text="default")
    await row.first.wait_for(timeout=PAGE_TIMEOUT_MS)
    assert await row.count() == 1
    await page.screenshot(path=str(tmp_path / "namespaces.png"))
    page.failed_responses.assert_none()


async def test_the_workflow_list_shows_the_run(dev_server: DevServer, page) -> None:
    client = await Client.connect(dev_server.address)
    queue = f"ui-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[GreetAfterSignal], activities=[greet]):
        handle = await client.start_workflow(GreetAfterSignal.run, id=f"{queue}-listed", task_queue=queue)
        await handle.signal(GreetAfterSignal.set_name, "list")
        await handle.result()
    await page.goto(f"{ui_url(dev_server)}/namespaces/default/workflows")
    row = page.locator("table tbody tr", has_text=handle.id)
    await row.first.wait_for(timeout=PAGE_TIMEOUT_MS)
    assert "completed" in (await row.first.inner_text()).lower()
    page.failed_responses.assert_none()


async def test_the_workers_page_lists_a_heartbeating_worker(dev_server: DevServer, page, tmp_path) -> None:
    # Heartbeats every second: the SDK sends them because the namespace advertises worker_heartbeats.
    runtime = Runtime(telemetry=TelemetryConfig(), worker_heartbeat_interval=timedelta(seconds=1))
    client = await Client.connect(dev_server.address, runtime=runtime)
    queue = f"ui-workers-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[GreetAfterSignal], activities=[greet]):
        await page.goto(f"{ui_url(dev_server)}/namespaces/default/workers")
        row = page.locator("table tbody tr", has_text=queue)
        await row.first.wait_for(timeout=PAGE_TIMEOUT_MS)
        await page.screenshot(path=str(tmp_path / "workers.png"))
        assert "running" in (await row.first.inner_text()).lower()
        assert "disabled" not in (await page.inner_text("body")).lower()
        # Its instance link opens the worker's own page (DescribeWorker).
        await row.first.locator("a").first.click()
        await page.wait_for_url(re.compile(r"/workers/[^/]+$"), timeout=PAGE_TIMEOUT_MS)
        await page.get_by_text(queue).first.wait_for(timeout=PAGE_TIMEOUT_MS)
        await page.screenshot(path=str(tmp_path / "worker.png"))
    page.failed_responses.assert_none()


def http_get(url: str, headers: dict[str, str] | None = None, cafile: Path | None = None) -> tuple[int, str]:
    """(status, body) of a GET; an error status is an answer too."""
    context = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def refuses_connections(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_headless_serves_no_ui(tmp_path: Path) -> None:
    with start_dev(tmp_path, "--headless") as server:
        assert "Web UI" not in server.log_text()
        assert server.children() == []
        assert refuses_connections(server.ui_port)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "kill -9"])
def test_the_ui_child_dies_with_the_server(tmp_path: Path, how: str) -> None:
    require_ui_binary()
    with start_dev(tmp_path, ready_line="Web UI: ") as server:
        (child,) = server.children()
        assert running_or_gone(child)
        sig = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT, "kill -9": signal.SIGKILL}[how]
        server.proc.send_signal(sig)
        server.proc.wait(20)
        assert wait_dead(child, 10), f"the Web UI server (pid {child}) outlived the server after {how}"
        # A killed Go process shows as a zombie as soon as its main thread exits; its other threads (and
        # the listening socket) go a moment later.
        deadline = time.monotonic() + 5
        while not refuses_connections(server.ui_port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert refuses_connections(server.ui_port)


def test_a_missing_binary_is_one_line_naming_make_ui(tmp_path: Path) -> None:
    missing = tmp_path / "no-ui-server"
    with start_dev(tmp_path, env={"HOURGLASS_UI_SERVER_BINARY": str(missing)}) as server:
        for _ in range(100):
            if "make ui" in server.log_text():
                break
            time.sleep(0.1)
        lines = [line for line in server.log_text().splitlines() if "Web UI" in line]
        assert lines == [f"Web UI: off (no UI server at {missing}; build it with `make ui`, which needs Go)"]
        assert server.proc.poll() is None  # it goes on, headless
        assert server.children() == []

        async def default_namespace_is_served() -> str:
            client = await Client.connect(server.address)
            return (await client.workflow_service.get_system_info(_system_info_request())).server_version

        assert asyncio.run(default_namespace_is_served())


def _system_info_request():
    from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

    return GetSystemInfoRequest()


def test_a_ui_port_in_use_is_named(tmp_path: Path) -> None:
    require_ui_binary()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AssertionError, match="did not start") as e:
            with start_dev(tmp_path, ui_port=port, ready_line="Web UI: "):
                pass
    assert f"the Web UI cannot listen on 127.0.0.1:{port}: it is in use" in str(e.value)


def test_the_ui_calls_the_api_with_the_browsers_token(tmp_path: Path) -> None:
    """With the JWT authorizer on, the UI is no way around it: its API answers only with a token."""
    require_ui_binary()
    from security.jwt_helpers import rsa_key

    key = rsa_key("ui-key")
    pem = tmp_path / "key.pem"
    pem.write_bytes(key.public_pem())
    with start_dev(tmp_path, "--auth-jwt-key-uri", pem.as_uri() + "#ui-key", ready_line="Web UI: ") as server:
        # The workflow list of `default` (ListWorkflowExecutions: the namespace's read role).
        api = f"{ui_url(server)}/api/v1/namespaces/default/workflows"
        status, body = http_get(api)
        assert status in (401, 403), body
        other = {"authorization": f"Bearer {key.token(['other:read'])}"}
        status, body = http_get(api, other)
        assert status == 403, body
        reader = {"authorization": f"Bearer {key.token(['default:read'])}"}
        status, body = http_get(api, reader)
        assert status == 200, body
        assert json.loads(body).get("executions", []) == []  # a new server: no workflows yet


def test_with_frontend_tls_the_ui_serves_https_and_reaches_the_frontend(tmp_path: Path) -> None:
    require_ui_binary()
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = tmp_path / "server.crt", tmp_path / "server.key", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    args = ("--tls-cert", str(cert_file), "--tls-key", str(key_file))
    with start_dev(tmp_path, *args, ready_line="Web UI: ") as server:
        assert f"Web UI: https://127.0.0.1:{server.ui_port}" in server.log_text()
        status, body = http_get(f"https://127.0.0.1:{server.ui_port}/api/v1/namespaces", cafile=ca_file)
        assert status == 200, body
        assert [n["namespaceInfo"]["name"] for n in json.loads(body)["namespaces"]] == ["default"]
        # Plain HTTP gets the TLS server's refusal, not the API.
        status, body = http_get(f"http://127.0.0.1:{server.ui_port}/api/v1/namespaces")
        assert status == 400 and "namespaces" not in body, body


def test_a_node_runs_the_ui_from_its_ui_section(tmp_path: Path) -> None:
    """`hourglass server start --config` with `ui: {enabled: true}`: the same supervisor, same checks."""
    require_ui_binary()
    port, ui_port = free_port(), free_port()
    config = tmp_path / "node.yaml"
    config.write_text(
        f"store:\n  kind: sqlite\nnode:\n  port: {port}\nui:\n  enabled: true\n  port: {ui_port}\n"
    )
    argv = [hourglass_exe(), "server", "start", "--config", str(config)]
    with run_server(argv, tmp_path / "node.log", "Web UI: ") as (proc, log):
        assert f"Web UI: http://127.0.0.1:{ui_port}" in log.read_text()
        status, body = http_get(f"http://127.0.0.1:{ui_port}/api/v1/namespaces")
        assert status == 200, body
        assert [n["namespaceInfo"]["name"] for n in json.loads(body)["namespaces"]] == ["default"]
        status, body = http_get(f"http://127.0.0.1:{ui_port}/namespaces")
        assert status == 200 and "<html" in body.lower()
        (child,) = children(proc.pid)
    assert wait_dead(child, 10)


def test_start_dev_with_client_certificates_required_leaves_the_ui_off(tmp_path: Path) -> None:
    """The UI would need a client certificate of its own, which start-dev has none of: it says so."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = tmp_path / "server.crt", tmp_path / "server.key", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    args = ("--tls-cert", str(cert_file), "--tls-key", str(key_file), "--tls-client-ca", str(ca_file))
    with start_dev(tmp_path, *args) as server:
        lines = [line for line in server.log_text().splitlines() if "Web UI" in line]
        assert len(lines) == 1 and lines[0].startswith(
            "Web UI: off (the frontend requires client certificates"
        )
        assert server.children() == []
        assert refuses_connections(server.ui_port)


def test_a_ui_server_that_dies_is_reported_and_the_node_goes_on(tmp_path: Path) -> None:
    require_ui_binary()
    with start_dev(tmp_path, ready_line="Web UI: ") as server:
        (child,) = server.children()
        os.kill(child, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while "the Web UI server exited" not in server.log_text():
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.1)
        assert server.proc.poll() is None

        async def system_info() -> str:
            client = await Client.connect(server.address)
            return (await client.workflow_service.get_system_info(_system_info_request())).server_version

        assert asyncio.run(system_info())


def test_the_default_ui_port_in_use_is_one_line_and_no_ui(tmp_path: Path) -> None:
    """A second start-dev (its frontend on another port, the UI's default port taken) still serves."""
    require_ui_binary()
    with socket.socket() as taken:
        for _ in range(50):  # a free port whose frontend port (1000 below) is free too
            taken_port = free_port()
            frontend = taken_port - 1000
            if frontend > 1024 and not _in_use(frontend):
                break
        taken.bind(("127.0.0.1", taken_port))
        taken.listen()
        argv = [hourglass_exe(), "server", "start-dev", "--port", str(frontend)]
        with run_server(argv, tmp_path / "second.log", "Web UI: ") as (proc, log):
            lines = [line for line in log.read_text().splitlines() if "Web UI" in line]
            assert lines == [
                f"Web UI: off (the Web UI cannot listen on 127.0.0.1:{taken_port}: it is in use (pick another "
                "--ui-port / ui.port, or --headless))"
            ]
            assert proc.poll() is None and children(proc.pid) == []


def _in_use(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


async def test_the_batch_page_lists_and_describes_a_batch(dev_server: DevServer, page, tmp_path) -> None:
    """The UI's Batch Operations page reads ListBatchOperations, its job page DescribeBatchOperation."""
    from temporalio.api.batch.v1 import BatchOperationTermination
    from temporalio.api.enums.v1 import BatchOperationState
    from temporalio.api.workflowservice.v1 import DescribeBatchOperationRequest, StartBatchOperationRequest

    client = await Client.connect(dev_server.address)
    queue = f"ui-{uuid.uuid4().hex[:8]}"
    wf_type = f"UiBatch{queue}"
    for i in range(2):
        await client.start_workflow(wf_type, id=f"{queue}-{i}", task_queue=queue)
    job_id = f"ui-job-{queue}"
    await client.workflow_service.start_batch_operation(
        StartBatchOperationRequest(
            namespace="default",
            job_id=job_id,
            reason="from the ui test",
            visibility_query=f"WorkflowType='{wf_type}'",
            termination_operation=BatchOperationTermination(identity="ui-test"),
        )
    )
    deadline = time.monotonic() + 30
    while (
        await client.workflow_service.describe_batch_operation(
            DescribeBatchOperationRequest(namespace="default", job_id=job_id)
        )
    ).state == BatchOperationState.BATCH_OPERATION_STATE_RUNNING:
        assert time.monotonic() < deadline, "the batch did not finish"
        await asyncio.sleep(0.3)

    await page.goto(f"{ui_url(dev_server)}/namespaces/default/batch-operations")
    row = page.locator("table tbody tr", has_text=job_id)
    try:
        await row.first.wait_for(timeout=PAGE_TIMEOUT_MS)
        assert "completed" in (await row.first.inner_text()).lower()
        await page.goto(f"{ui_url(dev_server)}/namespaces/default/batch-operations/{job_id}")
        await page.get_by_text("from the ui test").first.wait_for(timeout=PAGE_TIMEOUT_MS)
        body = (await page.inner_text("body")).lower()
        assert job_id.lower() in body and "terminate" in body and "completed" in body
    finally:
        await page.screenshot(path=str(tmp_path / "batch-operations.png"))
    page.failed_responses.assert_none()
