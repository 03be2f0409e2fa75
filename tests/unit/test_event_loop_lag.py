"""The event-loop lag monitor and `hourglass_event_loop_lag_seconds`: a blocked loop shows, a heavy
list query does not block it, nor does it with 8 readers of a 3 MB history beside it, and the histogram is
scraped from a start-dev's /metrics."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import (
    GetSystemInfoRequest,
    GetWorkflowExecutionHistoryRequest,
    ListWorkflowExecutionsRequest,
)
from temporalio.api.workflowservice.v1.service_pb2_grpc import WorkflowServiceStub
from temporalio.client import Client

from hourglass.cluster.loop_lag import LoopLagMonitor
from hourglass.cluster.metrics import EVENT_LOOP_LAG_SECONDS
from hourglass.loadtest import stall
from hourglass.loadtest.servers import ManagedServer, hourglass_server


def observations() -> float:
    return next(
        s.value for m in EVENT_LOOP_LAG_SECONDS.collect() for s in m.samples if s.name.endswith("_count")
    )


async def test_a_blocked_loop_is_measured() -> None:
    monitor = LoopLagMonitor(interval_s=0.01)
    before = observations()
    monitor.start()
    await asyncio.sleep(0.05)
    time.sleep(0.3)  # noqa: ASYNC251 - what a handler computing on the loop does to everybody else
    await asyncio.sleep(0.05)
    await monitor.stop()
    assert monitor.worst_s >= 0.2
    assert observations() > before


async def test_an_idle_loop_shows_little_lag() -> None:
    monitor = LoopLagMonitor(interval_s=0.01)
    monitor.start()
    await asyncio.sleep(0.3)
    await monitor.stop()
    assert monitor.worst_s < 0.25  # generous: a loaded machine delays wake-ups a little


@pytest.fixture
async def start_dev(tmp_path: Path) -> AsyncIterator[ManagedServer]:
    server = hourglass_server(tmp_path)
    assert server.metrics_url is not None
    await server.start()
    try:
        yield server
    finally:
        server.stop()


def lag_histogram(metrics_url: str) -> dict[str, float]:
    text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(r'^hourglass_event_loop_lag_seconds_bucket\{le="([^"]+)"\} (\S+)$', text, re.M)
    }


@pytest.mark.timeout(180)
async def test_a_heavy_list_query_leaves_the_loop_free_and_the_lag_is_exported(
    start_dev: ManagedServer,
) -> None:
    assert start_dev.metrics_url is not None
    heavy, light = await Client.connect(start_dev.address), await Client.connect(start_dev.address)
    query = "WorkflowId IN (" + ",".join(f"'wf-{i:08d}'" for i in range(150_000)) + ")"
    running = asyncio.create_task(
        heavy.workflow_service.list_workflow_executions(
            ListWorkflowExecutionsRequest(namespace="default", query=query),
            timeout=timedelta(seconds=300),  # seconds of parsing, many more on a loaded machine
        )
    )
    latencies = []
    while not running.done():
        started = time.perf_counter()
        await light.workflow_service.get_system_info(GetSystemInfoRequest())
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.02)
    assert list((await running).executions) == []
    assert len(latencies) >= 3, "the query answered too fast to measure anything"
    latencies.sort()
    # Generous bounds for a loaded 2-core machine (the parse thread shares the GIL); the old code held the
    # loop for 5-9 s.
    assert latencies[len(latencies) // 2] < 0.5, latencies
    assert latencies[-1] < 2.5, latencies

    buckets = lag_histogram(start_dev.metrics_url)
    assert buckets["+Inf"] > 0, "the lag monitor records observations"
    assert buckets["2.5"] == buckets["+Inf"], f"the loop stalled over 2.5 s: {buckets}"


async def full_history(stub: WorkflowServiceStub, execution) -> list[HistoryEvent]:
    """Every event, page by page, as a client reads it."""
    events: list[HistoryEvent] = []
    token = b""
    while True:
        page = await stub.GetWorkflowExecutionHistory(
            GetWorkflowExecutionHistoryRequest(
                namespace="default", execution=execution, next_page_token=token
            ),
            timeout=120,
        )
        events += page.history.events
        token = page.next_page_token
        if not token:
            return events


@pytest.mark.timeout(400)
async def test_light_rpcs_stay_prompt_while_a_heavy_query_and_8_history_reads_run(
    start_dev: ManagedServer,
) -> None:
    assert start_dev.metrics_url is not None
    channels = [grpc.aio.insecure_channel(start_dev.address) for _ in range(stall.HISTORY_READERS + 2)]
    try:
        stubs = [WorkflowServiceStub(c) for c in channels]
        probe, query_stub, readers = stubs[0], stubs[1], stubs[2:]
        execution = await stall.build_history(probe)  # ~3 MB: 24 signals of 128 KiB
        expected = await full_history(probe, execution)
        assert [e.event_type for e in expected].count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) == 24
        request = ListWorkflowExecutionsRequest(namespace="default", query=stall.heavy_query())
        stop = asyncio.Event()
        reads: list[int] = []

        async def read_repeatedly(stub: WorkflowServiceStub) -> None:
            while not stop.is_set():
                assert await full_history(stub, execution) == expected, "a read lost or changed events"
                reads.append(1)

        answered = asyncio.Event()

        async def query_repeatedly() -> None:
            while not stop.is_set():
                response = await query_stub.ListWorkflowExecutions(request, timeout=300)
                assert list(response.executions) == []
                answered.set()

        loads = [asyncio.create_task(read_repeatedly(stub)) for stub in readers]
        loads.append(asyncio.create_task(query_repeatedly()))
        # The probe runs in a process of its own: this one is busy parsing 8 readers' 3 MB pages.
        prober = await stall.start_probe(start_dev.address, 10.0)
        out, _ = await asyncio.wait_for(prober.communicate(), 120)
        await asyncio.wait_for(answered.wait(), 300)  # the query (seconds of parsing) ran all along
        stop.set()
        await asyncio.gather(*loads)
    finally:
        for channel in channels:
            await channel.close()
    assert len(reads) >= 8, "the history reads hardly ran"
    latencies = sorted(latency for _, latency in json.loads(out))
    # b608be0 (the parse in a thread, history pages parsed and serialized again on the loop) answered the
    # light RPC in 280 ms at the median under this load, 490 ms on a loaded machine; now 10-20 ms, under
    # 200 ms with the machine loaded by other test runs (a generous bound).
    assert latencies[len(latencies) // 2] < 0.2, latencies
    buckets = lag_histogram(start_dev.metrics_url)
    assert buckets["1.0"] == buckets["+Inf"], f"the loop stalled over 1 s: {buckets}"
