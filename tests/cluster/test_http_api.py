"""The HTTP API on a 3-node cluster with mutual TLS and JWT authorization: a client that speaks only
HTTPS starts a workflow through one member, signals and updates it through another and reads it through
the third, whichever member owns its shard; an SDK worker on yet another connection runs it."""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid

import httpx

from .conftest import new_queue, worker_on
from .harness import LocalCluster, Node

NS = "/api/v1/namespaces/default"


def _https(cluster: LocalCluster, node: Node, *permissions: str) -> httpx.AsyncClient:
    certs = cluster.workdir / "certs"
    tls = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    tls.load_cert_chain(str(certs / "tests.crt"), str(certs / "tests.key"))
    assert cluster.tokens is not None
    return httpx.AsyncClient(
        base_url=f"https://{node.ip}:{node.api_port}",
        verify=tls,
        headers={"Authorization": f"Bearer {cluster.tokens.token(*permissions)}"},
        timeout=30,
    )


async def test_an_https_client_drives_a_workflow_through_any_member(cluster: LocalCluster) -> None:
    n1, n2, n3 = cluster.nodes[:3]
    task_queue = new_queue()
    workflow_id = f"http-{uuid.uuid4().hex[:8]}"
    async with (
        worker_on(cluster, n1, task_queue),
        _https(cluster, n2, "default:write") as via2,
        _https(cluster, n3, "default:write") as via3,
        _https(cluster, n1, "default:read") as reader,
    ):
        start = {"workflowType": {"name": "WaitForSignal"}, "taskQueue": {"name": task_queue}}
        started = await via2.post(f"{NS}/workflows/{workflow_id}", json=start)
        assert started.status_code == 200, started.text
        run_id = started.json()["runId"]
        bumped = await via3.post(
            f"{NS}/workflows/{workflow_id}/update/bump",
            json={
                "request": {"meta": {"updateId": "b1"}, "input": {"args": [41]}},
                "waitPolicy": {"lifecycleStage": "Completed"},
            },
        )
        assert (bumped.status_code, bumped.json().get("outcome")) == (200, {"success": [42]}), bumped.text
        # A reader may look but not signal.
        refused = await reader.post(f"{NS}/workflows/{workflow_id}/signal/finish", json={"input": ["no"]})
        assert refused.status_code == 403
        signalled = await via3.post(
            f"{NS}/workflows/{workflow_id}/signal/finish", json={"input": ["over https"]}
        )
        assert signalled.status_code == 200, signalled.text
        deadline = time.monotonic() + 30
        while True:
            described = (await reader.get(f"{NS}/workflows/{workflow_id}")).json()
            if described["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED":
                break
            assert time.monotonic() < deadline, described
            await asyncio.sleep(0.2)
        history = (
            await reader.get(f"{NS}/workflows/{workflow_id}/history", params={"execution.runId": run_id})
        ).json()
        completed = history["history"]["events"][-1]
        assert completed["workflowExecutionCompletedEventAttributes"]["result"] == ["over https"]
