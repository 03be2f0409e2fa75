"""A start creates the workflow id's pointer without reading it first; an id in use is still refused.
Requests naming no run id find the current run from the pointer the shard last committed, not the store.

The first attempt of a start writes the new run with a "pointer must not exist" condition (one store
round trip fewer per workflow); only when that condition fails does it read the pointer and apply the id
policies. What a client sees must not change: a duplicate is refused with the reference's message, a
retried request id answers the same run, and a closed run's id is reused. The events the refused attempt
appended belong to a run that never existed: they are deleted. Pinned on an in-process node (the policies
themselves are compared with the reference in tests/compat/test_id_reuse.py).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
from temporalio.api.common.v1 import WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DeleteWorkflowExecutionRequest,
    DescribeWorkflowExecutionRequest,
    StartWorkflowExecutionRequest,
    TerminateWorkflowExecutionRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from hourglass.cluster.node import Node, NodeConfig
from hourglass.persistence.records import HistoryNode
from hourglass.persistence.sqlite.store import SQLiteStore


class WatchedStore:
    """The real store, noting the pointer reads and which runs got history and lost it again."""

    def __init__(self, inner: SQLiteStore) -> None:
        self._inner = inner
        self.pointer_reads = 0
        self.runs_with_history: set[str] = set()
        self.runs_forgotten: set[str] = set()

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    async def get_current_run(self, *args, **kwargs):
        self.pointer_reads += 1
        return await self._inner.get_current_run(*args, **kwargs)

    async def append_history_nodes(self, nodes: Sequence[HistoryNode]) -> int:
        self.runs_with_history.update(node.run_id for node in nodes)
        return await self._inner.append_history_nodes(nodes)

    async def delete_history(self, namespace_id: str, workflow_id: str, run_id: str) -> None:
        self.runs_forgotten.add(run_id)
        await self._inner.delete_history(namespace_id, workflow_id, run_id)


@pytest.fixture
async def node_and_store() -> AsyncIterator[tuple[Node, WatchedStore]]:
    store = WatchedStore(await SQLiteStore.open(None))
    node = Node(NodeConfig(port=0), store)  # type: ignore[arg-type]  # duck-typed like MeteredStore
    await node.start()
    try:
        yield node, store
    finally:
        await node.stop(grace=0.5)


def _start(workflow_id: str, request_id: str) -> StartWorkflowExecutionRequest:
    return StartWorkflowExecutionRequest(
        namespace="default",
        workflow_id=workflow_id,
        workflow_type=WorkflowType(name="Greet"),
        task_queue=TaskQueue(name="nowhere"),
        request_id=request_id,
    )


async def test_a_new_id_is_started_without_reading_its_pointer(node_and_store) -> None:
    node, store = node_and_store
    client = await Client.connect(f"127.0.0.1:{node.bound_port}")
    reads = store.pointer_reads
    started = await client.workflow_service.start_workflow_execution(_start("fresh", str(uuid.uuid4())))
    assert started.started and started.run_id
    assert store.pointer_reads == reads
    described = await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace="default", execution=WorkflowExecution(workflow_id="fresh", run_id=started.run_id)
        )
    )
    assert (
        described.workflow_execution_info.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
    )


async def test_an_id_in_use_is_refused_a_retried_request_answers_and_nothing_is_left(node_and_store) -> None:
    node, store = node_and_store
    client = await Client.connect(f"127.0.0.1:{node.bound_port}")
    request_id = str(uuid.uuid4())
    first = await client.workflow_service.start_workflow_execution(_start("taken", request_id))

    with pytest.raises(RPCError) as refused:
        await client.workflow_service.start_workflow_execution(
            _start("taken", str(uuid.uuid4())), retry=False
        )
    assert refused.value.status == RPCStatusCode.ALREADY_EXISTS
    assert refused.value.message == (
        f"Workflow execution is already running. WorkflowId: taken, RunId: {first.run_id}."
    )
    again = await client.workflow_service.start_workflow_execution(_start("taken", request_id))
    assert again.run_id == first.run_id

    await client.workflow_service.terminate_workflow_execution(
        TerminateWorkflowExecutionRequest(
            namespace="default", workflow_execution=WorkflowExecution(workflow_id="taken"), reason="done"
        )
    )
    reused = await client.workflow_service.start_workflow_execution(_start("taken", str(uuid.uuid4())))
    assert reused.started and reused.run_id != first.run_id

    # Every refused attempt appended the first events of a run that never existed, and deleted them.
    never_created = store.runs_with_history - {first.run_id, reused.run_id}
    assert len(never_created) >= 3, never_created  # the duplicate, the retried request, the reuse
    assert store.runs_forgotten == never_created


async def test_requests_without_a_run_id_follow_the_committed_pointer(node_and_store) -> None:
    """The current run of an id this node started, terminated, started again and deleted: always the
    right one, and no pointer read while the shard knows it."""
    node, store = node_and_store
    client = await Client.connect(f"127.0.0.1:{node.bound_port}")
    svc = client.workflow_service
    current = WorkflowExecution(workflow_id="followed")

    async def describe():
        return await svc.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(namespace="default", execution=current)
        )

    first = await svc.start_workflow_execution(_start("followed", str(uuid.uuid4())))
    reads = store.pointer_reads
    assert (await describe()).workflow_execution_info.execution.run_id == first.run_id
    await svc.terminate_workflow_execution(
        TerminateWorkflowExecutionRequest(namespace="default", workflow_execution=current, reason="done")
    )
    closed = (await describe()).workflow_execution_info
    assert closed.execution.run_id == first.run_id
    assert closed.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED
    assert store.pointer_reads == reads

    second = await svc.start_workflow_execution(_start("followed", str(uuid.uuid4())))
    running = (await describe()).workflow_execution_info
    assert running.execution.run_id == second.run_id
    assert running.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING

    await svc.delete_workflow_execution(
        DeleteWorkflowExecutionRequest(namespace="default", workflow_execution=current)
    )
    with pytest.raises(RPCError) as gone:
        await describe()
    assert gone.value.status == RPCStatusCode.NOT_FOUND
