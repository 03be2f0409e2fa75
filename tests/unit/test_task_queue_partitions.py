"""Task-queue partitions: the reference's names and forwarding tree, their dynamic config, and on a real
node (embedded SQLite) tasks spread over 4 partitions reaching pollers that sit on one partition only."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, ListTaskQueuePartitionsRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from hourglass.cluster.cli import main
from hourglass.cluster.config import ConfigError, load_config
from hourglass.cluster.matching.partition_config import PartitionConfig
from hourglass.cluster.matching.partition_tree import (
    parent_partition,
    parse_partition_name,
    partition_name,
    path_to_root,
    single_partition,
)
from hourglass.cluster.node import Node, NodeConfig
from hourglass.persistence.records import TaskQueueKey
from hourglass.persistence.sqlite.store import SQLiteStore

WORKFLOW = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
ACTIVITY = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
NORMAL = TaskQueueKind.TASK_QUEUE_KIND_NORMAL


# ---- names and tree ---------------------------------------------------------------------------------------
def test_partition_names_are_the_references() -> None:
    assert partition_name("orders", 0) == "orders"
    assert partition_name("orders", 3) == "/_sys/orders/3"
    assert parse_partition_name("/_sys/orders/3") == ("orders", 3)
    assert parse_partition_name("/_sys/a/b/12") == ("a/b", 12)
    assert parse_partition_name("orders") == ("orders", 0)
    for bad in ("/_sys/orders", "/_sys/orders/0", "/_sys/orders/x", "/_sys//2", "/_sys/orders/01"):
        with pytest.raises(ValueError, match="invalid task queue partition name"):
            parse_partition_name(bad)
    with pytest.raises(ValueError):
        partition_name("orders", -1)


def test_the_forwarding_tree_has_the_references_shape() -> None:
    # Degree 20 (the default): partitions 1..20 hang off the root, 21..40 off partition 1.
    assert [parent_partition(n, 20) for n in (1, 3, 20, 21, 40, 41)] == [0, 0, 0, 1, 1, 2]
    # Degree 2: a binary tree.
    assert [parent_partition(n, 2) for n in range(1, 8)] == [0, 0, 1, 1, 2, 2, 3]
    assert path_to_root(7, 2) == [7, 3, 1, 0]
    assert path_to_root(0, 2) == [0]
    with pytest.raises(ValueError, match="root partition has no parent"):
        parent_partition(0, 20)
    with pytest.raises(ValueError, match="degree"):
        parent_partition(3, 0)
    # Every partition reaches the root, whatever the degree.
    for degree in (1, 2, 3, 20):
        assert all(path_to_root(n, degree)[-1] == 0 for n in range(1, 200))


def test_sticky_and_sys_queues_have_one_partition() -> None:
    assert single_partition("worker-1-sticky", TaskQueueKind.TASK_QUEUE_KIND_STICKY)
    assert single_partition("/_sys/orders/2")
    assert not single_partition("orders")


# ---- dynamic config ---------------------------------------------------------------------------------------
def test_partition_counts_default_to_four_and_take_the_references_constraints() -> None:
    default = PartitionConfig()
    assert default.read_partitions("ns", "q", WORKFLOW) == 4
    assert default.write_partitions("ns", "q", WORKFLOW) == 4
    assert default.degree("ns", "q", WORKFLOW) == 20
    assert default.outstanding_polls("ns", "q", WORKFLOW) == 1
    config = PartitionConfig(
        {
            "matching.numTaskqueueReadPartitions": [
                {"value": 8, "constraints": {"taskQueueName": "hot"}},
                {"value": 2, "constraints": {"taskQueueName": "hot", "taskType": "Activity"}},
                {"value": 1},
            ],
            "matching.numTaskqueueWritePartitions": 16,
            "matching.forwarderMaxChildrenPerNode": 2,
        }
    )
    assert config.read_partitions("ns", "hot", WORKFLOW) == 8
    assert config.read_partitions("ns", "hot", ACTIVITY) == 2  # the more specific entry wins
    assert config.read_partitions("ns", "cold", WORKFLOW) == 1
    # Never written where nobody reads.
    assert config.write_partitions("ns", "hot", WORKFLOW) == 8
    assert config.write_partitions("ns", "cold", WORKFLOW) == 1
    assert config.degree("ns", "q", WORKFLOW) == 2
    by_ns = PartitionConfig(
        {"matching.numTaskqueueReadPartitions": [{"value": 2, "constraints": {"namespace": "a"}}]}
    )
    assert by_ns.by_namespace
    assert (by_ns.read_partitions("a", "q", WORKFLOW), by_ns.read_partitions("b", "q", WORKFLOW)) == (2, 4)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"matching.numTaskqueueReadPartitions": 0}, "must be an integer from 1 to 1024, not 0"),
        ({"matching.numTaskqueueWritePartitions": "4"}, "must be an integer from 1 to 1024"),
        ({"matching.forwarderMaxChildrenPerNode": True}, "must be an integer from 1 to 1024"),
        ({"matching.numTaskqueueReadPartitions": [{"constraints": {}}]}, "each entry needs a `value`"),
        (
            {"matching.numTaskqueueReadPartitions": [{"value": 2, "constraints": {"shardId": 1}}]},
            "constraints may be namespace, taskQueueName and taskType",
        ),
        (
            {"matching.numTaskqueueReadPartitions": [{"value": 2, "constraints": {"taskType": "Nexus"}}]},
            "taskType is Workflow or Activity",
        ),
    ],
)
def test_bad_partition_config_is_named(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PartitionConfig(config)


# ---- on a real node -----------------------------------------------------------------------------------------
@pytest.fixture
async def node() -> AsyncIterator[Node]:
    node = Node(NodeConfig(port=0), await SQLiteStore.open(None))
    await node.start()
    try:
        yield node
    finally:
        await node.stop(grace=0.5)


async def _start(client: Client, queue: str, count: int) -> set[str]:
    ids = {f"wf-{uuid.uuid4()}" for _ in range(count)}
    for wf_id in ids:
        await client.start_workflow("Anything", id=wf_id, task_queue=queue)
    return ids


async def _drain(node: Node, ns_id: str, queue: str, partition: int, want: int) -> set[str]:
    """Poll one partition only until `want` workflow tasks came (each poll 5 s at most)."""
    got: set[str] = set()
    for _ in range(want + 5):
        if len(got) == want:
            break
        resp = await node.matching.poll_workflow_task(
            ns_id, queue, NORMAL, "only-here", 5.0, partition=partition
        )
        if resp.task_token:
            got.add(resp.workflow_execution.workflow_id)
    return got


async def _stored(node: Node, ns_id: str, queue: str) -> list[int]:
    return [
        len(await node.store.get_queue_tasks(TaskQueueKey(ns_id, queue, WORKFLOW, n), 0, 100))
        for n in range(4)
    ]


async def test_backlog_on_every_partition_reaches_pollers_that_sit_at_the_root_only(node: Node) -> None:
    client = await Client.connect(f"127.0.0.1:{node.bound_port}")
    ns_id = (await node.namespaces.get("default")).id
    queue = f"q-{uuid.uuid4()}"
    ids = await _start(client, queue, 12)  # nobody polls: each task is persisted on its partition
    stored = await _stored(node, ns_id, queue)
    assert sum(stored) == 12 and sum(1 for n in stored if n) >= 2, stored  # spread, not all on one
    assert await _drain(node, ns_id, queue, 0, 12) == ids
    await asyncio.sleep(0.2)  # the last acknowledgement's range delete
    assert await _stored(node, ns_id, queue) == [0, 0, 0, 0]


async def test_a_poll_on_one_child_drains_a_siblings_backlog(node: Node) -> None:
    client = await Client.connect(f"127.0.0.1:{node.bound_port}")
    ns_id = (await node.namespaces.get("default")).id
    queue = f"q-{uuid.uuid4()}"
    ids = await _start(client, queue, 12)
    stored = await _stored(node, ns_id, queue)
    # Partition 2 holds its own part; everything else comes from its siblings through the root.
    assert await _drain(node, ns_id, queue, 2, 12) == ids, stored


async def test_tasks_added_to_any_partition_sync_match_a_poller_on_another(node: Node) -> None:
    client = await Client.connect(f"127.0.0.1:{node.bound_port}")
    ns_id = (await node.namespaces.get("default")).id
    queue = f"q-{uuid.uuid4()}"
    ids: set[str] = set()
    got: set[str] = set()

    async def poller() -> None:
        while len(got) < 12:
            resp = await node.matching.poll_workflow_task(ns_id, queue, NORMAL, "only-3", 5.0, partition=3)
            if not resp.task_token:
                return
            got.add(resp.workflow_execution.workflow_id)

    polling = asyncio.create_task(poller())
    for _ in range(12):
        await asyncio.sleep(0.05)  # the poller is back waiting (forwarded to the root) before each add
        ids |= await _start(client, queue, 1)
    await asyncio.wait_for(polling, 30)
    assert got == ids
    # Every task met the poller at the root: no partition ever handed out a task from its backlog.
    partitions = node.matching.partitions_of(ns_id, queue, WORKFLOW)
    assert len(partitions) >= 3  # the root, the poller's, and those the adds landed on
    assert [p.describe_status().read_level for p in partitions] == [0, 0, 0, 0]


async def test_with_forwarded_polls_limited_a_child_keeps_its_pollers_and_still_gets_every_task(
    node: Node,
) -> None:
    """What a cluster member turns on: of three polls on partition 3, one goes on to the root
    (`matching.forwarderMaxOutstandingPolls`, 1) and two wait at partition 3, where a task its owner adds
    is matched without a hop; tasks landing on every other partition still reach those pollers."""
    node.matching.limit_forwarded_polls = True
    client = await Client.connect(f"127.0.0.1:{node.bound_port}")
    ns_id = (await node.namespaces.get("default")).id
    queue = f"q-{uuid.uuid4()}"
    got: set[str] = set()

    async def poller() -> None:
        while len(got) < 12:
            resp = await node.matching.poll_workflow_task(ns_id, queue, NORMAL, "only-3", 5.0, partition=3)
            if not resp.task_token:
                return
            got.add(resp.workflow_execution.workflow_id)

    pollers = [asyncio.create_task(poller()) for _ in range(3)]
    await asyncio.sleep(0.3)
    root = node.matching.partition(ns_id, queue, WORKFLOW, number=0)
    child = node.matching.partition(ns_id, queue, WORKFLOW, number=3)
    assert [sum(not p.done() for p in x._pollers) for x in (root, child)] == [1, 2]
    ids = await _start(client, queue, 12)
    await asyncio.wait_for(asyncio.gather(*pollers), 60)
    assert got == ids


async def test_list_partitions_names_every_partition_with_its_owner(node: Node) -> None:
    client = await Client.connect(f"127.0.0.1:{node.bound_port}")
    resp = await client.workflow_service.list_task_queue_partitions(
        ListTaskQueuePartitionsRequest(namespace="default", task_queue=TaskQueue(name="orders"))
    )
    address = f"127.0.0.1:{node.bound_port}"
    for listed in (resp.workflow_task_queue_partitions, resp.activity_task_queue_partitions):
        assert [(p.key, p.owner_host_name) for p in listed] == [
            ("orders", address),
            ("/_sys/orders/1", address),
            ("/_sys/orders/2", address),
            ("/_sys/orders/3", address),
        ]


def test_node_yaml_and_start_dev_name_a_bad_partition_count(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    path.write_text("store: {kind: sqlite}\ndynamic_config:\n  matching.numTaskqueueReadPartitions: 0\n")
    with pytest.raises(ConfigError, match=r"matching\.numTaskqueueReadPartitions must be an integer from 1"):
        load_config(path)
    result = CliRunner().invoke(
        main,
        [
            "server",
            "start-dev",
            "--port",
            "0",
            "--dynamic-config-value",
            "matching.forwarderMaxChildrenPerNode=-1",
        ],
    )
    assert result.exit_code == 2
    assert "matching.forwarderMaxChildrenPerNode must be an integer from 1 to 1024, not -1" in result.output


async def test_after_a_restart_backlog_on_partitions_nobody_polls_reaches_the_root(tmp_path: Path) -> None:
    """The restarted node has not opened the other partitions: pollers waiting at the root have them
    loaded, and their backlog pumped up."""
    db = str(tmp_path / "restart.db")
    queue = f"q-{uuid.uuid4()}"
    first = Node(NodeConfig(port=0), await SQLiteStore.open(db))
    await first.start()
    try:
        client = await Client.connect(f"127.0.0.1:{first.bound_port}")
        ns_id = (await first.namespaces.get("default")).id
        ids = await _start(client, queue, 12)
        assert sum(1 for n in await _stored(first, ns_id, queue) if n) >= 2
        # History saves how far its transfer tasks went (every second): after the restart it re-adds
        # nothing, so only the partitions' own backlogs hold the tasks.
        await asyncio.sleep(2.5)
    finally:
        await first.stop(grace=0.5)
    second = Node(NodeConfig(port=0), await SQLiteStore.open(db))
    await second.start()
    try:
        assert await _drain(second, ns_id, queue, 0, 12) == ids
    finally:
        await second.stop(grace=0.5)


async def test_stats_of_a_child_partition_by_name_are_refused_as_on_the_reference(node: Node) -> None:
    client = await Client.connect(f"127.0.0.1:{node.bound_port}")
    request = DescribeTaskQueueRequest(
        namespace="default", task_queue=TaskQueue(name="/_sys/orders/1"), report_stats=True
    )
    with pytest.raises(RPCError) as info:
        await client.workflow_service.describe_task_queue(request)
    assert info.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert info.value.message == "DescribeTaskQueue stats are only supported for the root partition"
    request.task_queue.name = "orders"  # the root answers for the whole queue
    assert (await client.workflow_service.describe_task_queue(request)).stats.approximate_backlog_count == 0
