"""The internal port of a cluster member takes only other members (mutual TLS with the cluster's CA),
and the public port serves no cluster internals: a one-member cluster node on SQLite, attacked as an
outsider on the same network would."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from temporalio.api.common.v1 import WorkflowExecution

from hourglass.cluster.rpc import codec
from hourglass.cluster.rpc import internal_pb2 as pb
from hourglass.cluster.security.tls import load_client_tls

from .conftest import PKI, Pair, free_port, free_udp_port, hourglass_exe, running, write_keyring

pytestmark = pytest.mark.timeout(90)

INVOKE = "/hourglass.internal.v1.HistoryService/Invoke"
CLUSTER = "/hourglass.internal.v1.ClusterService/"


def node_config(tmp_path: Path, pki: PKI, member: Pair, port: int, rpc_port: int, gossip_port: int) -> Path:
    config = tmp_path / "node.yaml"
    config.write_text(
        f"node: {{ip: 127.0.0.1, port: {port}}}\n"
        "store: {kind: sqlite}\n"
        f"cluster:\n  rpc_port: {rpc_port}\n  gossip_port: {gossip_port}\n"
        f"  seeds: [127.0.0.1:{gossip_port}]\n  join_timeout_s: 0\n"
        f"  gossip_keyring_file: {write_keyring(tmp_path)}\n"
        "tls:\n  internode:\n"
        f"    server: {{cert_file: {member.cert}, key_file: {member.key}, client_ca_files: [{pki.ca}], "
        "require_client_auth: true}\n"
    )
    return config


def channel(address: str, ca: Path | None = None, client: Pair | None = None) -> grpc.aio.Channel:
    if ca is None:
        return grpc.aio.insecure_channel(address)
    tls = load_client_tls(str(ca), str(client.cert) if client else None, str(client.key) if client else None)
    return tls.secure_channel(address)


async def call(ch: grpc.aio.Channel, method: str, request, response_type):
    fn = ch.unary_unary(method, request_serializer=type(request).SerializeToString,
                        response_deserializer=response_type.FromString)  # fmt: skip
    return await fn(request, timeout=5)


def read_state_call() -> pb.Call:
    """Read a run's mutable state: what an outsider used to get from the internal port."""
    return pb.Call(
        method="get_mutable_state",
        args=[codec.encode("ns"), codec.encode(WorkflowExecution(workflow_id="w"))],
    )


async def status_of(address: str, ca=None, client=None, method=INVOKE, request=None, response=pb.Reply):
    async with channel(address, ca, client) as ch:
        try:
            return await call(ch, method, request or read_state_call(), response)
        except grpc.aio.AioRpcError as e:
            return e.code()


async def test_internal_port_refuses_callers_without_a_member_certificate(tmp_path, pki):
    port, rpc_port, gossip_port = free_port(), free_port(), free_udp_port()
    member = pki.issue("member", "127.0.0.1")
    config = node_config(tmp_path, pki, member, port, rpc_port, gossip_port)
    internal, frontend = f"127.0.0.1:{rpc_port}", f"127.0.0.1:{port}"
    with running([hourglass_exe(), "server", "start", "--config", str(config)], tmp_path / "node.log"):
        unavailable = grpc.StatusCode.UNAVAILABLE
        assert await status_of(internal) == unavailable  # plaintext
        assert await status_of(internal, pki.ca) == unavailable  # TLS, no client certificate
        assert await status_of(internal, pki.ca, pki.other_client) == unavailable  # another CA's certificate
        # A member certificate gets an answer: the run does not exist (it was a real call).
        reply = await status_of(internal, pki.ca, pki.client)
        assert isinstance(reply, pb.Reply) and reply.error.kind == "NotFound", reply
        own = await status_of(
            internal,
            pki.ca,
            pki.client,
            CLUSTER + "LocalOwnership",
            pb.LocalOwnershipRequest(),
            pb.LocalOwnershipResponse,
        )
        assert own.member_id == f"127.0.0.1:{gossip_port}"
        # Test hooks are off unless cluster.test_hooks: not even a member can cut gossip off.
        hook = (
            CLUSTER + "SetGossipBlocked",
            pb.SetGossipBlockedRequest(blocked=True),
            pb.SetGossipBlockedResponse,
        )
        assert await status_of(internal, pki.ca, pki.client, *hook) == grpc.StatusCode.UNIMPLEMENTED

        # The public port serves no cluster internals: no test hook, no ownership; the status only.
        assert await status_of(frontend, None, None, *hook) == grpc.StatusCode.UNIMPLEMENTED
        ownership = (CLUSTER + "LocalOwnership", pb.LocalOwnershipRequest(), pb.LocalOwnershipResponse)
        assert await status_of(frontend, None, None, *ownership) == grpc.StatusCode.UNIMPLEMENTED
        assert await status_of(frontend, None, None, INVOKE) == grpc.StatusCode.UNIMPLEMENTED
        status = await status_of(
            frontend, None, None, CLUSTER + "Status", pb.ClusterStatusRequest(), pb.ClusterStatusResponse
        )
        assert [m.id for m in status.members] == [f"127.0.0.1:{gossip_port}"]

        # `hourglass cluster status` reaches the internal port with a certificate from the cluster's CA.
        tls_args = ["--tls-ca-path", str(pki.ca), "--tls-cert-path", str(pki.client.cert)]
        tls_args += ["--tls-key-path", str(pki.client.key)]
        for args, ok in ((tls_args, True), ([], False)):
            proc = await asyncio.create_subprocess_exec(
                hourglass_exe(), "cluster", "status", "--address", internal, *args,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert (proc.returncode == 0) == ok, (args, out, err)
            if ok:
                assert (
                    f"127.0.0.1:{gossip_port}" in out.decode() and "majority reachable: yes" in out.decode()
                )
            else:  # plaintext against the TLS-only internal port: no connection, and the CLI says so
                assert f"cannot connect to {internal}" in err.decode() and "plaintext vs TLS" in err.decode()


def test_cluster_mode_without_internode_mtls_does_not_start(tmp_path, pki):
    import subprocess

    config = tmp_path / "node.yaml"
    config.write_text(
        f"node: {{port: {free_port()}}}\nstore: {{kind: sqlite}}\n"
        f"cluster: {{rpc_port: {free_port()}, gossip_keyring_file: {write_keyring(tmp_path)}}}\n"
    )
    done = subprocess.run(
        [hourglass_exe(), "server", "start", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "tls.internode.server.client_ca_files" in done.stderr
    assert "tls.internode.server.require_client_auth" in done.stderr


async def test_a_member_certificate_replaced_on_disk_is_used_for_new_internal_channels(tmp_path, pki):
    import types

    from hourglass.cluster.rpc.client import InternalClient
    from hourglass.cluster.security.tls import InternodeClientTLS

    cert, key = tmp_path / "member.crt", tmp_path / "member.key"
    cert.write_bytes(pki.server.cert.read_bytes())
    key.write_bytes(pki.server.key.read_bytes())
    server = types.SimpleNamespace(cert_file=str(cert), key_file=str(key), client_ca_files=[str(pki.ca)])
    group = types.SimpleNamespace(
        server=server, client=types.SimpleNamespace(root_ca_files=[], server_name=None)
    )
    tls = InternodeClientTLS(group, refresh_interval_s=0.05)
    client = InternalClient(lambda member_id: None, tls)
    first = client.channel("127.0.0.1:1")
    assert client.channel("127.0.0.1:1") is first  # one channel per member, reused

    key.write_bytes(b"half a key")  # a rotation caught halfway: the previous certificate stays in use
    await asyncio.sleep(0.1)
    assert client.channel("127.0.0.1:1") is first and tls.generation == 0
    renewed = pki.issue("renewed", "127.0.0.1")
    key.write_bytes(renewed.key.read_bytes())
    cert.write_bytes(renewed.cert.read_bytes())
    await asyncio.sleep(0.1)
    assert client.channel("127.0.0.1:1") is not first and tls.generation == 1
    assert tls.current().key_pair.cert_chain == renewed.cert.read_bytes()
    await client.close()
