"""Fixtures for the end-to-end compatibility suite.

`HOURGLASS_COMPAT_TARGET=hourglass` (default) runs every test against `hourglass server start-dev`;
`HOURGLASS_COMPAT_TARGET=reference` runs them against the reference `temporal server start-dev`, which
is how the suite itself is proven. `HOURGLASS_COMPAT_REFERENCE_PERSIST=1` gives the reference a database
file so that the restart (durability) tests can be proven against it too.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client

from . import servers
from .servers import REFERENCE, ServerProcess, compat_target

# Every server this session started, so a failing test report can show their log tails.
_STARTED: list[ServerProcess] = []

DEFAULT_TEST_TIMEOUT_S = 60


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if (
            "tests/compat" in str(item.path).replace(os.sep, "/")
            and item.get_closest_marker("timeout") is None
        ):
            item.add_marker(pytest.mark.timeout(DEFAULT_TEST_TIMEOUT_S))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for srv in _STARTED:
            report.sections.append((f"{srv.kind} server log tail ({srv.log_file})", srv.log_tail()))


def _persist_reference() -> bool:
    return os.environ.get("HOURGLASS_COMPAT_REFERENCE_PERSIST", "") not in ("", "0", "false", "no")


async def _start(srv: ServerProcess) -> ServerProcess:
    _STARTED.append(srv)
    await srv.start()
    return srv


@pytest.fixture(scope="session")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    """The server under test (HOURGLASS_COMPAT_TARGET): `.address`, `.kind`, `.kill9()`, `.restart()`."""
    target = compat_target()
    workdir = tmp_path_factory.mktemp(f"compat-{target}")
    if target == REFERENCE:
        srv = servers.reference_server(workdir, persist=_persist_reference())
    elif target == servers.HOURGLASS_CASSANDRA:
        from hourglass.persistence.cassandra import testing as cassandra

        cluster = cassandra.acquire()  # starts the dev Cassandra from the Maven jars if none is running
        request_release = cassandra.release
        srv = servers.hourglass_cassandra_server(workdir, cluster.hosts, cluster.port)
    else:
        srv = servers.hourglass_server(workdir)
    try:
        yield await _start(srv)
    finally:
        srv.stop()
        if target == servers.HOURGLASS_CASSANDRA:
            request_release()


@pytest.fixture(scope="session")
async def reference_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    """Always the reference server (for differential tests); the same process when it is the target."""
    if compat_target() == REFERENCE:
        yield request.getfixturevalue("server")
        return
    srv = servers.reference_server(tmp_path_factory.mktemp("compat-reference"))
    try:
        yield await _start(srv)
    finally:
        srv.stop()


@pytest.fixture
def restartable_server(server: ServerProcess) -> ServerProcess:
    if not server.can_restart:
        pytest.skip(
            "restart tests need a server that keeps state in a file: they run on Hourglass "
            "(the in-memory reference loses everything on kill -9; set HOURGLASS_COMPAT_REFERENCE_PERSIST=1 "
            "to prove them against a file-backed reference)"
        )
    return server


def _assert_alive(srv: ServerProcess) -> None:
    """A server that died earlier in the session fails every later test with its exit code and log."""
    if srv.proc is not None and srv.proc.poll() is not None:
        pytest.fail(
            f"the {srv.kind} server (shared by the whole session) has exited with code {srv.proc.returncode}; "
            f"the first failing test before this one probably killed it\n--- {srv.log_file} ---\n{srv.log_tail()}",
            pytrace=False,
        )


@pytest.fixture
async def client(server: ServerProcess) -> Client:
    _assert_alive(server)
    return await Client.connect(server.address, namespace="default")


@pytest.fixture
async def reference_client(reference_server: ServerProcess) -> Client:
    _assert_alive(reference_server)
    return await Client.connect(reference_server.address, namespace="default")
