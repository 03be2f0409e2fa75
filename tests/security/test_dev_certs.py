"""`hourglass cluster dev-certs` writes certificates a member can serve and present (internode mTLS)."""

from __future__ import annotations

import types

import grpc
from click.testing import CliRunner
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from hourglass.cluster.cli import main
from hourglass.cluster.security.tls import InternodeClientTLS, group_credentials, listen, load_client_tls


async def test_dev_certs_give_working_internode_mutual_tls(tmp_path):
    out = tmp_path / "certs"
    result = CliRunner().invoke(
        main, ["cluster", "dev-certs", "--out", str(out), "--hosts", "127.0.0.2,127.0.0.3"]
    )
    assert result.exit_code == 0, result.output
    ca_before = (out / "ca.pem").read_bytes()
    # A second run (one more member) keeps the CA: certificates issued earlier stay valid.
    assert (
        CliRunner()
        .invoke(main, ["cluster", "dev-certs", "--out", str(out), "--hosts", "127.0.0.4"])
        .exit_code
        == 0
    )
    assert (out / "ca.pem").read_bytes() == ca_before
    assert (out / "127.0.0.4.key").stat().st_mode & 0o077 == 0  # keys readable by their owner only

    def group(host: str):
        server = types.SimpleNamespace(
            cert_file=str(out / f"{host}.crt"),
            key_file=str(out / f"{host}.key"),
            client_ca_files=[str(out / "ca.pem")],
            require_client_auth=True,
        )
        return types.SimpleNamespace(
            server=server, client=types.SimpleNamespace(root_ca_files=[], server_name=None)
        )

    server = grpc.aio.server()
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = listen(server, "127.0.0.2:0", group_credentials(group("127.0.0.2"), 60.0, "tls.internode"))
    await server.start()
    try:
        # Member 127.0.0.3 calls member 127.0.0.2 with its own certificate; so does a tool with client.crt.
        member = InternodeClientTLS(group("127.0.0.3"), 60.0).current()
        tool = load_client_tls(str(out / "ca.pem"), str(out / "client.crt"), str(out / "client.key"))
        for tls in (member, tool):
            async with tls.secure_channel(f"127.0.0.2:{port}") as ch:
                reply = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.stop(0)
