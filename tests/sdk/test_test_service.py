"""The TestService (time-skipping control) as a client calls it: its semantics, its errors, and where it
is served (a time-skipping start-dev or embedded server, behind the authorizer; never elsewhere)."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from datetime import timedelta
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.empty_pb2 import Empty
from temporalio.api.testservice.v1 import (
    LockTimeSkippingRequest,
    SleepRequest,
    SleepUntilRequest,
    UnlockTimeSkippingRequest,
)
from temporalio.api.testservice.v1.service_pb2_grpc import TestServiceStub as TimeSkippingStub

from hourglass.cluster.config import AuthorizationSection
from hourglass.cluster.node import Node, NodeConfig
from hourglass.persistence.sqlite.store import SQLiteStore
from hourglass.sdk.testing import HourglassServer

pytestmark = pytest.mark.timeout(120)
DAY_S = 24 * 3600


async def _now(stub: TimeSkippingStub, **kw) -> float:
    return (await stub.GetCurrentTime(Empty(), timeout=10, **kw)).time.ToMilliseconds() / 1000


def _sleep(seconds: float) -> SleepRequest:
    request = SleepRequest()
    request.duration.FromTimedelta(timedelta(seconds=seconds))
    return request


@pytest.fixture
async def stub():
    async with HourglassServer.start(time_skipping=True) as server:
        async with grpc.aio.insecure_channel(server.target) as channel:
            yield TimeSkippingStub(channel)


async def test_time_follows_the_wall_clock_while_locked(stub):
    before, wall = await _now(stub), time.time()
    assert abs(before - wall) < 5  # a server starts locked, on the wall clock
    started = time.monotonic()
    await stub.Sleep(_sleep(0.5), timeout=10)  # Sleep does not unlock: it waits half a real second
    assert time.monotonic() - started >= 0.45
    assert 0.5 <= await _now(stub) - before < 5


async def test_unlock_with_sleep_skips_and_locks_again(stub):
    before = await _now(stub)
    started = time.monotonic()
    await stub.UnlockTimeSkippingWithSleep(_sleep(DAY_S), timeout=10)
    assert time.monotonic() - started < 5
    assert DAY_S <= await _now(stub) - before < DAY_S + 60
    # Locked again, exactly once: one unlock is balanced, the next is not.
    await stub.UnlockTimeSkipping(UnlockTimeSkippingRequest(), timeout=10)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.UnlockTimeSkipping(UnlockTimeSkippingRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "UnlockTimeSkipping must follow a LockTimeSkipping" in err.value.details()


async def test_unlocked_sleep_until_jumps_to_the_deadline(stub):
    await stub.UnlockTimeSkipping(UnlockTimeSkippingRequest(), timeout=10)
    target = await _now(stub) + 3 * 3600
    request = SleepUntilRequest()
    request.timestamp.FromMilliseconds(int(target * 1000))
    started = time.monotonic()
    await stub.SleepUntil(request, timeout=10)
    assert time.monotonic() - started < 5
    assert target <= await _now(stub) < target + 60
    await stub.LockTimeSkipping(LockTimeSkippingRequest(), timeout=10)
    # Locks are counted: two locks need two unlocks before time skips again.
    await stub.LockTimeSkipping(LockTimeSkippingRequest(), timeout=10)
    await stub.UnlockTimeSkipping(UnlockTimeSkippingRequest(), timeout=10)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(stub.Sleep(_sleep(DAY_S), timeout=10), 1)


async def test_bad_sleeps_are_invalid_arguments(stub):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Sleep(_sleep(-1), timeout=10)
    assert (err.value.code(), err.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "sleep duration must not be negative",
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SleepUntil(SleepUntilRequest(), timeout=10)
    assert (err.value.code(), err.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "SleepUntil needs a timestamp",
    )


async def test_a_wall_clock_server_has_no_test_service(hourglass_server):
    async with grpc.aio.insecure_channel(hourglass_server.target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await TimeSkippingStub(channel).GetCurrentTime(Empty(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_a_cluster_node_refuses_time_skipping():
    node = Node(NodeConfig(port=0, cluster=object(), time_skipping=True), await SQLiteStore.open(None))
    with pytest.raises(ValueError, match="not a cluster node"):
        await node.start()
    await node.store.close()


async def test_the_test_service_sits_behind_the_authorizer(tmp_path: Path):
    key = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "key.pem"
    pem.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )

    def bearer(*permissions: str) -> tuple[tuple[str, str]]:
        now = int(time.time())
        token = jwt.encode(
            {"sub": "t", "iat": now, "exp": now + 600, "permissions": list(permissions)},
            key,
            algorithm="ES256",
        )
        return (("authorization", f"Bearer {token}"),)

    authorization = AuthorizationSection(
        authorizer="default", claim_mapper="default", jwt_key_provider={"key_source_uris": [pem.as_uri()]}
    )
    node = Node(
        NodeConfig(port=0, authorization=authorization, time_skipping=True), await SQLiteStore.open(None)
    )
    await node.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{node.bound_port}") as channel:
            stub = TimeSkippingStub(channel)
            reader, admin = bearer("temporal-system:read"), bearer("temporal-system:admin")
            for metadata in (None, bearer("default:admin"), reader):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.LockTimeSkipping(LockTimeSkippingRequest(), metadata=metadata, timeout=10)
                assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _now(stub)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert abs(await _now(stub, metadata=reader) - time.time()) < 5
            await stub.LockTimeSkipping(LockTimeSkippingRequest(), metadata=admin, timeout=10)
            await stub.UnlockTimeSkipping(UnlockTimeSkippingRequest(), metadata=admin, timeout=10)
    finally:
        await node.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _check_locked_start_dev(stub: TimeSkippingStub) -> None:
    await stub.UnlockTimeSkippingWithSleep(_sleep(7 * DAY_S), timeout=10)
    assert await _now(stub) - time.time() >= 7 * DAY_S - 60


async def _check_unlocked_start_dev(stub: TimeSkippingStub) -> None:
    await stub.Sleep(_sleep(7 * DAY_S), timeout=10)  # unlocked from the start: nothing to wait for
    assert await _now(stub) - time.time() >= 7 * DAY_S - 60
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.UnlockTimeSkipping(UnlockTimeSkippingRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def _check_no_test_service(stub: TimeSkippingStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _now(stub)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize(
    ("flag", "check", "banner"),
    [
        ("--time-skipping", _check_locked_start_dev, "the clock is locked until a client unlocks it"),
        ("--enable-time-skipping", _check_unlocked_start_dev, "the clock is unlocked"),
        ("", _check_no_test_service, None),
    ],
)
async def test_start_dev_serves_it_with_a_flag_only(flag, check, banner):
    exe = str(Path(sys.executable).with_name("hourglass"))
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        exe,
        *("server", "start-dev", "--port", str(port), "--event-loop", "asyncio", *([flag] if flag else [])),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), 60)
            await check(TimeSkippingStub(channel))
    finally:
        proc.terminate()
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, stderr.decode()
    if banner is None:
        assert "Time skipping" not in stderr.decode()
    else:
        assert f"Time skipping: TestService served; {banner}" in stderr.decode()
