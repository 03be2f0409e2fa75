"""The cluster as production is asked to run it (issue 13): members on mutual TLS with sealed gossip, the
public ports on mutual TLS with the default JWT authorizer. The differential scenarios run through the
official SDK and the real `temporal` CLI drives workflows over it, each through a different node, and an
outsider without a certificate or a token gets nothing."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import uuid
from pathlib import Path

import grpc
import pytest
from compat.history_diff import event_type_list
from compat.scenarios import BY_NAME, run_scenario
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest, ListWorkflowExecutionsRequest
from temporalio.service import RPCError, RPCStatusCode

from .conftest import new_queue, worker_on
from .harness import LocalCluster

pytestmark = pytest.mark.timeout(300)

BIN = Path(sys.executable).parent
TEMPORAL = str(BIN / "temporal") if (BIN / "temporal").exists() else shutil.which("temporal")
# Deterministic scenarios (no timeouts that a loaded 2-core box could stretch), each pinned to the
# reference's event sequence in tests/compat/scenarios.py.
SCENARIOS = [
    "one-activity",
    "activity-retry-then-success",
    "activity-failure",
    "timer",
    "cancelled-timer",
    "signals",
    "query",
    "signal-with-start",
    "cancel",
    "terminate",
    "child-workflows",
    "continue-as-new",
    "external-signal-and-cancel",
    "reset",
    "update-accepted-and-completed",
    "update-rejected",
    "update-with-start",
    "eager-workflow-start",
]


async def test_the_compat_scenarios_run_through_every_node_over_mtls_with_a_jwt(cluster: LocalCluster):
    clients = [await cluster.connect(node) for node in cluster.nodes]
    gate = asyncio.Semaphore(6)

    async def run(i: int, name: str) -> tuple[str, list[str]]:
        async with gate:
            history, _ = await asyncio.wait_for(run_scenario(clients[i % 3], BY_NAME[name]), 120)
            return name, event_type_list(history)

    results = await asyncio.gather(*(run(i, name) for i, name in enumerate(SCENARIOS)))
    mismatched = {name: got for name, got in results if got != BY_NAME[name].expected}
    assert not mismatched, f"event sequences differ from the reference's: {mismatched}"


async def temporal(cluster: LocalCluster, node, *args: str, permissions=()) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        TEMPORAL, *args, *cluster.cli_flags(node, *permissions), "--color", "never",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_the_temporal_cli_drives_a_workflow_over_mtls_with_a_jwt(cluster: LocalCluster):
    n1, n2, n3 = cluster.nodes
    queue, wid = new_queue(), f"cli-{uuid.uuid4().hex[:8]}"
    async with worker_on(cluster, n1, queue):
        code, out = await temporal(
            cluster, n2, "workflow", "start", "--type", "WaitForSignal", "--task-queue", queue,
            "--workflow-id", wid,
        )  # fmt: skip
        assert code == 0 and wid in out, out
        code, out = await temporal(
            cluster, n3, "workflow", "describe", "-w", wid, "-o", "json", permissions=["default:read"]
        )
        assert code == 0, out
        assert json.loads(out)["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_RUNNING"
        # A reader may look but not act: the reference's denial, and the run untouched.
        code, out = await temporal(
            cluster, n3, "workflow", "signal", "-w", wid, "--name", "finish", "-i", '"x"',
            permissions=["default:read"],
        )  # fmt: skip
        assert code != 0 and "Request unauthorized." in out, out
        code, out = await temporal(
            cluster, n1, "workflow", "signal", "-w", wid, "--name", "finish", "-i", '"x"'
        )
        assert code == 0, out
        code, out = await temporal(cluster, n2, "workflow", "result", "-w", wid, "-o", "json")
        assert code == 0 and json.loads(out)["result"] == "x", out
        code, out = await temporal(cluster, n3, "workflow", "show", "-w", wid, permissions=["default:read"])
        assert code == 0 and "WorkflowExecutionCompleted" in out, out
        code, out = await temporal(
            cluster, n1, "operator", "namespace", "create", "-n", f"ns-{uuid.uuid4().hex[:6]}",
        )  # fmt: skip
        assert code != 0 and "Request unauthorized." in out, out  # registering needs a system admin


async def test_an_outsider_gets_nothing_from_a_frontend(cluster: LocalCluster):
    node = cluster.nodes[0]
    # No client certificate: the TLS handshake fails, as does plaintext.
    async with grpc.aio.insecure_channel(node.address) as channel:
        call = channel.unary_unary(
            "/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo",
            request_serializer=GetSystemInfoRequest.SerializeToString,
            response_deserializer=lambda b: b,
        )
        with pytest.raises(grpc.aio.AioRpcError) as plaintext:
            await call(GetSystemInfoRequest(), timeout=5)
    assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE
    # A certificate but a token of another namespace (or none): PERMISSION_DENIED, as the reference.
    client = await cluster.connect(node, "other:admin")
    with pytest.raises(RPCError) as denied:
        await client.workflow_service.list_workflow_executions(
            ListWorkflowExecutionsRequest(namespace="default")
        )
    assert denied.value.status == RPCStatusCode.PERMISSION_DENIED
    assert denied.value.message == "Request unauthorized."
