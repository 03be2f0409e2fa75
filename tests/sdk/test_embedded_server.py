"""HourglassServer: an embedded node for a test session, and the plugin's wall-clock fixtures."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import grpc
import pytest
from google.protobuf.empty_pb2 import Empty
from temporalio import workflow
from temporalio.api.testservice.v1 import SleepRequest
from temporalio.api.testservice.v1.service_pb2_grpc import TestServiceStub as TimeSkippingStub
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.worker import Worker

from hourglass.sdk.testing import HourglassServer

pytestmark = pytest.mark.timeout(120)


@workflow.defn
class Hello:
    @workflow.run
    async def run(self, name: str) -> str:
        await workflow.sleep(0.1)
        return f"Hello, {name}!"


async def _hello(client: Client) -> str:
    queue = f"hello-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[Hello]):
        return await client.execute_workflow(Hello.run, "Ada", id=queue, task_queue=queue)


async def test_a_server_in_an_async_with_block_serves_its_namespaces():
    async with HourglassServer.start(namespaces=["orders"]) as server:
        host, port = server.target.split(":")
        assert host == "127.0.0.1" and int(port) > 0
        client = await server.client("orders")
        assert await _hello(client) == "Hello, Ada!"
        described = await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace="orders")
        )
        assert described.namespace_info.name == "orders"
        target = server.target
    with pytest.raises(RuntimeError, match="not started"):
        server.target  # noqa: B018
    with pytest.raises(RuntimeError):  # nothing listens there any more
        await Client.connect(target)


async def test_an_awaited_server_runs_until_stopped():
    server = await HourglassServer.start()
    try:
        assert await _hello(await server.client()) == "Hello, Ada!"
    finally:
        await server.stop()
    await server.stop()  # idempotent


async def test_a_bad_dynamic_config_value_fails_the_start_naming_the_key():
    with pytest.raises(ValueError, match="frontend.rps"):
        await HourglassServer.start(dynamic_config={"frontend.rps": "lots"})


async def test_time_skipping_environment_needs_a_time_skipping_server(hourglass_server):
    with pytest.raises(RuntimeError, match="time_skipping=True"):
        await hourglass_server.time_skipping_environment()


async def test_the_client_fixture_runs_workflows_on_the_wall_clock(
    hourglass_client, hourglass_time_skipping_server
):
    # Skipping a day on the time-skipping server of this process leaves the other server's clock alone.
    async with grpc.aio.insecure_channel(hourglass_time_skipping_server.target) as channel:
        stub = TimeSkippingStub(channel)
        request = SleepRequest()
        request.duration.FromTimedelta(timedelta(days=1))
        await stub.UnlockTimeSkippingWithSleep(request, timeout=10)
        skipped = (await stub.GetCurrentTime(Empty(), timeout=10)).time.ToMilliseconds() / 1000
    assert skipped - time.time() > 23 * 3600
    queue = f"wall-{uuid.uuid4()}"
    async with Worker(hourglass_client, task_queue=queue, workflows=[Hello]):
        handle = await hourglass_client.start_workflow(Hello.run, "Ada", id=queue, task_queue=queue)
        assert await handle.result() == "Hello, Ada!"
    first = [e async for e in handle.fetch_history_events()][0]
    assert abs(first.event_time.ToMilliseconds() / 1000 - time.time()) < 60
