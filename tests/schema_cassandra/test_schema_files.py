"""The shipped CQL schema and the runner's file handling (no database needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hourglass.cluster.schema_cli import schema
from hourglass.schema.migrate_cassandra import (
    SchemaError,
    default_schema_dir,
    load_cql_versions,
    split_cql,
    validate_keyspace_name,
)
from hourglass.schema.migrate_sqlite import default_schema_dir as sqlite_schema_dir
from hourglass.schema.migrate_sqlite import load_schema_versions as load_sqlite_versions


def test_shipped_versions_are_contiguous_from_1() -> None:
    versions = load_cql_versions()
    assert [v.version for v in versions] == list(range(1, len(versions) + 1))
    assert all(v.min_compatible_version <= v.version for v in versions)


def test_shipped_statements_are_idempotent_and_keyspace_free() -> None:
    """Re-running a version must be harmless, and the tool picks the keyspace."""
    for version in load_cql_versions():
        for statement in version.statements:
            head = " ".join(statement.split()[:6]).upper()
            # ALTER TABLE ... ADD is safe to repeat too: the runner takes an existing column as added.
            adds_a_column = head.startswith("ALTER TABLE") and head.split()[3] == "ADD"
            assert adds_a_column or head.startswith(
                ("CREATE TABLE IF NOT EXISTS", "CREATE CUSTOM INDEX IF NOT EXISTS")
            ), statement
            assert "." not in statement.split("(")[0], f"statement names a keyspace: {statement[:80]}"


def test_visibility_filters_have_storage_attached_indexes() -> None:
    statements = " ".join(load_cql_versions()[0].statements)
    for column in ("status", "workflow_type", "start_time_ms", "close_time_ms"):
        assert f"ON visibility ({column}) USING 'StorageAttachedIndex'" in " ".join(statements.split())


def test_split_cql_handles_comments_and_literals() -> None:
    script = """
    -- a comment; with a semicolon
    CREATE TABLE a (id text PRIMARY KEY); // another; one
    /* block;
       comment */ INSERT INTO a (id) VALUES ('x;--y''z');
    INSERT INTO a (id) VALUES ($$dollar;quoted$$);
    """
    assert split_cql(script) == [
        "CREATE TABLE a (id text PRIMARY KEY)",
        "INSERT INTO a (id) VALUES ('x;--y''z')",
        "INSERT INTO a (id) VALUES ($$dollar;quoted$$)",
    ]


def test_split_cql_rejects_an_unterminated_statement() -> None:
    with pytest.raises(SchemaError, match="terminating semicolon"):
        split_cql("CREATE TABLE a (id text PRIMARY KEY); SELECT * FROM a")


def test_versions_are_ordered_numerically(tmp_path: Path) -> None:
    for number in (10, 2, 1):
        directory = tmp_path / f"v{number}"
        directory.mkdir()
        (directory / "s.cql").write_text(f"CREATE TABLE IF NOT EXISTS t{number} (id int PRIMARY KEY);")
        (directory / "manifest.yaml").write_text(
            f"version: {number}\nmin_compatible_version: 1\ndescription: v{number}\nfiles: [s.cql]\n"
        )
    assert [v.version for v in load_cql_versions(tmp_path)] == [1, 2, 10]


def test_a_manifest_naming_the_wrong_version_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "v3").mkdir()
    (tmp_path / "v3" / "manifest.yaml").write_text("version: 4\nmin_compatible_version: 1\nfiles: [a.cql]\n")
    with pytest.raises(SchemaError, match="expected 3"):
        load_cql_versions(tmp_path)


@pytest.mark.parametrize("name", ["1abc", "a-b", "x" * 49, "", "ks; DROP"])
def test_keyspace_names_are_validated(name: str) -> None:
    with pytest.raises(SchemaError):
        validate_keyspace_name(name)


def test_shipped_schema_dir_is_the_package_one() -> None:
    assert (default_schema_dir() / "v1" / "manifest.yaml").is_file()


def test_astra_needs_a_token(tmp_path: Path) -> None:
    bundle = tmp_path / "secure-connect.zip"
    bundle.write_bytes(b"not really a bundle")
    result = CliRunner(env={"HOURGLASS_ASTRA_TOKEN": None}).invoke(
        schema, ["setup", "--secure-connect-bundle", str(bundle)]
    )
    assert result.exit_code == 2
    assert "--secure-connect-bundle needs --token" in result.output


SQLITE_LATEST = load_sqlite_versions(sqlite_schema_dir())[-1].version


def test_sqlite_setup_update_and_version(tmp_path: Path) -> None:
    db = str(tmp_path / "hourglass.db")
    runner = CliRunner()
    missing = runner.invoke(schema, ["update", "--store", "sqlite", "--db-filename", db])
    assert missing.exit_code == 1 and "schema setup --store sqlite" in missing.output

    created = runner.invoke(schema, ["setup", "--store", "sqlite", "--db-filename", db])
    assert created.exit_code == 0 and f"is at schema version {SQLITE_LATEST} (was 0)" in created.output
    again = runner.invoke(schema, ["update", "--store", "sqlite", "--db-filename", db])
    assert (
        again.exit_code == 0 and f"already at schema version {SQLITE_LATEST}; nothing to do" in again.output
    )
    version = runner.invoke(schema, ["version", "--store", "sqlite", "--db-filename", db])
    assert version.output.splitlines()[0].startswith(
        f"{db}: schema version {SQLITE_LATEST} (minimum compatible"
    )
    assert version.output.splitlines()[-1] == "status: up to date"


def test_sqlite_newer_database_is_refused(tmp_path: Path) -> None:
    import sqlite3

    db = str(tmp_path / "hourglass.db")
    runner = CliRunner()
    assert runner.invoke(schema, ["setup", "--store", "sqlite", "--db-filename", db]).exit_code == 0
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schema_version SET curr_version = 42")
    refused = runner.invoke(schema, ["update", "--store", "sqlite", "--db-filename", db])
    assert refused.exit_code == 1
    assert (
        f"schema is at version 42, newer than the newest this code knows ({SQLITE_LATEST})" in refused.output
    )


def test_sqlite_needs_a_file_name() -> None:
    result = CliRunner().invoke(schema, ["setup", "--store", "sqlite"])
    assert result.exit_code == 2 and "--db-filename" in result.output
