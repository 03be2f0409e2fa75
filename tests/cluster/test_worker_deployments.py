"""Worker Deployments on a 3-node cluster: versions recorded from polls through two nodes, set current
through the third, and new workflows started through any node right after run on the current version's
workers (the deployment is a Cassandra row every member's matching reads; SetCurrent has the members that
route the queue read it again before it answers)."""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import AsyncExitStack

import pytest
from temporalio import workflow
from temporalio.api.deployment.v1 import WorkerDeploymentVersion as Version
from temporalio.api.enums.v1 import WorkerDeploymentVersionStatus
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.service import RPCError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkerDeploymentConfig

from .harness import LocalCluster

pytestmark = pytest.mark.timeout(180)


@workflow.defn(name="ClusterVersioned", versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class RunsOnOne:
    @workflow.run
    async def run(self) -> str:
        return "one"


@workflow.defn(name="ClusterVersioned", versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class RunsOnTwo:
    @workflow.run
    async def run(self) -> str:
        return "two"


def versioned(client: Client, queue: str, deployment: str, build_id: str, wf: type) -> Worker:
    return Worker(
        client,
        task_queue=queue,
        workflows=[wf],
        workflow_runner=UnsandboxedWorkflowRunner(),
        deployment_config=WorkerDeploymentConfig(
            version=WorkerDeploymentVersion(deployment, build_id), use_worker_versioning=True
        ),
    )


async def _statuses(client: Client, deployment: str) -> dict[str, int]:
    try:
        resp = await client.workflow_service.describe_worker_deployment(
            rr.DescribeWorkerDeploymentRequest(namespace="default", deployment_name=deployment)
        )
    except RPCError:
        return {}
    return {s.deployment_version.build_id: s.status for s in resp.worker_deployment_info.version_summaries}


async def _set_current(client: Client, deployment: str, build_id: str) -> None:
    await client.workflow_service.set_worker_deployment_current_version(
        rr.SetWorkerDeploymentCurrentVersionRequest(
            namespace="default", deployment_name=deployment, build_id=build_id, identity="rollout"
        )
    )


async def test_rollout_through_different_nodes(cluster: LocalCluster) -> None:
    one, two, three = cluster.nodes[:3]
    deployment, queue = f"dep-{uuid.uuid4().hex[:8]}", f"cluster-{uuid.uuid4().hex[:8]}"
    first, second, operator = [await cluster.connect(n) for n in (one, two, three)]
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(versioned(first, queue, deployment, "b1", RunsOnOne))
        await stack.enter_async_context(versioned(second, queue, deployment, "b2", RunsOnTwo))
        deadline = time.monotonic() + 30
        while set(await _statuses(operator, deployment)) != {"b1", "b2"}:
            assert time.monotonic() < deadline, f"versions never recorded\n{cluster.logs()}"
            await asyncio.sleep(0.5)

        # SetCurrent answers once every member that routes the queue has read the change: the next
        # workflow, started through any node, runs on the new current version at once (no wait for the
        # members' ROUTING_REFRESH_S cache to expire).
        await _set_current(operator, deployment, "b1")
        for client in (first, second, operator):
            run = await client.execute_workflow("ClusterVersioned", id=f"wf-{uuid.uuid4()}", task_queue=queue)
            assert run == "one"

        await _set_current(operator, deployment, "b2")
        for client in (first, second, operator):
            run = await client.execute_workflow("ClusterVersioned", id=f"wf-{uuid.uuid4()}", task_queue=queue)
            assert run == "two"
        statuses = await _statuses(first, deployment)
        assert statuses == {
            "b1": WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_DRAINING,
            "b2": WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_CURRENT,
        }
        described = await second.workflow_service.describe_worker_deployment_version(
            rr.DescribeWorkerDeploymentVersionRequest(
                namespace="default", deployment_version=Version(deployment_name=deployment, build_id="b2")
            )
        )
        assert [q.name for q in described.worker_deployment_version_info.task_queue_infos] == [queue]
