"""Fixtures of the schema tool tests: a real Cassandra, keyspaces of their own, and the CLI in-process.

Cassandra comes from HOURGLASS_CASSANDRA_HOSTS, else the development node (tools/cassandra/devserver.py),
started if needed (see hourglass.persistence.cassandra.testing); HOURGLASS_SKIP_CASSANDRA=1 skips.
Every keyspace a test creates is dropped at the end of the session.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner, Result

from hourglass.cluster.schema_cli import schema
from hourglass.persistence.cassandra.config import CassandraConfig
from hourglass.schema.migrate_cassandra import default_schema_dir

if TYPE_CHECKING:
    from cassandra.cluster import Session

FIXTURES = Path(__file__).parent / "fixtures"

RunSchema = Callable[..., Result]


@pytest.fixture(scope="session")
def cassandra() -> Iterator[CassandraConfig]:
    from hourglass.persistence.cassandra import testing

    if testing.skip_requested():
        pytest.skip(f"{testing.SKIP_ENV} is set")
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    config = testing.acquire()
    try:
        yield config
    finally:
        testing.release()


@pytest.fixture(scope="session")
def admin(cassandra: CassandraConfig) -> Iterator[Session]:
    """A plain driver session (no keyspace, rows as dicts) for checking what the tool did."""
    from hourglass.persistence.cassandra.config import build_cluster

    cluster = build_cluster(cassandra)  # rows as dicts, LOCAL_QUORUM, like the tool and the store
    session = cluster.connect()
    try:
        yield session
    finally:
        cluster.shutdown()


@pytest.fixture(scope="session")
def created_keyspaces(admin: Session) -> Iterator[list[str]]:
    """Keyspaces the tests made; dropped at the end of the session."""
    from hourglass.persistence.cassandra import testing

    names: list[str] = []
    yield names
    for keyspace in names:
        with contextlib.suppress(Exception):
            testing.drop_keyspace(admin, keyspace)


@pytest.fixture
def new_keyspace(created_keyspaces: list[str]) -> Callable[[], str]:
    """Names for keyspaces that do not exist yet (dropped at the end of the session)."""
    from hourglass.persistence.cassandra import testing

    def make() -> str:
        name = testing.new_keyspace_name("hg_schema")
        created_keyspaces.append(name)
        return name

    return make


@pytest.fixture(scope="session")
def run_schema(cassandra: CassandraConfig) -> RunSchema:
    """`hourglass schema <args>` in-process against the test Cassandra; returns click's Result."""

    def run(*args: str, hosts: bool = True) -> Result:
        argv = (
            [*args, "--hosts", ",".join(cassandra.hosts), "--port", str(cassandra.port)]
            if hosts
            else list(args)
        )
        return CliRunner().invoke(schema, argv, catch_exceptions=False)

    return run


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="session")
def shipped_keyspace(run_schema: RunSchema, created_keyspaces: list[str]) -> tuple[str, str]:
    """One keyspace set up from nothing by `hourglass schema setup`, shared by the tests that only read it
    (or put back what they change): (name, output of setup)."""
    from hourglass.persistence.cassandra import testing

    keyspace = testing.new_keyspace_name("hg_schema")
    created_keyspaces.append(keyspace)
    return keyspace, ok(run_schema("setup", "--keyspace", keyspace, "--replication-factor", "1"))


@pytest.fixture
def schema_v1_v2_v10(tmp_path: Path) -> Path:
    """The shipped v1 plus the test-only v2 and v10: `update` must apply 2 before 10."""
    root = tmp_path / "schema"
    shutil.copytree(str(default_schema_dir() / "v1"), root / "v1")
    for version in ("v2", "v10"):
        shutil.copytree(FIXTURES / version, root / version)
    return root
