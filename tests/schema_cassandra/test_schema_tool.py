"""`hourglass schema setup|update|version` against a real Cassandra: keyspaces, versions, refusals."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hourglass.persistence.cassandra.config import CassandraConfig
from hourglass.persistence.cassandra.store import CassandraStore
from hourglass.persistence.records import ClusterMetadata
from hourglass.schema.migrate_cassandra import (
    SchemaVersionTooNewError,
    SchemaVersionTooOldError,
    check_schema_version,
    create_keyspace,
    default_schema_dir,
    latest_version,
)

from .conftest import RunSchema, ok

if TYPE_CHECKING:
    from cassandra.cluster import Session

SHIPPED_LATEST = latest_version()
V1_TABLES = {
    "executions",
    "history_node",
    "tasks",
    "namespaces",
    "cluster_metadata",
    "visibility",
    "visibility_days",
    "visibility_by_run",
    "search_attributes",
    "schema_version",
    "schema_update_history",
}
# Tables later versions add (v6: UpdateTaskQueueConfig's settings, v7: the Nexus endpoint registry,
# v8: worker deployments).
SHIPPED_TABLES = V1_TABLES | {"task_queue_configs", "nexus_endpoints", "worker_deployments"}
SAI_INDEXES = {
    "visibility_status_idx",
    "visibility_workflow_type_idx",
    "visibility_start_time_idx",
    "visibility_close_time_idx",
}


def tables(admin: Session, keyspace: str) -> set[str]:
    rows = admin.execute("SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,))
    return {row["table_name"] for row in rows}


def columns(admin: Session, keyspace: str, table: str) -> set[str]:
    rows = admin.execute(
        "SELECT column_name FROM system_schema.columns WHERE keyspace_name = %s AND table_name = %s",
        (keyspace, table),
    )
    return {row["column_name"] for row in rows}


def versions(admin: Session, keyspace: str) -> tuple[int, int]:
    row = admin.execute(
        f"SELECT curr_version, min_compatible_version FROM {keyspace}.schema_version WHERE keyspace_name = %s",
        (keyspace,),
    ).one()
    return row["curr_version"], row["min_compatible_version"]


def history(admin: Session, keyspace: str) -> list[tuple[int, int]]:
    rows = list(
        admin.execute(f"SELECT update_time, old_version, new_version FROM {keyspace}.schema_update_history")
    )
    rows.sort(key=lambda r: (r["new_version"], r["update_time"].time))
    return [(r["old_version"], r["new_version"]) for r in rows]


def replication(admin: Session, keyspace: str) -> dict[str, str]:
    row = admin.execute(
        "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", (keyspace,)
    ).one()
    return dict(row["replication"])


# ---- setup ---------------------------------------------------------------------------------------------


def test_setup_on_an_empty_keyspace_creates_keyspace_and_tables(
    admin: Session, shipped_keyspace: tuple[str, str]
) -> None:
    keyspace, output = shipped_keyspace
    assert f"created keyspace {keyspace!r} (SimpleStrategy, replication factor 1)" in output
    assert f"is at schema version {SHIPPED_LATEST}" in output
    assert replication(admin, keyspace)["replication_factor"] == "1"
    assert tables(admin, keyspace) == SHIPPED_TABLES
    indexes = admin.execute(
        "SELECT index_name, options FROM system_schema.indexes WHERE keyspace_name = %s", (keyspace,)
    )
    sai = {
        row["index_name"] for row in indexes if "StorageAttachedIndex" in row["options"].get("class_name", "")
    }
    assert sai == SAI_INDEXES


def test_setup_records_version_and_history(admin: Session, shipped_keyspace: tuple[str, str]) -> None:
    keyspace, _ = shipped_keyspace
    assert versions(admin, keyspace) == (SHIPPED_LATEST, 1)
    assert history(admin, keyspace) == [(v - 1, v) for v in range(1, SHIPPED_LATEST + 1)]


def test_rerunning_setup_and_update_changes_nothing(
    admin: Session, run_schema: RunSchema, shipped_keyspace: tuple[str, str]
) -> None:
    keyspace, _ = shipped_keyspace
    for command in ("setup", "update"):
        output = ok(run_schema(command, "--keyspace", keyspace))
        assert f"already at schema version {SHIPPED_LATEST}; nothing to do" in output
    assert "exists; its replication is left as it is" in ok(run_schema("setup", "--keyspace", keyspace))
    assert versions(admin, keyspace) == (SHIPPED_LATEST, 1)
    assert history(admin, keyspace) == [(v - 1, v) for v in range(1, SHIPPED_LATEST + 1)]


def test_version_prints_the_keyspace_version_and_the_latest_known(
    run_schema: RunSchema, shipped_keyspace: tuple[str, str]
) -> None:
    keyspace, _ = shipped_keyspace
    output = ok(run_schema("version", "--keyspace", keyspace))
    assert output.splitlines() == [
        f"keyspace {keyspace!r}: schema version {SHIPPED_LATEST} (minimum compatible version 1)",
        f"latest schema version known to this Hourglass: {SHIPPED_LATEST}",
        "status: up to date",
    ]


def test_store_connects_to_a_keyspace_at_the_latest_version(
    cassandra: CassandraConfig, shipped_keyspace: tuple[str, str]
) -> None:
    store = CassandraStore.connect_blocking(replace(cassandra, keyspace=shipped_keyspace[0]))
    store.close_blocking()


def test_a_keyspace_behind_the_code_is_refused_with_the_fixing_command(
    admin: Session, shipped_keyspace: tuple[str, str], schema_v1_v2_v10: Path
) -> None:
    keyspace, _ = shipped_keyspace
    with pytest.raises(SchemaVersionTooOldError, match=f"hourglass schema update --keyspace {keyspace}"):
        check_schema_version(admin, keyspace, schema_v1_v2_v10)


def test_setup_with_a_datacenter_uses_network_topology_strategy(
    admin: Session, new_keyspace: Callable[[], str]
) -> None:
    keyspace = new_keyspace()
    datacenter = admin.execute("SELECT data_center FROM system.local").one()["data_center"]
    assert create_keyspace(admin, keyspace, replication_factor=1, datacenter=datacenter)
    assert replication(admin, keyspace) == {
        "class": "org.apache.cassandra.locator.NetworkTopologyStrategy",
        datacenter: "1",
    }
    assert not create_keyspace(admin, keyspace, replication_factor=1, datacenter=datacenter)


# ---- update --------------------------------------------------------------------------------------------


def test_update_applies_missing_versions_in_numeric_order(
    admin: Session, run_schema: RunSchema, new_keyspace: Callable[[], str], schema_v1_v2_v10: Path
) -> None:
    keyspace = new_keyspace()
    # Set up at version 1 only (the shipped schema may be further along than the fixture's v1).
    v1_only = schema_v1_v2_v10.parent / "v1-only"
    shutil.copytree(schema_v1_v2_v10 / "v1", v1_only / "v1")
    ok(run_schema("setup", "--keyspace", keyspace, "--schema-dir", str(v1_only)))
    output = ok(run_schema("update", "--keyspace", keyspace, "--schema-dir", str(schema_v1_v2_v10)))
    assert [line.split(":")[0] for line in output.splitlines() if line.startswith("applying")] == [
        "applying schema version 2",
        "applying schema version 10",
    ]
    assert versions(admin, keyspace) == (10, 10)
    assert history(admin, keyspace) == [(0, 1), (1, 2), (2, 10)]
    assert "note" in columns(admin, keyspace, "fixture_v2")
    assert "fixture_v10_column" in columns(admin, keyspace, "executions")

    again = ok(run_schema("update", "--keyspace", keyspace, "--schema-dir", str(schema_v1_v2_v10)))
    assert "already at schema version 10; nothing to do" in again
    assert history(admin, keyspace) == [(0, 1), (1, 2), (2, 10)]

    # This Hourglass (which knows only the shipped versions) must now refuse the keyspace.
    version = ok(run_schema("version", "--keyspace", keyspace))
    assert "schema version 10 (minimum compatible version 10)" in version
    assert "newer than this Hourglass; upgrade Hourglass to use it" in version
    refused = run_schema("update", "--keyspace", keyspace)
    assert refused.exit_code != 0
    assert f"schema version 10, newer than the newest this code knows ({SHIPPED_LATEST})" in refused.output
    with pytest.raises(SchemaVersionTooNewError):
        check_schema_version(admin, keyspace)


def test_update_finishes_a_run_that_died_half_way(
    admin: Session, run_schema: RunSchema, new_keyspace: Callable[[], str], tmp_path: Path
) -> None:
    """Statements of a version that already ran (tables created, columns added) are taken as done."""
    schema_dir = _tiny_schema(tmp_path)
    keyspace = new_keyspace()
    ok(run_schema("setup", "--keyspace", keyspace, "--schema-dir", str(schema_dir / "only_v1")))
    # v2 "half applied": its table exists and its ALTER already added the column, but no version bump.
    admin.execute(f"CREATE TABLE {keyspace}.second (id text PRIMARY KEY)")
    admin.execute(f"ALTER TABLE {keyspace}.first ADD extra text")

    output = ok(run_schema("update", "--keyspace", keyspace, "--schema-dir", str(schema_dir / "v1_v2")))
    assert "is at schema version 2" in output
    assert versions(admin, keyspace) == (2, 1)
    assert history(admin, keyspace) == [(0, 1), (1, 2)]
    assert "extra" in columns(admin, keyspace, "first")


def test_update_of_a_missing_keyspace_says_to_run_setup(
    run_schema: RunSchema, new_keyspace: Callable[[], str]
) -> None:
    result = run_schema("update", "--keyspace", new_keyspace())
    assert result.exit_code == 1
    assert "does not exist; create it with `hourglass schema setup" in result.output


def test_update_to_v3_gives_an_existing_cluster_a_task_token_secret(
    admin: Session,
    run_schema: RunSchema,
    new_keyspace: Callable[[], str],
    cassandra: CassandraConfig,
    tmp_path: Path,
) -> None:
    """A keyspace of a cluster created at version 2 keeps its metadata; the first node to start on the
    updated keyspace records the task-token secret every node then reads."""
    keyspace = new_keyspace()
    up_to_v2 = tmp_path / "up-to-v2"
    for version in ("v1", "v2"):
        shutil.copytree(str(default_schema_dir() / version), up_to_v2 / version)
    ok(run_schema("setup", "--keyspace", keyspace, "--schema-dir", str(up_to_v2)))
    assert "task_token_secret" not in columns(admin, keyspace, "cluster_metadata")
    admin.execute(
        f"INSERT INTO {keyspace}.cluster_metadata (metadata_partition, cluster_name, history_shard_count) "
        "VALUES (0, 'prod', 8)"
    )

    output = ok(run_schema("update", "--keyspace", keyspace))
    assert "applying schema version 3" in output
    assert "task_token_secret" in columns(admin, keyspace, "cluster_metadata")
    store = CassandraStore.connect_blocking(replace(cassandra, keyspace=keyspace))
    try:
        first = asyncio.run(store.init_cluster_metadata(ClusterMetadata("prod", 8, b"\x01" * 32)))
        again = asyncio.run(store.init_cluster_metadata(ClusterMetadata("prod", 8, b"\x02" * 32)))
    finally:
        store.close_blocking()
    assert first == again == ClusterMetadata("prod", 8, b"\x01" * 32)


# ---- refusal -------------------------------------------------------------------------------------------


def test_setup_refuses_a_keyspace_newer_than_the_code_and_touches_nothing(
    admin: Session, run_schema: RunSchema, new_keyspace: Callable[[], str]
) -> None:
    keyspace = new_keyspace()
    create_keyspace(admin, keyspace, replication_factor=1)
    admin.execute(
        f"CREATE TABLE {keyspace}.schema_version (keyspace_name text PRIMARY KEY, curr_version int, "
        "min_compatible_version int, creation_time timestamp)"
    )
    admin.execute(
        f"INSERT INTO {keyspace}.schema_version (keyspace_name, curr_version, min_compatible_version) "
        "VALUES (%s, 99, 99)",
        (keyspace,),
    )
    for command in ("setup", "update"):
        result = run_schema(command, "--keyspace", keyspace)
        assert result.exit_code == 1, result.output
        assert (
            f"keyspace {keyspace!r} is at schema version 99, newer than the newest this code knows "
            f"({SHIPPED_LATEST}); upgrade Hourglass" in result.output
        )
    assert tables(admin, keyspace) == {"schema_version"}
    with pytest.raises(SchemaVersionTooNewError):
        CassandraStore.connect_blocking(CassandraConfig(hosts=_hosts(admin), keyspace=keyspace))


def test_store_refuses_a_keyspace_without_schema(admin: Session, new_keyspace: Callable[[], str]) -> None:
    keyspace = new_keyspace()
    create_keyspace(admin, keyspace, replication_factor=1)
    with pytest.raises(SchemaVersionTooOldError, match="hourglass schema setup"):
        CassandraStore.connect_blocking(CassandraConfig(hosts=_hosts(admin), keyspace=keyspace))


def _hosts(admin: Session) -> list[str]:
    return [str(host.address) for host in admin.cluster.metadata.all_hosts()]


def _tiny_schema(tmp_path: Path) -> Path:
    """Two small schema trees: only_v1/ (v1) and v1_v2/ (v1 + v2), cheap to apply."""
    files = {
        "v1": ("CREATE TABLE IF NOT EXISTS first (id text PRIMARY KEY, value blob);", 1),
        "v2": (
            "CREATE TABLE IF NOT EXISTS second (id text PRIMARY KEY);\nALTER TABLE first ADD extra text;",
            1,
        ),
    }
    for tree, names in (("only_v1", ["v1"]), ("v1_v2", ["v1", "v2"])):
        for name in names:
            cql, min_compatible = files[name]
            directory = tmp_path / tree / name
            directory.mkdir(parents=True)
            (directory / "schema.cql").write_text(cql)
            (directory / "manifest.yaml").write_text(
                f"version: {name[1:]}\nmin_compatible_version: {min_compatible}\n"
                f"description: tiny {name}\nfiles: [schema.cql]\n"
            )
    return tmp_path
