"""Out-of-range numbers in requests are the client's error: never INTERNAL, and never a shard fence.

A fence (bumping the shard's range id after a commit whose outcome is unknown) stalls every workflow of
the shard while it reloads; before, 49 starts with 2^62 s timeouts caused 32 of them in 10 s. The
reference cannot show this (it has no such fences), so it is pinned here on an in-process node.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.common.v1 import RetryPolicy, WorkflowExecution, WorkflowType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeWorkflowExecutionRequest,
    ListWorkflowExecutionsRequest,
    StartWorkflowExecutionRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from hourglass.cluster.node import Node, NodeConfig
from hourglass.persistence.errors import UnencodableWriteError
from hourglass.persistence.records import ExecutionWrite
from hourglass.persistence.sqlite.store import SQLiteStore

HUGE = Duration(seconds=2**62)
HUNDRED_YEARS_S = 100 * 365 * 24 * 3600


class RefusingStore:
    """The real store, except that commits touching `poison` workflow ids fail to encode, as a value no
    column can hold would (the last line of defence behind the request validations)."""

    def __init__(self, inner: SQLiteStore) -> None:
        self._inner = inner
        self.poison: set[str] = set()

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    async def commit(self, shard_id: int, range_id: int, writes: Sequence[ExecutionWrite]) -> None:
        if any(w.record.workflow_id in self.poison for w in writes):
            raise UnencodableWriteError("Python int too large to convert to SQLite INTEGER")
        await self._inner.commit(shard_id, range_id, writes)


@pytest.fixture
async def node_and_store() -> AsyncIterator[tuple[Node, RefusingStore]]:
    store = RefusingStore(await SQLiteStore.open(None))
    node = Node(NodeConfig(port=0), store)  # type: ignore[arg-type]  # duck-typed like MeteredStore
    await node.start()
    try:
        yield node, store
    finally:
        await node.stop(grace=0.5)


def _ranges(node: Node) -> dict[int, int]:
    return {shard_id: shard.range_id for shard_id, shard in node.history.shards.items()}


def _start(workflow_id: str, **fields: object) -> StartWorkflowExecutionRequest:
    return StartWorkflowExecutionRequest(
        namespace="default",
        workflow_id=workflow_id,
        workflow_type=WorkflowType(name="Nobody"),
        task_queue=TaskQueue(name="nobody-polls"),
        request_id=str(uuid.uuid4()),
        **fields,  # type: ignore[arg-type]
    )


BAD_NUMBERS: list[dict[str, object]] = [
    {"workflow_execution_timeout": HUGE},
    {"workflow_run_timeout": HUGE},
    {"workflow_task_timeout": HUGE},
    {"workflow_start_delay": Duration(seconds=300_000_000_000)},
    {"workflow_start_delay": HUGE, "workflow_execution_timeout": HUGE},
    {"retry_policy": RetryPolicy(initial_interval=HUGE, maximum_interval=HUGE)},
    {"workflow_execution_timeout": Duration(seconds=315_576_000_000)},  # the largest valid Duration
]


async def test_huge_timeouts_and_delays_are_capped_and_fence_nothing(
    node_and_store: tuple[Node, RefusingStore],
) -> None:
    node, _ = node_and_store
    client = await Client.connect(f"127.0.0.1:{node.bound_port}")
    service = client.workflow_service
    before = _ranges(node)
    started: list[str] = []
    for i in range(49):
        workflow_id = f"bad-numbers-{i}-{uuid.uuid4()}"
        await service.start_workflow_execution(_start(workflow_id, **BAD_NUMBERS[i % len(BAD_NUMBERS)]))
        started.append(workflow_id)
    assert _ranges(node) == before, "a client's numbers fenced a shard"
    assert all(not shard.doubtful for shard in node.history.shards.values())

    # Every one of them can be described and listed (this answered INTERNAL, even after a restart).
    for workflow_id in started[: len(BAD_NUMBERS)]:
        described = await service.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(
                namespace="default", execution=WorkflowExecution(workflow_id=workflow_id)
            )
        )
        config = described.execution_config
        assert config.workflow_execution_timeout.seconds <= HUNDRED_YEARS_S
        assert config.workflow_run_timeout.seconds <= HUNDRED_YEARS_S
        assert config.default_workflow_task_timeout.seconds <= 120
    listed = await service.list_workflow_executions(
        ListWorkflowExecutionsRequest(namespace="default", page_size=100)
    )
    assert {e.execution.workflow_id for e in listed.executions} == set(started)


async def test_a_value_the_store_cannot_encode_is_invalid_argument_and_fences_nothing(
    node_and_store: tuple[Node, RefusingStore],
) -> None:
    node, store = node_and_store
    client = await Client.connect(f"127.0.0.1:{node.bound_port}")
    before = _ranges(node)
    for i in range(10):
        workflow_id = f"unencodable-{i}"
        store.poison.add(workflow_id)
        with pytest.raises(RPCError) as info:
            await client.workflow_service.start_workflow_execution(_start(workflow_id))
        assert info.value.status == RPCStatusCode.INVALID_ARGUMENT
        assert info.value.message.startswith("a value of the request is out of range")
    assert _ranges(node) == before, "an unencodable request fenced a shard"
    # The node still serves the same shards.
    await client.workflow_service.start_workflow_execution(_start("fine-after"))
