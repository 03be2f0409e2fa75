"""One 3-node cluster (127.0.0.1-3) on a fresh keyspace of a real Cassandra, shared by the cluster tests.

Tests that disturb it (kill, pause, cut off, restart) leave it with its three members converged again.
"""

from __future__ import annotations

import contextlib
import uuid

import pytest
import pytest_asyncio
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from hourglass.persistence.cassandra import testing as cassandra

from .harness import LocalCluster, Node
from .workflows import ActivityTimerWorkflow, WaitForSignal, echo


@pytest.fixture(scope="session")
def cassandra_session():
    if cassandra.skip_requested():
        pytest.skip("HOURGLASS_SKIP_CASSANDRA is set: the cluster tests need a real Cassandra")
    with cassandra.fresh_keyspace("cluster") as (config, session, keyspace):
        yield config, session, keyspace


@pytest_asyncio.fixture(scope="session")
async def cluster(cassandra_session, tmp_path_factory):
    config, _, keyspace = cassandra_session
    c = LocalCluster.create(tmp_path_factory.mktemp("cluster"), config.hosts, config.port, keyspace)
    c.start()
    try:
        await c.wait_converged(c.nodes)
        yield c
    finally:
        c.stop()


@pytest.fixture
def session(cassandra_session):
    _, s, keyspace = cassandra_session
    s.set_keyspace(keyspace)
    return s


@contextlib.asynccontextmanager
async def worker_on(cluster: LocalCluster, node: Node, task_queue: str):
    client = await cluster.connect(node)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ActivityTimerWorkflow, WaitForSignal],
        activities=[echo],
        workflow_runner=UnsandboxedWorkflowRunner(),
        max_concurrent_workflow_tasks=50,
    ):
        yield client


def new_queue() -> str:
    return f"cluster-{uuid.uuid4().hex[:8]}"
