"""The HTTP API port behind the frontend's identities: HTTPS with the frontend's certificate, a client
certificate from its CAs required when the frontend requires one, and the JWT authorizer deciding each
call from the `Authorization` header exactly as over gRPC (reader, writer, nobody)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
from collections.abc import AsyncIterator
from types import SimpleNamespace

import httpx
import pytest
from cryptography import x509
from prometheus_client import REGISTRY

from hourglass.cluster.config import AuthorizationSection, TLSSection
from hourglass.cluster.history import nexus_dispatch
from hourglass.cluster.node import Node, NodeConfig
from hourglass.persistence.sqlite.store import SQLiteStore

from .conftest import PKI, Pair, make_pki
from .jwt_helpers import JWTKeys

NS = "/api/v1/namespaces/default"
REFRESH_S = 0.2
DENIED = {
    "code": 7,
    "message": "Request unauthorized.",
    "details": [{"@type": "type.googleapis.com/temporal.api.errordetails.v1.PermissionDeniedFailure"}],
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
async def node(keys: JWTKeys, pki: PKI) -> AsyncIterator[Node]:
    """A node with the default authorizer, a mutual-TLS frontend and the HTTP API on any free port."""
    served = pki.dir / "served"
    served.mkdir()
    shutil.copy(pki.server.cert, served / "server.crt")
    shutil.copy(pki.server.key, served / "server.key")
    n = Node(
        NodeConfig(
            port=0,
            http_port=0,
            authorization=AuthorizationSection(
                authorizer="default",
                claim_mapper="default",
                jwt_key_provider={"key_source_uris": keys.key_source_uris()},
            ),
            tls=TLSSection(
                refresh_interval_s=REFRESH_S,
                frontend={
                    "server": {
                        "cert_file": str(served / "server.crt"),
                        "key_file": str(served / "server.key"),
                        "client_ca_files": [str(pki.ca)],
                        "require_client_auth": True,
                    }
                },
            ),
        ),
        await SQLiteStore.open(None),
    )
    await n.start()
    yield n
    await n.stop()


def context(pki: PKI, client: Pair | None, ca=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca or pki.ca))
    if client is not None:
        ctx.load_cert_chain(str(client.cert), str(client.key))
    return ctx


def base(node: Node) -> str:
    assert node.http_api is not None and node.http_api.scheme == "https"
    return f"https://127.0.0.1:{node.http_api.bound_port}"


def _requests(method: str, status: str) -> float:
    labels = {"method": method, "namespace": "default", "status": status}
    return REGISTRY.get_sample_value("hourglass_rpc_requests_total", labels) or 0.0


async def test_tokens_decide_as_on_the_grpc_port(node: Node, keys: JWTKeys, pki: PKI) -> None:
    denied_before = _requests("ListWorkflowExecutions", "PERMISSION_DENIED")
    start = {"workflowType": {"name": "W"}, "taskQueue": {"name": "nobody-polls"}}
    async with httpx.AsyncClient(base_url=base(node), verify=context(pki, pki.client), timeout=15) as http:
        anonymous = await http.get(f"{NS}/workflows")
        assert (anonymous.status_code, anonymous.json()) == (403, DENIED)
        assert anonymous.headers["server"] == "hourglass"  # no library versions for a scanner
        stranger = {"Authorization": f"Bearer {keys.stranger.token(['temporal-system:admin'])}"}
        refused = await http.get(f"{NS}/workflows", headers=stranger)
        assert (refused.status_code, refused.json()) == (403, DENIED)

        reader = {"Authorization": f"Bearer {keys.ec.token(['default:read'])}"}
        assert (await http.get(f"{NS}/workflows", headers=reader)).status_code == 200
        write = await http.post(f"{NS}/workflows/by-reader", json=start, headers=reader)
        assert (write.status_code, write.json()) == (403, DENIED)
        # Another namespace's writer is nobody here.
        elsewhere = {"Authorization": f"Bearer {keys.ec.token(['other:write'])}"}
        assert (await http.post(f"{NS}/workflows/w1", json=start, headers=elsewhere)).status_code == 403

        writer = {"Authorization": f"Bearer {keys.rsa.token(['default:write'])}"}
        started = await http.post(f"{NS}/workflows/by-writer", json=start, headers=writer)
        assert started.status_code == 200 and started.json()["started"] is True
        described = await http.get(f"{NS}/workflows/by-writer", headers=reader)
        assert described.json()["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_RUNNING"
        # Registering a namespace needs admin, over HTTP as over gRPC.
        register = {"namespace": "made-over-http", "workflowExecutionRetentionPeriod": "86400s"}
        assert (await http.post("/api/v1/namespaces", json=register, headers=writer)).status_code == 403
        admin = {"Authorization": f"Bearer {keys.ec.token(['temporal-system:admin'])}"}
        assert (await http.post("/api/v1/namespaces", json=register, headers=admin)).status_code == 200
    # Counted in the RPC metrics like the same calls over gRPC, refusals with the status the client saw.
    assert _requests("ListWorkflowExecutions", "PERMISSION_DENIED") == denied_before + 2


async def test_the_port_needs_tls_and_a_client_certificate_from_the_frontends_cas(
    node: Node, pki: PKI
) -> None:
    port = node.http_api.bound_port
    with pytest.raises(httpx.HTTPError):  # plain HTTP on the TLS port
        async with httpx.AsyncClient(timeout=5) as http:
            await http.get(f"http://127.0.0.1:{port}{NS}")
    for client in (None, pki.other_client):
        with pytest.raises((httpx.HTTPError, ssl.SSLError)):
            async with httpx.AsyncClient(verify=context(pki, client), timeout=5) as http:
                await http.get(f"{base(node)}{NS}")


async def test_a_replaced_certificate_serves_new_connections_without_a_restart(node: Node, pki: PKI) -> None:
    def served_serial() -> int:
        ctx = context(pki, pki.client)
        with socket.create_connection(("127.0.0.1", node.http_api.bound_port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number

    before = await asyncio.to_thread(served_serial)
    fresh = pki.issue("rotated", "127.0.0.1", "localhost")
    served = pki.dir / "served"
    shutil.copy(fresh.key, served / "server.key")
    shutil.copy(fresh.cert, served / "server.crt")
    deadline = asyncio.get_running_loop().time() + 10
    while (after := await asyncio.to_thread(served_serial)) == before:
        assert asyncio.get_running_loop().time() < deadline, "the old certificate is still served"
        await asyncio.sleep(REFRESH_S)
    assert after == x509.load_pem_x509_certificate(fresh.cert.read_bytes()).serial_number


async def test_the_nexus_routes_are_authorized_as_the_rest_of_the_port(
    node: Node, keys: JWTKeys, pki: PKI
) -> None:
    """A completion needs NexusService/CompleteNexusOperation, a start NexusService/DispatchNexusTask: a
    writer in the namespace with the default authorizer; nobody else gets past the authorizer (403, a bad
    token 401), whatever the callback token."""
    ns = await node.namespaces.get("default")
    operation = SimpleNamespace(scheduled_event_id=5, request_id="request-1")
    token = nexus_dispatch.callback_token(
        node.task_tokens, ns.id, "no-such-workflow", "no-such-run", operation
    )
    completion = {
        "Nexus-Operation-State": "succeeded",
        "Content-Type": "application/json",
        "Temporal-Callback-Token": token,
    }
    start = {"Request-Timeout": "500ms", "Content-Type": "application/json"}
    start_path = "/namespaces/default/task-queues/nobody-polls/nexus-services/svc/op"
    denied = {"message": "permission denied", "metadata": {"type": "nexus.HandlerError"}}
    reader = {"Authorization": f"Bearer {keys.ec.token(['default:read'])}"}
    writer = {"Authorization": f"Bearer {keys.rsa.token(['default:write'])}"}
    stranger = {"Authorization": f"Bearer {keys.stranger.token(['default:write'])}"}
    async with httpx.AsyncClient(base_url=base(node), verify=context(pki, pki.client), timeout=15) as http:
        for who in ({}, reader, stranger):
            for path, headers in (("/namespaces/default/nexus/callback", completion), (start_path, start)):
                refused = await http.post(path, headers={**headers, **who}, content=b'"x"')
                assert refused.status_code in (401, 403), (path, who, refused.text)
                if refused.status_code == 403:
                    assert {k: refused.json()[k] for k in denied} == denied
        # A writer passes: the completion names no run (404), the start finds no worker (520).
        passed = await http.post(
            "/namespaces/default/nexus/callback", headers={**completion, **writer}, content=b'"x"'
        )
        assert passed.status_code == 404, passed.text
        passed = await http.post(start_path, headers={**start, **writer}, content=b'"x"')
        assert (passed.status_code, passed.json()["message"]) == (520, "upstream timeout")
