"""The SQLite migration runner: versions applied in order, once, atomically; newer databases refused."""

from __future__ import annotations

import shutil
import sqlite3
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hourglass.persistence.records import ClusterMetadata
from hourglass.persistence.sqlite.store import SQLiteStore
from hourglass.schema.migrate_sqlite import (
    SchemaError,
    SchemaVersionTooNewError,
    apply_sqlite_schema,
    default_schema_dir,
    load_schema_versions,
    split_statements,
)

SHIPPED = load_schema_versions(default_schema_dir())
LATEST = SHIPPED[-1].version


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    yield connection
    connection.close()


def versions(conn: sqlite3.Connection) -> tuple[int, int]:
    return conn.execute("SELECT curr_version, min_compatible_version FROM schema_version").fetchone()


def history(conn: sqlite3.Connection) -> list[tuple[int, int]]:
    return conn.execute("SELECT old_version, new_version FROM schema_update_history ORDER BY id").fetchall()


def tables(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def write_version(
    root: Path, n: int, sql: str, min_compatible: int = 1, manifest_version: int | None = None
) -> None:
    directory = root / f"v{n}"
    directory.mkdir(parents=True)
    (directory / "schema.sql").write_text(textwrap.dedent(sql))
    (directory / "manifest.yaml").write_text(
        f"version: {n if manifest_version is None else manifest_version}\n"
        f"min_compatible_version: {min_compatible}\n"
        f"description: version {n}\n"
        "files:\n  - schema.sql\n"
    )


def test_shipped_versions_are_numbered_from_one() -> None:
    assert [v.version for v in SHIPPED] == list(range(1, LATEST + 1))


def test_fresh_database_gets_the_latest_version(conn: sqlite3.Connection) -> None:
    assert apply_sqlite_schema(conn) == LATEST
    assert versions(conn) == (LATEST, SHIPPED[-1].min_compatible_version)
    assert history(conn) == [(n - 1, n) for n in range(1, LATEST + 1)]
    assert {"shards", "executions", "history_node", "namespaces", "visibility"} <= tables(conn)


def test_rerunning_is_a_no_op(conn: sqlite3.Connection) -> None:
    apply_sqlite_schema(conn)
    conn.execute("INSERT INTO namespaces (id, name, data) VALUES ('id', 'default', x'00')")
    assert apply_sqlite_schema(conn) == LATEST
    assert history(conn) == [(n - 1, n) for n in range(1, LATEST + 1)]
    assert conn.execute("SELECT name FROM namespaces").fetchall() == [("default",)]


def test_a_database_from_newer_code_is_refused(conn: sqlite3.Connection) -> None:
    apply_sqlite_schema(conn)
    conn.execute("UPDATE schema_version SET curr_version = ?", (LATEST + 1,))
    with pytest.raises(
        SchemaVersionTooNewError, match=f"version {LATEST + 1}.*newest this code knows \\({LATEST}\\)"
    ):
        apply_sqlite_schema(conn)


def test_versions_apply_in_numeric_order(conn: sqlite3.Connection, tmp_path: Path) -> None:
    write_version(tmp_path, 1, "CREATE TABLE t (a INTEGER);")
    write_version(tmp_path, 2, "ALTER TABLE t ADD COLUMN b INTEGER;")
    write_version(
        tmp_path, 10, "ALTER TABLE t ADD COLUMN c INTEGER; INSERT INTO t VALUES (1, 2, 3);", min_compatible=2
    )
    assert apply_sqlite_schema(conn, tmp_path) == 10
    assert versions(conn) == (10, 2)
    assert history(conn) == [(0, 1), (1, 2), (2, 10)]
    assert conn.execute("SELECT a, b, c FROM t").fetchall() == [(1, 2, 3)]


def test_only_missing_versions_are_applied(conn: sqlite3.Connection, tmp_path: Path) -> None:
    write_version(tmp_path, 1, "CREATE TABLE t (a INTEGER);")
    apply_sqlite_schema(conn, tmp_path)
    write_version(tmp_path, 2, "CREATE TABLE u (a INTEGER);")
    assert apply_sqlite_schema(conn, tmp_path) == 2
    assert history(conn) == [(0, 1), (1, 2)]


def test_a_failing_version_is_rolled_back_whole(conn: sqlite3.Connection, tmp_path: Path) -> None:
    write_version(tmp_path, 1, "CREATE TABLE t (a INTEGER);")
    write_version(tmp_path, 2, "CREATE TABLE u (a INTEGER); INSERT INTO missing VALUES (1);")
    with pytest.raises(sqlite3.OperationalError):
        apply_sqlite_schema(conn, tmp_path)
    assert versions(conn)[0] == 1
    assert history(conn) == [(0, 1)]
    assert "u" not in tables(conn)
    assert not conn.in_transaction


def test_manifest_must_match_its_directory(conn: sqlite3.Connection, tmp_path: Path) -> None:
    write_version(tmp_path, 1, "CREATE TABLE t (a INTEGER);", manifest_version=2)
    with pytest.raises(SchemaError, match="v1/manifest.yaml says version 2"):
        apply_sqlite_schema(conn, tmp_path)


def test_statements_split_where_sqlite_says_they_end() -> None:
    script = """
        -- a comment; with a semicolon
        CREATE TABLE t (a TEXT DEFAULT 'x;y');
        CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = 'z'; END;
        /* trailing */
    """
    statements = split_statements(script)
    assert len(statements) == 2
    assert statements[0].endswith("DEFAULT 'x;y');")
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")


def test_an_unterminated_statement_is_an_error() -> None:
    with pytest.raises(SchemaError, match="incomplete SQL statement"):
        split_statements("CREATE TABLE t (a INTEGER); CREATE TABLE u (a INTEGER")


async def test_a_database_from_before_the_task_token_secret_gets_one_on_first_start(tmp_path: Path) -> None:
    """Schema v4: a v3 database keeps its metadata, and the first node to start records its secret."""
    path = tmp_path / "old.db"
    up_to_v3 = tmp_path / "schema"
    for n in (1, 2, 3):
        shutil.copytree(str(default_schema_dir() / f"v{n}"), up_to_v3 / f"v{n}")
    old = sqlite3.connect(path, isolation_level=None)
    assert apply_sqlite_schema(old, up_to_v3) == 3
    old.execute("INSERT INTO cluster_metadata (id, cluster_name, history_shard_count) VALUES (1, 'dev', 4)")
    old.close()

    store = await SQLiteStore.open(str(path))
    try:
        first = await store.init_cluster_metadata(ClusterMetadata("dev", 4, b"\x01" * 32))
        assert first == ClusterMetadata("dev", 4, b"\x01" * 32)
        assert (await store.init_cluster_metadata(ClusterMetadata("dev", 4, b"\x02" * 32))) == first
    finally:
        await store.close()
