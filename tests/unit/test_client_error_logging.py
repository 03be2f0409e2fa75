"""A client's mistake is logged in one line (method, namespace, status, message), never a traceback.

Before, an undecodable request logged a traceback per request (and answered UNKNOWN), and refused
requests left no trace at all for the operator.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from temporalio.api.common.v1 import WorkflowExecution, WorkflowType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice import v1 as workflowservice_v1
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest, StartWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from hourglass.cluster.frontend.service import WorkflowService
from hourglass.cluster.node import Node, NodeConfig
from hourglass.persistence.sqlite.store import SQLiteStore


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    node = Node(NodeConfig(port=0), await SQLiteStore.open(None))
    await node.start()
    try:
        yield node
    finally:
        await node.stop(grace=0.5)


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info or r.exc_text or "Traceback" in r.getMessage()]


async def test_a_refused_request_is_one_log_line(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    client = await Client.connect(f"127.0.0.1:{node.bound_port}")
    request = StartWorkflowExecutionRequest(
        namespace="default",
        workflow_id=str(uuid.uuid4()),
        workflow_type=WorkflowType(name="T"),
        task_queue=TaskQueue(name="/_sys/mine"),
        request_id=str(uuid.uuid4()),
    )
    with pytest.raises(RPCError) as info:
        await client.workflow_service.start_workflow_execution(request)
    assert info.value.status == RPCStatusCode.INVALID_ARGUMENT
    lines = [r.getMessage() for r in caplog.records if "StartWorkflowExecution" in r.getMessage()]
    assert lines == [
        "StartWorkflowExecution namespace=default INVALID_ARGUMENT: "
        "task queue name cannot start with reserved prefix /_sys/"
    ]
    assert _tracebacks(caplog) == []


async def test_an_undecodable_request_is_one_log_line(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{node.bound_port}") as channel:
        call = channel.unary_unary(
            "/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call(b"\x0a\x07default\x12\x02\xff\xfe", timeout=10)
            assert info.value.code() == grpc.StatusCode.INTERNAL
    lines = [r.getMessage() for r in caplog.records if "StartWorkflowExecution" in r.getMessage()]
    assert (
        lines
        == [
            "StartWorkflowExecution namespace=- INTERNAL: grpc: error unmarshalling request: string field contains invalid UTF-8"
        ]
        * 3
    )
    assert _tracebacks(caplog) == []


async def test_every_failed_request_is_one_info_line(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    """A Web UI page that stays blank must be explained in the log: a NOT_FOUND answer and a call to an
    RPC this server does not serve each leave one info line naming method, namespace and status."""
    caplog.set_level(logging.INFO)
    client = await Client.connect(f"127.0.0.1:{node.bound_port}")
    missing = str(uuid.uuid4())
    with pytest.raises(RPCError) as info:
        await client.workflow_service.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(
                namespace="default", execution=WorkflowExecution(workflow_id=missing)
            )
        )
    assert info.value.status == RPCStatusCode.NOT_FOUND
    unserved = next(
        name
        for name in sorted(vars(WorkflowService))
        if getattr(vars(WorkflowService)[name], "__qualname__", "").startswith("unimplemented.")
    )
    call = getattr(client.workflow_service, _snake(unserved))
    with pytest.raises(RPCError) as info:
        await call(getattr(workflowservice_v1, f"{unserved}Request")(namespace="default"))
    assert info.value.status == RPCStatusCode.UNIMPLEMENTED
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any(line.startswith("DescribeWorkflowExecution namespace=default NOT_FOUND: ") for line in lines)
    assert f"{unserved} namespace=default UNIMPLEMENTED: Hourglass does not implement {unserved} yet" in lines
    assert _tracebacks(caplog) == []


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
