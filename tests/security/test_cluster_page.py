"""The node's HTTP port (issue 17, item 2) behind the frontend's identities: the cluster page's data
(/api/v1/cluster) answers only a system admin's bearer token when an authorizer is configured, and the
whole port speaks (mutual) TLS with the frontend's certificate when `tls.frontend` is set."""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hourglass.cluster.config import AuthorizationSection, TLSSection
from hourglass.cluster.node import Node, NodeConfig
from hourglass.persistence.sqlite.store import SQLiteStore

from .conftest import PKI, Pair, make_pki
from .jwt_helpers import JWTKeys


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def _get(port: int, path: str, context: ssl.SSLContext | None, token: str | None = None) -> Reply:
    conn = (
        http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=15)
        if context is not None
        else http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    )
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


async def get(port: int, path: str, context: ssl.SSLContext | None, token: str | None = None) -> Reply:
    # In a thread: the node answers /api/v1/cluster on this test's own event loop.
    return await asyncio.to_thread(_get, port, path, context, token)


def client_context(pki: PKI, client: Pair | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
async def secure_node(keys: JWTKeys, pki: PKI) -> AsyncIterator[Node]:
    """An in-process node with the default authorizer, a mutual-TLS frontend and its HTTP port on."""
    node = Node(
        NodeConfig(
            port=0,
            metrics_port=0,
            authorization=AuthorizationSection(
                authorizer="default",
                claim_mapper="default",
                jwt_key_provider={"key_source_uris": keys.key_source_uris()},
            ),
            tls=TLSSection(
                frontend={
                    "server": {
                        "cert_file": str(pki.server.cert),
                        "key_file": str(pki.server.key),
                        "client_ca_files": [str(pki.ca)],
                        "require_client_auth": True,
                    }
                }
            ),
        ),
        await SQLiteStore.open(None),
    )
    await node.start()
    yield node
    await node.stop()


async def test_cluster_data_needs_a_system_admin_token(secure_node: Node, keys: JWTKeys, pki: PKI) -> None:
    port, tls = secure_node.metrics_port, client_context(pki, pki.client)
    assert port is not None

    none = await get(port, "/api/v1/cluster", tls)
    assert none.status == 401
    assert none.headers["www-authenticate"].startswith("Bearer")
    assert none.json()["error"] == "Request unauthorized."
    assert "members" not in none.json()

    assert (await get(port, "/api/v1/cluster", tls, "not-a-jwt")).status == 401
    # Signed by a key the node does not trust.
    assert (
        await get(port, "/api/v1/cluster", tls, keys.stranger.token(["temporal-system:admin"]))
    ).status == 401

    for permissions in (["temporal-system:read"], ["temporal-system:write"], ["default:admin"], []):
        denied = await get(port, "/api/v1/cluster", tls, keys.ec.token(permissions))
        assert denied.status == 403, permissions
        assert "members" not in denied.json()

    admin = await get(port, "/api/v1/cluster", tls, keys.ec.token(["temporal-system:admin"]))
    assert admin.status == 200
    data = admin.json()
    assert [m["state"] for m in data["members"]] == ["alive"]
    assert sorted(s["shard_id"] for s in data["shards"] if s["member_id"]) == [0, 1, 2, 3]
    assert admin.headers["cache-control"] == "no-store"


async def test_the_page_shell_and_metrics_need_no_token_but_do_need_the_tls_client_certificate(
    secure_node: Node, pki: PKI
) -> None:
    port = secure_node.metrics_port
    assert port is not None
    tls = client_context(pki, pki.client)
    page = await get(port, "/cluster", tls)
    assert page.status == 200 and b"Hourglass cluster" in page.body
    # The inline script runs under a per-response nonce, and nothing from elsewhere may load.
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'nonce-" in csp
    assert "hourglass_event_loop_lag_seconds" in (await get(port, "/metrics", tls)).body.decode()

    # Plain HTTP on the TLS port gets no page.
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        await get(port, "/metrics", None)
    # No client certificate, or one from another CA: the handshake fails.
    for client, ca in ((None, pki.ca), (pki.other_client, pki.ca)):
        context = ssl.create_default_context(cafile=str(ca))
        if client is not None:
            context.load_cert_chain(str(client.cert), str(client.key))
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            await get(port, "/metrics", context)


async def test_unknown_paths_and_methods_are_refused(secure_node: Node, pki: PKI) -> None:
    port = secure_node.metrics_port
    assert port is not None
    tls = client_context(pki, pki.client)
    assert (await get(port, "/debug/hooks", tls)).status == 404

    def post() -> int:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=tls, timeout=15)
        try:
            conn.request("POST", "/api/v1/cluster", body=b"{}")
            return conn.getresponse().status
        finally:
            conn.close()

    assert await asyncio.to_thread(post) == 405


async def test_an_open_node_serves_its_page_data_to_anyone(tmp_path: Path) -> None:
    """start-dev's default (no authorizer, no TLS): the page and its data are open, like /metrics."""
    node = Node(NodeConfig(port=0, metrics_port=0), await SQLiteStore.open(None))
    await node.start()
    try:
        assert node.metrics_port is not None
        data = (await get(node.metrics_port, "/api/v1/cluster", None)).json()
        assert data["answered_by"] == f"127.0.0.1:{node.bound_port}"
        assert data["history_shard_count"] == 4
        assert (await get(node.metrics_port, "/", None)).headers["location"] == "/cluster"
    finally:
        await node.stop()
