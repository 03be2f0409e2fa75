"""TLS and mutual TLS on the public frontend: `hourglass server start-dev --tls-*` and `tls.frontend` in
a node config, through the official SDK, the `temporal` CLI and plain gRPC, and certificate rotation
without a restart. Every certificate is made here (trustme)."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc
from temporalio import activity, workflow
from temporalio.client import Client, TLSConfig
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from hourglass.cluster.security.tls import load_client_tls

from .conftest import PKI, Pair, free_port, hourglass_exe, running

pytestmark = pytest.mark.timeout(120)

TEMPORAL = shutil.which("temporal") or str(Path(hourglass_exe()).with_name("temporal"))


@activity.defn
async def shout(text: str) -> str:
    return text.upper()


@workflow.defn
class Shout:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(shout, text, start_to_close_timeout=timedelta(seconds=10))


def start_dev(tmp_path: Path, port: int, *tls_args: str) -> list[str]:
    # --headless: the Web UI over TLS is tests/ui's.
    argv = [hourglass_exe(), "server", "start-dev", "--headless", "--port", str(port)]
    return [*argv, "--log-level", "warning", *tls_args]


def sdk_tls(pki: PKI, client: Pair | None = None, ca: Path | None = None) -> TLSConfig:
    return TLSConfig(
        server_root_ca_cert=(ca or pki.ca).read_bytes(),
        client_cert=client.cert.read_bytes() if client else None,
        client_private_key=client.key.read_bytes() if client else None,
    )


async def run_workflow(address: str, tls: TLSConfig) -> str:
    client = await asyncio.wait_for(Client.connect(address, tls=tls), 15)
    queue = f"tls-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[Shout],
        activities=[shout],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        return await client.execute_workflow(
            Shout.run, "over tls", id=queue, task_queue=queue, execution_timeout=timedelta(seconds=30)
        )


async def health(address: str, ca: Path | None = None, client: Pair | None = None) -> grpc.StatusCode:
    """The gRPC health check's outcome: OK, or the status the connection failed with."""
    if ca is None:
        channel = grpc.aio.insecure_channel(address)
    else:
        tls = load_client_tls(
            str(ca), str(client.cert) if client else None, str(client.key) if client else None
        )
        channel = tls.secure_channel(address)
    async with channel:
        try:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        except grpc.aio.AioRpcError as e:
            return e.code()
    return grpc.StatusCode.OK


def mtls_flags(pki: PKI) -> list[str]:
    """start-dev's flags for mutual TLS with `pki`'s server certificate and CA."""
    return [
        "--tls-cert",
        str(pki.server.cert),
        "--tls-key",
        str(pki.server.key),
        "--tls-client-ca",
        str(pki.ca),
    ]


async def test_sdk_runs_a_workflow_over_tls_and_plaintext_is_refused(tmp_path, pki):
    port = free_port()
    address = f"127.0.0.1:{port}"
    argv = start_dev(tmp_path, port, "--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key))
    with running(argv, tmp_path / "server.log"):
        assert await run_workflow(address, sdk_tls(pki)) == "OVER TLS"
        assert await health(address) == grpc.StatusCode.UNAVAILABLE  # a plaintext client gets no answer
        # A client that does not trust the server's CA refuses it.
        assert await health(address, pki.other_ca) == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(RuntimeError, match="connect"):
            await asyncio.wait_for(Client.connect(address), 15)


async def test_mutual_tls_needs_a_client_certificate_from_the_client_ca(tmp_path, pki):
    port = free_port()
    address = f"127.0.0.1:{port}"
    argv = start_dev(tmp_path, port, *mtls_flags(pki))
    with running(argv, tmp_path / "server.log"):
        assert await run_workflow(address, sdk_tls(pki, pki.client)) == "OVER TLS"
        assert await health(address, pki.ca, pki.client) == grpc.StatusCode.OK
        assert await health(address) == grpc.StatusCode.UNAVAILABLE  # plaintext
        assert await health(address, pki.ca) == grpc.StatusCode.UNAVAILABLE  # TLS without a client cert
        assert await health(address, pki.ca, pki.other_client) == grpc.StatusCode.UNAVAILABLE  # another CA
        for tls in (sdk_tls(pki), sdk_tls(pki, pki.other_client)):
            with pytest.raises(RuntimeError, match="connect"):
                await asyncio.wait_for(Client.connect(address, tls=tls), 15)
        # The real `temporal` CLI with the same options as against the reference lists the workflow.
        proc = await asyncio.create_subprocess_exec(
            TEMPORAL,
            *("workflow", "list", "--address", address, "-o", "json", "--color", "never"),
            *("--tls-ca-path", str(pki.ca), "--tls-cert-path", str(pki.client.cert)),
            *("--tls-key-path", str(pki.client.key)),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        listed = json.loads(out)
        assert [w["type"]["name"] for w in listed] == ["Shout"]


async def test_a_certificate_replaced_on_disk_is_served_without_restart(tmp_path, pki):
    port = free_port()
    address = f"127.0.0.1:{port}"
    cert, key = tmp_path / "frontend.crt", tmp_path / "frontend.key"
    cert.write_bytes(pki.server.cert.read_bytes())
    key.write_bytes(pki.server.key.read_bytes())
    config = tmp_path / "node.yaml"
    config.write_text(
        f"node: {{ip: 127.0.0.1, port: {port}}}\n"
        "store: {kind: sqlite}\n"
        "tls:\n  refresh_interval_s: 0.2\n"
        f"  frontend:\n    server: {{cert_file: {cert}, key_file: {key}}}\n"
    )
    with running([hourglass_exe(), "server", "start", "--config", str(config)], tmp_path / "server.log"):
        assert await health(address, pki.ca) == grpc.StatusCode.OK
        # The operator replaces the certificate with one from a new CA (key first, then certificate).
        new_ca = trustme.CA()
        new_ca_file = tmp_path / "new-ca.pem"
        new_ca.cert_pem.write_to_path(str(new_ca_file))
        new = pki.issue("rotated", "127.0.0.1", ca=new_ca)
        key.write_bytes(new.key.read_bytes())
        cert.write_bytes(new.cert.read_bytes())
        # New connections get the new certificate: trusted with the old CA no longer, with the new one.
        deadline = asyncio.get_running_loop().time() + 10
        while await health(address, pki.ca) == grpc.StatusCode.OK:
            assert asyncio.get_running_loop().time() < deadline, "the old certificate is still served"
            await asyncio.sleep(0.3)
        assert await health(address, new_ca_file) == grpc.StatusCode.OK
        assert await run_workflow(address, sdk_tls(pki, ca=new_ca_file)) == "OVER TLS"


def test_a_missing_or_mismatched_certificate_file_is_named_at_start(tmp_path, pki):
    import subprocess

    config = tmp_path / "node.yaml"
    config.write_text(
        f"node: {{port: {free_port()}}}\nstore: {{kind: sqlite}}\n"
        f"tls:\n  frontend:\n    server: {{cert_file: {pki.server.cert}, key_file: {pki.client.key}}}\n"
    )
    argv = [hourglass_exe(), "server", "start", "--config", str(config)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "tls.frontend.server.key_file" in done.stderr and "is not the private key" in done.stderr
    config.write_text(config.read_text().replace(str(pki.server.cert), str(tmp_path / "missing.crt")))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "tls.frontend.server.cert_file: cannot read" in done.stderr
    # start-dev names its flags.
    argv = start_dev(
        tmp_path, free_port(), "--tls-cert", str(pki.server.cert), "--tls-key", str(pki.client.key)
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "--tls-key: " in done.stderr and "is not the private key" in done.stderr


async def test_loadtest_runs_over_mutual_tls_with_both_drivers(tmp_path, pki):
    port = free_port()
    argv = start_dev(tmp_path, port, *mtls_flags(pki))
    tls_args = ["--tls-ca-path", str(pki.ca), "--tls-cert-path", str(pki.client.cert)]
    tls_args += ["--tls-key-path", str(pki.client.key)]
    with running(argv, tmp_path / "server.log"):
        for driver in ("raw", "sdk"):
            out = tmp_path / f"{driver}.json"
            proc = await asyncio.create_subprocess_exec(
                hourglass_exe(),
                *("loadtest", "run", "--address", f"127.0.0.1:{port}", "--workflows", "10", "--quiet"),
                *("--driver", driver, "--out", str(out), *tls_args),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await asyncio.wait_for(proc.communicate(), 90)
            assert proc.returncode == 0, output.decode()
            figures = json.loads(out.read_text())["figures"]
            assert (figures["workflows_completed"], figures["workflows_failed"]) == (10, 0), driver


def test_tls_settings_that_cannot_be_honoured_are_config_errors(tmp_path, pki):
    from hourglass.cluster.config import ConfigError, load_config

    config = tmp_path / "node.yaml"
    server = f"server: {{cert_file: {pki.server.cert}, key_file: {pki.server.key}}}"
    client = "client: {disable_host_verification: true}"
    config.write_text(f"store: {{kind: sqlite}}\ntls:\n  frontend:\n    {server}\n    {client}\n")
    with pytest.raises(
        ConfigError, match="tls.frontend.client: .*disable_host_verification: true is not supported"
    ):
        load_config(config)
    server = server.replace("}", ", require_client_auth: true}")
    config.write_text(f"store: {{kind: sqlite}}\ntls:\n  frontend:\n    {server}\n")
    with pytest.raises(
        ConfigError, match="tls.frontend.server: .*require_client_auth: true needs client_ca_files"
    ):
        load_config(config)
