"""hourglass_rpc_requests_total counts each request with the status its client saw, refusals of the
authorization interceptor included, and hourglass_rpc_latency_seconds times it, on a start-dev with JWT
authorization on."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client.parser import text_string_to_metric_families
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError

from hourglass.loadtest.servers import ManagedServer, hourglass_server


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[tuple[ManagedServer, ec.EllipticCurvePrivateKey]]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = tmp_path / "jwt-key.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    server = hourglass_server(tmp_path)
    server.argv += ["--auth-jwt-key-uri", public.as_uri()]
    await server.start()
    try:
        yield server, key
    finally:
        server.stop()


def samples(metrics_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_requests_are_counted_with_the_status_the_client_saw(secured) -> None:
    server, key = secured
    assert server.metrics_url is not None
    token = jwt.encode(
        {"sub": "ops", "permissions": ["default:read"], "exp": int(time.time()) + 300}, key, algorithm="ES256"
    )
    anonymous = await Client.connect(server.address)
    reader = await Client.connect(server.address, api_key=token, tls=False)  # plaintext dev port
    request = DescribeNamespaceRequest(namespace="default")
    with pytest.raises(RPCError) as refused:
        await anonymous.workflow_service.describe_namespace(request)
    for _ in range(2):
        await reader.workflow_service.describe_namespace(request)

    got = await asyncio.to_thread(samples, server.metrics_url)

    def requests(status: str) -> float:
        labels = (("method", "DescribeNamespace"), ("namespace", "default"), ("status", status))
        return got.get(("hourglass_rpc_requests_total", labels), 0.0)

    assert requests(refused.value.status.name) == 1
    assert requests("OK") == 2
    timed = got[("hourglass_rpc_latency_seconds_count", (("method", "DescribeNamespace"),))]
    assert timed == 3
