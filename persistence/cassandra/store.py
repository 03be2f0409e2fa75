"""The Cassandra / Astra DB store: the Store interface on cassandra-driver, with LWT conditional batches.

Layout (schema/cassandra/v1/): one `executions` table partitioned by shard id holds the shard row, the
execution rows, the current-run pointers and the transfer/timer task rows, so everything a workflow
transition commits is ONE conditional batch in ONE partition (the only kind of conditional batch Cassandra
applies atomically): the shard row `IF range_id = ?` (fencing), each execution row `IF db_record_version
= ?` or `IF NOT EXISTS`, each current-run pointer `IF current_run_id = ?` or `IF NOT EXISTS`, and the new
task rows. When such a batch is not applied, Cassandra returns the current values of every row it checked
a condition on, and `commit` reads from them which condition failed (shard lost vs. which writes are
stale) without another round trip. Task queues keep their lease and backlog in one partition the same way,
and namespaces keep their by-name and by-id rows in one partition so both are claimed atomically.

Every request is asynchronous (aio.execute bridges the driver's callbacks into asyncio), every statement
is prepared once at connect, reads and writes run at the configured consistency (LOCAL_QUORUM) and
conditions at the serial one (LOCAL_SERIAL). Statements are marked idempotent where re-running them is
harmless, and only those are retried by the driver (retry.IdempotentOnlyRetryPolicy). A conditional write
that times out may still have been applied: it is reported as StoreUnavailableError ("outcome unknown"),
never retried.

Timestamps: conditional writes take Paxos ballot timestamps, plain writes the driver's client timestamps.
Rows that conditional writes create are therefore deleted with conditional deletes too (delete_execution),
so a later re-creation is ordered after the delete by Paxos rather than by clocks. Task rows are only ever
range-deleted below an acknowledged bound and never re-created there (task ids only grow), so plain range
deletes are safe for them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import struct
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Any

from cassandra import CoordinationFailure, OperationTimedOut, RequestExecutionException, WriteTimeout
from cassandra.cluster import Cluster, NoHostAvailable, Session
from cassandra.connection import ConnectionException
from cassandra.protocol import IsBootstrappingErrorMessage, OverloadedErrorMessage, ServerError
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from hourglass.persistence.batch_rules import check_batch_is_well_formed, repeated_target_failure
from hourglass.persistence.cassandra import aio
from hourglass.persistence.cassandra.config import CassandraConfig, build_cluster, consistency_level
from hourglass.persistence.cassandra.tls import tls_failure_hint
from hourglass.persistence.cassandra.visibility_reader import VisibilityReader
from hourglass.persistence.errors import (
    ConditionFailedError,
    NamespaceAlreadyExistsError,
    NamespaceNotFoundError,
    PersistenceError,
    ShardOwnershipLostError,
    StoreUnavailableError,
    TaskQueueLeaseLostError,
    UnencodableWriteError,
)
from hourglass.persistence.records import (
    BatchRecord,
    ClusterMetadata,
    CurrentRunMode,
    CurrentRunRecord,
    ExecutionKey,
    ExecutionRecord,
    ExecutionWrite,
    HistoryNode,
    NamespaceRecord,
    NexusEndpointRecord,
    QueueTask,
    RunStatus,
    ScheduleRecord,
    ShardInfo,
    TaskQueueInfo,
    TaskQueueKey,
    TimerTask,
    TransferTask,
    VisibilityRecord,
)
from hourglass.persistence.store import Store
from hourglass.persistence.visibility.model import VisibilityQuery
from hourglass.schema.migrate_cassandra import (
    check_schema_version,
    keyspace_exists,
    read_schema_state,
    validate_keyspace_name,
)

log = logging.getLogger(__name__)

# Row kinds of the `executions` table (its `type` clustering column).
ROW_SHARD = 1
ROW_EXECUTION = 2
ROW_CURRENT_RUN = 3
ROW_TRANSFER_TASK = 4
ROW_TIMER_TASK = 5
ROW_SCHEDULE = 6  # schema version 2
ROW_BATCH = 7  # schema version 5

# Row kinds of the `namespaces` table.
NAMESPACE_BY_NAME = 1
NAMESPACE_BY_ID = 2
NAMESPACES_PARTITION = 0
METADATA_PARTITION = 0

# A group commit's history nodes go in UNLOGGED batches under Cassandra's default warning thresholds
# (append_history_nodes): at most this many partitions and about this many bytes per batch.
HISTORY_BATCH_NODES = 10
HISTORY_BATCH_BYTES = 4096
HISTORY_NODE_OVERHEAD = 96  # keys and columns of a node besides its events
# A visibility upsert's three writes go as one UNLOGGED batch when under HISTORY_BATCH_BYTES with this.
VISIBILITY_ROW_OVERHEAD = 1024
# Runs whose visibility start time the store remembers (upsert_visibility skips reading it).
VISIBILITY_STARTS_CACHED = 50_000
# Remembered instead of a start time for a run this store created: it has no visibility row yet.
_NO_VISIBILITY_ROW = -1

DAY_MS = 86_400_000
# Rows per page when a read has to skip rows (history versions, visibility days).
PAGE_ROWS = 500

# Clustering columns a row kind does not use hold these placeholders (see schema.cql).
_SHARD_ROW = "type = 1 AND namespace_id = '' AND workflow_id = '' AND run_id = '' AND visibility_ts = 0 AND task_id = 0"
_EXECUTION_ROW = (
    "type = 2 AND namespace_id = ? AND workflow_id = ? AND run_id = ? AND visibility_ts = 0 AND task_id = 0"
)
_CURRENT_ROW = (
    "type = 3 AND namespace_id = ? AND workflow_id = ? AND run_id = '' AND visibility_ts = 0 AND task_id = 0"
)
_SCHEDULE_ROW = (
    "type = 6 AND namespace_id = ? AND workflow_id = ? AND run_id = '' AND visibility_ts = 0 AND task_id = 0"
)
_BATCH_ROW = (
    "type = 7 AND namespace_id = ? AND workflow_id = ? AND run_id = '' AND visibility_ts = 0 AND task_id = 0"
)
_TRANSFER_ROWS = "type = 4 AND namespace_id = '' AND workflow_id = '' AND run_id = '' AND visibility_ts = 0"
_TIMER_ROWS = "type = 5 AND namespace_id = '' AND workflow_id = '' AND run_id = ''"
_QUEUE = "namespace_id = ? AND task_queue_name = ? AND task_queue_type = ? AND queue_partition = ?"
_TASK_COLUMNS = "task_namespace_id, task_workflow_id, task_run_id, kind, data"
_QUEUE_TASK_COLUMNS = "task_id, task_namespace_id, workflow_id, run_id, scheduled_event_id, create_time_ms, expiry_time_ms, data"
_CURRENT_COLUMNS = "current_run_id, status, execution_status, create_request_id, start_time_ms, close_time_ms"
_VISIBILITY_COLUMNS = (
    "namespace_id, workflow_id, run_id, workflow_type, task_queue, status, start_time_ms, "
    "execution_time_ms, close_time_ms, history_length, memo, search_attributes, parent_workflow_id, "
    "parent_run_id, root_workflow_id, root_run_id, state_transition_count, history_size_bytes"
)

# Errors that mean "the database did not answer (in time)": for a conditional write, outcome unknown.
_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    NoHostAvailable,
    OperationTimedOut,
    ConnectionException,
    RequestExecutionException,  # Unavailable, Read/WriteTimeout, Read/WriteFailure, CDC write failure
    ServerError,
    OverloadedErrorMessage,
    IsBootstrappingErrorMessage,
)


class _Statements:
    """Every statement the store runs, prepared once per session (idempotent ones marked for retries)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        # ---- cluster metadata
        self.init_metadata = self._conditional(
            "INSERT INTO cluster_metadata (metadata_partition, cluster_name, history_shard_count, "
            "task_token_secret) VALUES (?, ?, ?, ?) IF NOT EXISTS"
        )
        self.init_task_token_secret = self._conditional(
            "UPDATE cluster_metadata SET task_token_secret = ? WHERE metadata_partition = ? "
            "IF task_token_secret = null"
        )
        # ---- shard rows
        self.create_shard = self._conditional(
            "INSERT INTO executions (shard_id, type, namespace_id, workflow_id, run_id, visibility_ts, task_id, "
            "range_id, transfer_ack_level, timer_ack_level_ms) VALUES (?, 1, '', '', '', 0, 0, 0, 0, 0) "
            "IF NOT EXISTS"
        )
        self.update_shard = self._conditional(
            "UPDATE executions SET range_id = ?, transfer_ack_level = ?, timer_ack_level_ms = ? "
            f"WHERE shard_id = ? AND {_SHARD_ROW} IF range_id = ?"
        )
        self.fence_shard = self._conditional(
            f"UPDATE executions SET range_id = ? WHERE shard_id = ? AND {_SHARD_ROW} IF range_id = ?"
        )
        self.read_shard_row = self._idempotent(
            f"SELECT * FROM executions WHERE shard_id = ? AND {_SHARD_ROW}"
        )
        # ---- executions and current-run pointers
        self.get_execution = self._idempotent(
            f"SELECT state, db_record_version FROM executions WHERE shard_id = ? AND {_EXECUTION_ROW}"
        )
        self.read_execution_row = self._idempotent(
            f"SELECT * FROM executions WHERE shard_id = ? AND {_EXECUTION_ROW}"
        )
        self.insert_execution = self._conditional(
            "INSERT INTO executions (shard_id, type, namespace_id, workflow_id, run_id, visibility_ts, task_id, "
            "state, db_record_version) VALUES (?, 2, ?, ?, ?, 0, 0, ?, ?) IF NOT EXISTS"
        )
        self.update_execution = self._conditional(
            "UPDATE executions SET state = ?, db_record_version = ? "
            f"WHERE shard_id = ? AND {_EXECUTION_ROW} IF db_record_version = ?"
        )
        self.delete_execution = self._conditional(
            f"DELETE FROM executions WHERE shard_id = ? AND {_EXECUTION_ROW} IF EXISTS"
        )
        self.get_current = self._idempotent(
            f"SELECT {_CURRENT_COLUMNS} FROM executions WHERE shard_id = ? AND {_CURRENT_ROW}"
        )
        self.read_current_row = self._idempotent(
            f"SELECT * FROM executions WHERE shard_id = ? AND {_CURRENT_ROW}"
        )
        self.insert_current = self._conditional(
            "INSERT INTO executions (shard_id, type, namespace_id, workflow_id, run_id, visibility_ts, task_id, "
            f"{_CURRENT_COLUMNS}) VALUES (?, 3, ?, ?, '', 0, 0, ?, ?, ?, ?, ?, ?) IF NOT EXISTS"
        )
        self.update_current = self._conditional(
            "UPDATE executions SET current_run_id = ?, status = ?, execution_status = ?, create_request_id = ?, "
            f"start_time_ms = ?, close_time_ms = ? WHERE shard_id = ? AND {_CURRENT_ROW} IF current_run_id = ?"
        )
        self.delete_current = self._conditional(
            f"DELETE FROM executions WHERE shard_id = ? AND {_CURRENT_ROW} IF current_run_id = ?"
        )
        # ---- schedules (row kind 6; the schedule id is kept in workflow_id)
        self.get_schedule = self._idempotent(
            f"SELECT state, db_record_version FROM executions WHERE shard_id = ? AND {_SCHEDULE_ROW}"
        )
        self.list_schedules = self._idempotent(
            "SELECT namespace_id, workflow_id, state, db_record_version FROM executions "
            "WHERE shard_id = ? AND type = 6"
        )
        self.list_namespace_schedules = self._idempotent(
            "SELECT namespace_id, workflow_id, state, db_record_version FROM executions "
            "WHERE shard_id = ? AND type = 6 AND namespace_id = ?"
        )
        self.insert_schedule = self._conditional(
            "INSERT INTO executions (shard_id, type, namespace_id, workflow_id, run_id, visibility_ts, task_id, "
            "state, db_record_version) VALUES (?, 6, ?, ?, '', 0, 0, ?, ?) IF NOT EXISTS"
        )
        self.update_schedule = self._conditional(
            "UPDATE executions SET state = ?, db_record_version = ? "
            f"WHERE shard_id = ? AND {_SCHEDULE_ROW} IF db_record_version = ?"
        )
        self.delete_schedule = self._conditional(
            f"DELETE FROM executions WHERE shard_id = ? AND {_SCHEDULE_ROW} IF db_record_version = ?"
        )
        # ---- batch operations (row kind 7; the job id is kept in workflow_id)
        self.get_batch = self._idempotent(
            f"SELECT state, db_record_version FROM executions WHERE shard_id = ? AND {_BATCH_ROW}"
        )
        self.list_batches = self._idempotent(
            "SELECT namespace_id, workflow_id, state, db_record_version FROM executions "
            "WHERE shard_id = ? AND type = 7"
        )
        self.list_namespace_batches = self._idempotent(
            "SELECT namespace_id, workflow_id, state, db_record_version FROM executions "
            "WHERE shard_id = ? AND type = 7 AND namespace_id = ?"
        )
        self.insert_batch = self._conditional(
            "INSERT INTO executions (shard_id, type, namespace_id, workflow_id, run_id, visibility_ts, task_id, "
            "state, db_record_version) VALUES (?, 7, ?, ?, '', 0, 0, ?, ?) IF NOT EXISTS"
        )
        self.update_batch = self._conditional(
            "UPDATE executions SET state = ?, db_record_version = ? "
            f"WHERE shard_id = ? AND {_BATCH_ROW} IF db_record_version = ?"
        )
        # ---- transfer and timer tasks
        self.insert_transfer = self._idempotent(
            "INSERT INTO executions (shard_id, type, namespace_id, workflow_id, run_id, visibility_ts, task_id, "
            f"{_TASK_COLUMNS}) VALUES (?, 4, '', '', '', 0, ?, ?, ?, ?, ?, ?)"
        )
        self.insert_timer = self._idempotent(
            "INSERT INTO executions (shard_id, type, namespace_id, workflow_id, run_id, visibility_ts, task_id, "
            f"{_TASK_COLUMNS}) VALUES (?, 5, '', '', '', ?, ?, ?, ?, ?, ?, ?)"
        )
        self.get_transfer = self._idempotent(
            f"SELECT task_id, {_TASK_COLUMNS} FROM executions "
            f"WHERE shard_id = ? AND {_TRANSFER_ROWS} AND task_id > ? AND task_id <= ? LIMIT ?"
        )
        self.delete_transfer = self._idempotent(
            f"DELETE FROM executions WHERE shard_id = ? AND {_TRANSFER_ROWS} AND task_id <= ?"
        )
        self.get_timers = self._idempotent(
            f"SELECT visibility_ts, task_id, {_TASK_COLUMNS} FROM executions "
            f"WHERE shard_id = ? AND {_TIMER_ROWS} AND visibility_ts >= ? AND visibility_ts < ? LIMIT ?"
        )
        self.delete_timers = self._idempotent(
            f"DELETE FROM executions WHERE shard_id = ? AND {_TIMER_ROWS} AND visibility_ts < ?"
        )
        self.delete_timer = self._idempotent(
            f"DELETE FROM executions WHERE shard_id = ? AND {_TIMER_ROWS} AND visibility_ts = ? AND task_id = ?"
        )
        # ---- history
        self.append_node = self._idempotent(
            "INSERT INTO history_node (namespace_id, workflow_id, run_id, node_id, txn_id, events, last_event_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        self.read_nodes = self._idempotent(
            "SELECT node_id, txn_id, events, last_event_id FROM history_node "
            "WHERE namespace_id = ? AND workflow_id = ? AND run_id = ? AND node_id >= ?"
        )
        self.delete_history = self._idempotent(
            "DELETE FROM history_node WHERE namespace_id = ? AND workflow_id = ? AND run_id = ?"
        )
        # ---- task queues
        self.read_queue = self._idempotent(f"SELECT range_id, ack_level FROM tasks WHERE {_QUEUE} LIMIT 1")
        self.create_queue = self._conditional(
            "INSERT INTO tasks (namespace_id, task_queue_name, task_queue_type, queue_partition, range_id, "
            "ack_level) VALUES (?, ?, ?, ?, ?, 0) IF NOT EXISTS"
        )
        self.fence_queue = self._conditional(f"UPDATE tasks SET range_id = ? WHERE {_QUEUE} IF range_id = ?")
        self.update_queue_ack = self._conditional(
            f"UPDATE tasks SET ack_level = ? WHERE {_QUEUE} IF range_id = ?"
        )
        self.insert_queue_task = self._idempotent(
            "INSERT INTO tasks (namespace_id, task_queue_name, task_queue_type, queue_partition, "
            f"{_QUEUE_TASK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self.get_queue_tasks = self._idempotent(
            f"SELECT {_QUEUE_TASK_COLUMNS} FROM tasks WHERE {_QUEUE} AND task_id > ? LIMIT ?"
        )
        self.delete_queue_tasks = self._idempotent(f"DELETE FROM tasks WHERE {_QUEUE} AND task_id <= ?")
        self.list_queues = self._idempotent(
            "SELECT DISTINCT namespace_id, task_queue_name, task_queue_type, queue_partition, range_id, "
            "ack_level FROM tasks"
        )
        # ---- namespaces
        self.insert_namespace = self._conditional(
            "INSERT INTO namespaces (namespaces_partition, kind, key, id, name, data, notification_version) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS"
        )
        self.get_namespace = self._idempotent(
            "SELECT id, name, data, notification_version FROM namespaces "
            "WHERE namespaces_partition = ? AND kind = ? AND key = ?"
        )
        self.list_namespaces = self._idempotent(
            "SELECT id, name, data, notification_version FROM namespaces "
            "WHERE namespaces_partition = ? AND kind = 1"
        )
        self.update_namespace_if_version = self._conditional(
            "UPDATE namespaces SET id = ?, name = ?, data = ?, notification_version = ? "
            "WHERE namespaces_partition = ? AND kind = ? AND key = ? IF notification_version = ?"
        )
        self.update_namespace_if_id = self._conditional(
            "UPDATE namespaces SET id = ?, name = ?, data = ?, notification_version = ? "
            "WHERE namespaces_partition = ? AND kind = ? AND key = ? IF id = ?"
        )
        self.delete_namespace_if_id = self._conditional(
            "DELETE FROM namespaces WHERE namespaces_partition = ? AND kind = ? AND key = ? IF id = ?"
        )
        self.delete_namespace_if_version = self._conditional(
            "DELETE FROM namespaces WHERE namespaces_partition = ? AND kind = ? AND key = ? "
            "IF notification_version = ?"
        )
        # ---- task queue configuration
        self.get_tq_config = self._idempotent(
            "SELECT config, version FROM task_queue_configs WHERE namespace_id = ? AND name = ? AND task_type = ?"
        )
        self.insert_tq_config = self._conditional(
            "INSERT INTO task_queue_configs (namespace_id, name, task_type, config, version) "
            "VALUES (?, ?, ?, ?, ?) IF NOT EXISTS"
        )
        self.update_tq_config = self._conditional(
            "UPDATE task_queue_configs SET config = ?, version = ? "
            "WHERE namespace_id = ? AND name = ? AND task_type = ? IF version = ?"
        )
        # ---- Nexus endpoint registry (one partition; its static table_version orders every change)
        self.list_nexus_endpoints = self._idempotent(
            "SELECT id, version, data, table_version FROM nexus_endpoints WHERE partition = 0"
        )
        self.create_nexus_table_version = self._conditional(
            "UPDATE nexus_endpoints SET table_version = ? WHERE partition = 0 IF table_version = null"
        )
        self.bump_nexus_table_version = self._conditional(
            "UPDATE nexus_endpoints SET table_version = ? WHERE partition = 0 IF table_version = ?"
        )
        self.upsert_nexus_endpoint = self._conditional(
            "INSERT INTO nexus_endpoints (partition, id, data, version) VALUES (0, ?, ?, ?)"
        )
        self.delete_nexus_endpoint = self._conditional(
            "DELETE FROM nexus_endpoints WHERE partition = 0 AND id = ?"
        )
        # ---- worker deployments
        self.get_deployment = self._idempotent(
            "SELECT state, version FROM worker_deployments WHERE namespace_id = ? AND name = ?"
        )
        self.list_deployments = self._idempotent(
            "SELECT name, state, version FROM worker_deployments WHERE namespace_id = ?"
        )
        self.insert_deployment = self._conditional(
            "INSERT INTO worker_deployments (namespace_id, name, state, version) VALUES (?, ?, ?, ?) IF NOT EXISTS"
        )
        self.update_deployment = self._conditional(
            "UPDATE worker_deployments SET state = ?, version = ? WHERE namespace_id = ? AND name = ? IF version = ?"
        )
        self.delete_deployment = self._conditional(
            "DELETE FROM worker_deployments WHERE namespace_id = ? AND name = ? IF version = ?"
        )
        # ---- visibility
        self.insert_visibility = self._idempotent(
            f"INSERT INTO visibility (start_day, {_VISIBILITY_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self.insert_visibility_day = self._idempotent(
            "INSERT INTO visibility_days (namespace_id, start_day) VALUES (?, ?)"
        )
        self.insert_visibility_by_run = self._idempotent(
            "INSERT INTO visibility_by_run (namespace_id, workflow_id, run_id, start_time_ms) VALUES (?, ?, ?, ?)"
        )
        self.get_visibility_by_run = self._idempotent(
            "SELECT start_time_ms FROM visibility_by_run WHERE namespace_id = ? AND workflow_id = ? AND run_id = ?"
        )
        self.get_visibility = self._idempotent(
            f"SELECT {_VISIBILITY_COLUMNS} FROM visibility "
            "WHERE namespace_id = ? AND start_day = ? AND start_time_ms = ? AND run_id = ?"
        )
        self.delete_visibility = self._idempotent(
            "DELETE FROM visibility WHERE namespace_id = ? AND start_day = ? AND start_time_ms = ? AND run_id = ?"
        )
        self.delete_visibility_by_run = self._idempotent(
            "DELETE FROM visibility_by_run WHERE namespace_id = ? AND workflow_id = ? AND run_id = ?"
        )
        self.visibility_days = self._idempotent(
            "SELECT start_day FROM visibility_days WHERE namespace_id = ? AND start_day <= ?"
        )
        self.visibility_page = self._idempotent(
            f"SELECT {_VISIBILITY_COLUMNS} FROM visibility WHERE namespace_id = ? AND start_day = ? LIMIT ?"
        )
        self.get_search_attributes = self._idempotent(
            "SELECT name, value_type FROM search_attributes WHERE namespace_id = ?"
        )
        self.add_search_attribute = self._conditional(
            "INSERT INTO search_attributes (namespace_id, name, value_type) VALUES (?, ?, ?) IF NOT EXISTS"
        )
        self.remove_search_attribute = self._conditional(
            "DELETE FROM search_attributes WHERE namespace_id = ? AND name = ? IF EXISTS"
        )
        self.visibility_days_between = self._idempotent(
            "SELECT start_day FROM visibility_days WHERE namespace_id = ? AND start_day >= ? AND start_day <= ?"
        )
        self.visibility_days_between_asc = self._idempotent(
            "SELECT start_day FROM visibility_days WHERE namespace_id = ? AND start_day >= ? AND start_day <= ? "
            "ORDER BY start_day ASC"
        )
        self.visibility_page_after = self._idempotent(
            f"SELECT {_VISIBILITY_COLUMNS} FROM visibility WHERE namespace_id = ? AND start_day = ? "
            "AND (start_time_ms, run_id) < (?, ?) LIMIT ?"
        )

    def _idempotent(self, cql: str) -> PreparedStatement:
        statement = self._session.prepare(cql)
        statement.is_idempotent = True
        return statement

    def _conditional(self, cql: str) -> PreparedStatement:
        """A lightweight transaction: never retried blindly (a timed-out one may have been applied)."""
        statement = self._session.prepare(cql)
        statement.is_idempotent = False
        return statement


class CassandraStore(Store):
    """The Store interface on a Cassandra (5.0+) or Astra DB keyspace with the schema of schema/cassandra."""

    kind = "cassandra"

    def __init__(
        self, cluster: Cluster, session: Session, config: CassandraConfig, statements: _Statements
    ) -> None:
        """Use `CassandraStore.connect`; this takes a connected session on the store's keyspace."""
        self._cluster = cluster
        self._session = session
        self._config = config
        self._s = statements
        self._serial = consistency_level(config.serial_consistency)
        self._closed = False
        # (namespace id, workflow id, run id) -> the run's visibility start time as stored (upsert_visibility).
        self._visibility_starts: collections.OrderedDict[tuple[str, str, str], int] = (
            collections.OrderedDict()
        )
        self._visibility = VisibilityReader(
            self._pages,
            self._prepare,
            statements.visibility_days_between,
            statements.visibility_days_between_asc,
            _VISIBILITY_COLUMNS,
            DAY_MS,
            _visibility_from_row,
        )

    # ---- lifecycle -------------------------------------------------------------------------------------
    @classmethod
    async def connect(cls, config: CassandraConfig, *, check_schema: bool = True) -> CassandraStore:
        """Connect (in a worker thread: the driver's connect blocks) and prepare every statement.

        With `check_schema`, refuses a keyspace whose schema version is not the one this code was written
        for (SchemaVersionTooOldError names the `hourglass schema update` command that fixes it).
        """
        return await asyncio.to_thread(cls.connect_blocking, config, check_schema=check_schema)

    @classmethod
    def connect_blocking(cls, config: CassandraConfig, *, check_schema: bool = True) -> CassandraStore:
        """`connect` for synchronous callers (CLI tools, test fixtures); never call it on an event loop."""
        validate_keyspace_name(config.keyspace)
        cluster = build_cluster(config)
        try:
            with _unavailable_on_driver_error("connect"):
                session = _connect(cluster, config)
                if not keyspace_exists(session, config.keyspace):
                    raise PersistenceError(
                        f"keyspace {config.keyspace!r} does not exist; create it with "
                        f"`hourglass schema setup --keyspace {config.keyspace}`"
                    )
                if check_schema:
                    check_schema_version(session, config.keyspace)
                session.set_keyspace(config.keyspace)
                statements = _Statements(session)
        except BaseException:
            cluster.shutdown()
            raise
        return cls(cluster, session, config, statements)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await asyncio.to_thread(self._cluster.shutdown)

    def close_blocking(self) -> None:
        if not self._closed:
            self._closed = True
            self._cluster.shutdown()

    async def schema_version(self) -> tuple[str, int]:
        state = await asyncio.to_thread(self._read_schema_state)
        return "cassandra", state.curr_version if state is not None else 0

    def _read_schema_state(self):
        with _unavailable_on_driver_error("read schema_version"):
            return read_schema_state(self._session, self._config.keyspace)

    @property
    def session(self) -> Session:
        """The driver session (on the store's keyspace), for tools and tests."""
        return self._session

    async def init_cluster_metadata(self, metadata: ClusterMetadata) -> ClusterMetadata:
        secret = metadata.task_token_secret or None
        row = await self._conditional(
            self._s.init_metadata,
            (METADATA_PARTITION, metadata.cluster_name, metadata.history_shard_count, secret),
        )
        if row["[applied]"]:
            return dataclasses.replace(metadata)
        stored = ClusterMetadata(
            row["cluster_name"], row["history_shard_count"], row["task_token_secret"] or b""
        )
        if stored.task_token_secret or secret is None:
            return stored
        # A keyspace made before the secret existed: the first node to get here records its own; a node
        # that loses the race is answered with the winner's, so every node ends up with the same one.
        row = await self._conditional(self._s.init_task_token_secret, (secret, METADATA_PARTITION))
        return dataclasses.replace(
            stored, task_token_secret=secret if row["[applied]"] else row["task_token_secret"]
        )

    # ---- shards ----------------------------------------------------------------------------------------
    async def get_or_create_shard(self, shard_id: int) -> ShardInfo:
        """One LWT either way: INSERT IF NOT EXISTS returns the stored row when it exists."""
        row = await self._conditional(self._s.create_shard, (shard_id,))
        if row["[applied]"]:
            return ShardInfo(shard_id, range_id=0, transfer_ack_level=0, timer_ack_level_ms=0)
        return _shard_from_row(shard_id, row)

    async def update_shard(self, info: ShardInfo, expected_range_id: int) -> None:
        row = await self._conditional(
            self._s.update_shard,
            (
                info.range_id,
                info.transfer_ack_level,
                info.timer_ack_level_ms,
                info.shard_id,
                expected_range_id,
            ),
        )
        if not row["[applied]"]:
            raise ShardOwnershipLostError(info.shard_id, expected_range_id, row.get("range_id"))

    # ---- executions ------------------------------------------------------------------------------------
    async def get_execution(
        self, shard_id: int, namespace_id: str, workflow_id: str, run_id: str
    ) -> ExecutionRecord | None:
        row = await self._one(self._s.get_execution, (shard_id, namespace_id, workflow_id, run_id))
        if row is None:
            return None
        return ExecutionRecord(namespace_id, workflow_id, run_id, row["state"], row["db_record_version"])

    async def get_current_run(
        self, shard_id: int, namespace_id: str, workflow_id: str
    ) -> CurrentRunRecord | None:
        row = await self._one(self._s.get_current, (shard_id, namespace_id, workflow_id))
        return None if row is None else _current_run_from_row(namespace_id, workflow_id, row)

    async def commit(self, shard_id: int, range_id: int, writes: Sequence[ExecutionWrite]) -> None:
        """ONE conditional batch in the shard's partition; see the module docstring."""
        check_batch_is_well_formed(writes)
        repeated = _repeated_targets(writes)
        if repeated:
            # Two conditions on one row cannot share a batch, and the batch fails anyway: read what the
            # other writes' conditions would have met, to name every failing write as SQLite does.
            rows = await self._read_condition_rows_serially(shard_id, writes)
            raise _commit_failure(shard_id, range_id, writes, rows, repeated)
        batch = self._batch()
        batch.add(self._s.fence_shard, (range_id, shard_id, range_id))
        try:
            for write in writes:
                self._add_write(batch, shard_id, write)
        except (OverflowError, struct.error, TypeError) as e:  # a value no column holds: nothing was sent
            raise UnencodableWriteError(str(e)) from e
        rows = await self._execute_conditional(batch)
        if not rows[0]["[applied]"]:
            raise _commit_failure(shard_id, range_id, writes, rows, {})
        for write in writes:
            if write.expected_version is None:  # a new run: its first visibility upsert need not read
                record = write.record
                key = (record.namespace_id, record.workflow_id, record.run_id)
                if key not in self._visibility_starts:
                    self._remember_visibility_start(key, _NO_VISIBILITY_ROW)

    def _add_write(self, batch: BatchStatement, shard_id: int, write: ExecutionWrite) -> None:
        record = write.record
        run = (record.namespace_id, record.workflow_id, record.run_id)
        if write.expected_version is None:
            batch.add(self._s.insert_execution, (shard_id, *run, record.state, record.db_record_version))
        else:
            batch.add(
                self._s.update_execution,
                (record.state, record.db_record_version, shard_id, *run, write.expected_version),
            )
        if write.current_run is not None:
            pointer = write.current_run.record
            values = (
                pointer.run_id,
                int(pointer.status),
                pointer.execution_status,
                pointer.create_request_id,
                pointer.start_time_ms,
                pointer.close_time_ms,
            )
            if write.current_run.mode is CurrentRunMode.CREATE:
                batch.add(
                    self._s.insert_current, (shard_id, pointer.namespace_id, pointer.workflow_id, *values)
                )
            else:
                expected = (
                    write.current_run.previous_run_id
                    if write.current_run.mode is CurrentRunMode.REPLACE
                    else pointer.run_id
                )
                batch.add(
                    self._s.update_current,
                    (*values, shard_id, pointer.namespace_id, pointer.workflow_id, expected),
                )
        for task in write.transfer_tasks:
            batch.add(self._s.insert_transfer, (shard_id, task.task_id, *_task_values(task)))
        for timer in write.timer_tasks:
            batch.add(
                self._s.insert_timer, (shard_id, timer.fire_time_ms, timer.task_id, *_task_values(timer))
            )

    async def _read_condition_rows_serially(
        self, shard_id: int, writes: Sequence[ExecutionWrite]
    ) -> list[dict[str, Any]]:
        """The rows a batch's conditions would be checked against, read linearizably (SERIAL)."""
        reads = [self._serial_rows(self._s.read_shard_row, (shard_id,))]
        for write in writes:
            key = write.record.key
            reads.append(
                self._serial_rows(
                    self._s.read_execution_row, (shard_id, key.namespace_id, key.workflow_id, key.run_id)
                )
            )
            if write.current_run is not None:
                reads.append(
                    self._serial_rows(self._s.read_current_row, (shard_id, key.namespace_id, key.workflow_id))
                )
        return [row for rows in await asyncio.gather(*reads) for row in rows]

    async def delete_execution(self, shard_id: int, namespace_id: str, workflow_id: str, run_id: str) -> None:
        """Two conditional deletes (pointer, then row): Paxos orders them before any later re-creation.

        Not one batch: the pointer is deleted only if it names this run, and a batch would drop the row's
        deletion along with it when it does not. The pointer goes first, so a crash in between leaves an
        unreachable row (harmless), never a pointer to a missing run.
        """
        await self._conditional(self._s.delete_current, (shard_id, namespace_id, workflow_id, run_id))
        await self._conditional(self._s.delete_execution, (shard_id, namespace_id, workflow_id, run_id))

    # ---- history ---------------------------------------------------------------------------------------
    async def append_history_node(self, node: HistoryNode) -> None:
        await self._execute(self._s.append_node, _node_values(node))

    async def append_history_nodes(self, nodes: Sequence[HistoryNode]) -> int:
        """UNLOGGED batches of a few nodes each (one request instead of one per node), sent concurrently.

        The nodes are in different partitions (runs): Cassandra warns about an unlogged batch spanning more
        than `unlogged_batch_across_partitions_warn_threshold` (10) partitions or larger than
        `batch_size_warn_threshold` (5 KiB) and refuses one above `batch_size_fail_threshold` (50 KiB), so
        a batch stays under the warning thresholds and a larger node goes alone.
        """
        chunks: list[list[HistoryNode]] = []
        size = 0
        for node in nodes:
            node_size = len(node.events) + HISTORY_NODE_OVERHEAD
            if chunks and len(chunks[-1]) < HISTORY_BATCH_NODES and size + node_size <= HISTORY_BATCH_BYTES:
                chunks[-1].append(node)
                size += node_size
            else:
                chunks.append([node])
                size = node_size
        requests = [self._append_chunk(chunk) for chunk in chunks]
        if len(requests) == 1:
            await requests[0]
        elif requests:
            await asyncio.gather(*requests)
        return len(requests)

    async def _append_chunk(self, nodes: list[HistoryNode]) -> None:
        if len(nodes) == 1:
            await self.append_history_node(nodes[0])
            return
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        batch.is_idempotent = True  # rewriting the same nodes is harmless: the driver may retry it
        for node in nodes:
            batch.add(self._s.append_node, _node_values(node))
        await self._execute(batch)

    async def read_history_nodes(
        self,
        namespace_id: str,
        workflow_id: str,
        run_id: str,
        min_node_id: int,
        max_txn_id: int,
        limit: int,
    ) -> list[HistoryNode]:
        """Rows come ordered by (node_id, txn_id DESC): per node, the first row within max_txn_id wins.

        Versions above max_txn_id (uncommitted transitions) are rare, so this reads about `limit` rows.
        """
        if limit <= 0:
            return []
        nodes: list[HistoryNode] = []
        statement = self._s.read_nodes.bind((namespace_id, workflow_id, run_id, min_node_id))
        statement.fetch_size = min(max(limit + 8, 16), PAGE_ROWS)
        async with contextlib.aclosing(self._pages(statement)) as pages:
            async for page in pages:
                for row in page:
                    if row["txn_id"] > max_txn_id or (nodes and nodes[-1].node_id == row["node_id"]):
                        continue
                    nodes.append(
                        HistoryNode(
                            namespace_id,
                            workflow_id,
                            run_id,
                            row["node_id"],
                            row["txn_id"],
                            row["events"],
                            row["last_event_id"],
                        )
                    )
                    if len(nodes) == limit:
                        return nodes
        return nodes

    async def delete_history(self, namespace_id: str, workflow_id: str, run_id: str) -> None:
        await self._execute(self._s.delete_history, (namespace_id, workflow_id, run_id))

    # ---- history queue tasks (shard partition) -----------------------------------------------------------
    async def get_transfer_tasks(
        self, shard_id: int, min_task_id_exclusive: int, max_task_id_inclusive: int, limit: int
    ) -> list[TransferTask]:
        if limit <= 0 or min_task_id_exclusive >= max_task_id_inclusive:
            return []
        rows = await self._rows(
            self._s.get_transfer, (shard_id, min_task_id_exclusive, max_task_id_inclusive, limit)
        )
        return [
            TransferTask(
                row["task_id"],
                row["task_namespace_id"],
                row["task_workflow_id"],
                row["task_run_id"],
                row["kind"],
                row["data"] or b"",
            )
            for row in rows
        ]

    async def delete_transfer_tasks(self, shard_id: int, max_task_id_inclusive: int) -> None:
        await self._execute(self._s.delete_transfer, (shard_id, max_task_id_inclusive))

    async def get_timer_tasks(
        self, shard_id: int, min_fire_time_ms: int, max_fire_time_ms_exclusive: int, limit: int
    ) -> list[TimerTask]:
        if limit <= 0 or min_fire_time_ms >= max_fire_time_ms_exclusive:
            return []
        rows = await self._rows(
            self._s.get_timers, (shard_id, min_fire_time_ms, max_fire_time_ms_exclusive, limit)
        )
        return [
            TimerTask(
                row["visibility_ts"],
                row["task_id"],
                row["task_namespace_id"],
                row["task_workflow_id"],
                row["task_run_id"],
                row["kind"],
                row["data"] or b"",
            )
            for row in rows
        ]

    async def delete_timer_tasks(self, shard_id: int, max_fire_time_ms_exclusive: int) -> None:
        await self._execute(self._s.delete_timers, (shard_id, max_fire_time_ms_exclusive))

    async def delete_fired_timer_tasks(self, shard_id: int, timers: Sequence[tuple[int, int]]) -> None:
        """One UNLOGGED batch: every row is in the shard's partition, so Cassandra applies it as one
        mutation (a single-partition batch is atomic and carries no batch log)."""
        if not timers:
            return
        if len(timers) == 1:
            await self._execute(self._s.delete_timer, (shard_id, *timers[0]))
            return
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        batch.is_idempotent = True  # deleting the same rows again is harmless: the driver may retry it
        for fire_time_ms, task_id in timers:
            batch.add(self._s.delete_timer, (shard_id, fire_time_ms, task_id))
        await self._execute(batch)

    # ---- matching: task-queue partitions ---------------------------------------------------------------
    async def lease_task_queue(self, key: TaskQueueKey) -> TaskQueueInfo:
        """A SERIAL read of the lease, then one LWT: create it at range 1, or bump it by one."""
        queue = _queue_key(key)
        rows = await self._serial_rows(self._s.read_queue, queue)
        if not rows or rows[0]["range_id"] is None:
            row = await self._conditional(self._s.create_queue, (*queue, 1))
            if not row["[applied]"]:
                raise TaskQueueLeaseLostError(f"task queue {key} was leased concurrently")
            return TaskQueueInfo(key, range_id=1, ack_level=0)
        range_id, ack_level = rows[0]["range_id"], rows[0]["ack_level"] or 0
        row = await self._conditional(self._s.fence_queue, (range_id + 1, *queue, range_id))
        if not row["[applied]"]:
            raise TaskQueueLeaseLostError(f"task queue {key} was leased concurrently")
        return TaskQueueInfo(key, range_id=range_id + 1, ack_level=ack_level)

    async def update_task_queue(self, info: TaskQueueInfo) -> None:
        row = await self._conditional(
            self._s.update_queue_ack, (info.ack_level, *_queue_key(info.key), info.range_id)
        )
        if not row["[applied]"]:
            raise TaskQueueLeaseLostError(
                f"task queue {info.key}: expected range_id {info.range_id}, found {row.get('range_id')}"
            )

    async def create_queue_tasks(self, key: TaskQueueKey, range_id: int, tasks: Sequence[QueueTask]) -> None:
        """The lease check and the inserts are one conditional batch in the queue partition."""
        queue = _queue_key(key)
        batch = self._batch()
        batch.add(self._s.fence_queue, (range_id, *queue, range_id))
        for task in tasks:
            batch.add(
                self._s.insert_queue_task,
                (
                    *queue,
                    task.task_id,
                    task.namespace_id,
                    task.workflow_id,
                    task.run_id,
                    task.scheduled_event_id,
                    task.create_time_ms,
                    task.expiry_time_ms,
                    task.data,
                ),
            )
        rows = await self._execute_conditional(batch)
        if not rows[0]["[applied]"]:
            raise TaskQueueLeaseLostError(
                f"task queue {key}: expected range_id {range_id}, found {rows[0].get('range_id')}"
            )

    async def get_queue_tasks(
        self, key: TaskQueueKey, min_task_id_exclusive: int, limit: int
    ) -> list[QueueTask]:
        if limit <= 0:
            return []
        rows = await self._rows(self._s.get_queue_tasks, (*_queue_key(key), min_task_id_exclusive, limit))
        return [
            QueueTask(
                row["task_id"],
                row["task_namespace_id"],
                row["workflow_id"],
                row["run_id"],
                row["scheduled_event_id"],
                row["create_time_ms"],
                row["expiry_time_ms"],
                row["data"] or b"",
            )
            for row in rows
        ]

    async def delete_queue_tasks(self, key: TaskQueueKey, max_task_id_inclusive: int) -> None:
        await self._execute(self._s.delete_queue_tasks, (*_queue_key(key), max_task_id_inclusive))

    async def list_task_queues(self) -> list[TaskQueueInfo]:
        """A scan of partition keys and static columns only (SELECT DISTINCT): no backlog task is read."""
        infos: list[TaskQueueInfo] = []
        statement = self._s.list_queues.bind(())
        statement.fetch_size = PAGE_ROWS
        async for page in self._pages(statement):
            for row in page:
                if row["range_id"] is None:
                    continue
                key = TaskQueueKey(
                    row["namespace_id"],
                    row["task_queue_name"],
                    row["task_queue_type"],
                    row["queue_partition"],
                )
                infos.append(TaskQueueInfo(key, row["range_id"], row["ack_level"] or 0))
        infos.sort(key=lambda i: (i.key.namespace_id, i.key.name, i.key.task_type, i.key.partition))
        return infos

    # ---- namespaces --------------------------------------------------------------------------------------
    async def create_namespace(self, record: NamespaceRecord) -> None:
        """Claims the name and the id in one conditional batch: both or neither."""
        batch = self._batch()
        values = (record.id, record.name, record.data, record.notification_version)
        batch.add(self._s.insert_namespace, (NAMESPACES_PARTITION, NAMESPACE_BY_NAME, record.name, *values))
        batch.add(self._s.insert_namespace, (NAMESPACES_PARTITION, NAMESPACE_BY_ID, record.id, *values))
        rows = await self._execute_conditional(batch)
        if not rows[0]["[applied]"]:
            taken = next((row for row in rows if row.get("id") is not None), {})
            raise NamespaceAlreadyExistsError(
                f"namespace {taken.get('name', record.name)!r} (id {taken.get('id', record.id)}) already exists"
            )

    async def get_namespace_by_name(self, name: str) -> NamespaceRecord | None:
        row = await self._one(self._s.get_namespace, (NAMESPACES_PARTITION, NAMESPACE_BY_NAME, name))
        return None if row is None else _namespace_from_row(row)

    async def get_namespace_by_id(self, namespace_id: str) -> NamespaceRecord | None:
        row = await self._one(self._s.get_namespace, (NAMESPACES_PARTITION, NAMESPACE_BY_ID, namespace_id))
        return None if row is None else _namespace_from_row(row)

    async def list_namespaces(self) -> list[NamespaceRecord]:
        statement = self._s.list_namespaces.bind((NAMESPACES_PARTITION,))
        statement.fetch_size = PAGE_ROWS
        return [_namespace_from_row(row) async for page in self._pages(statement) for row in page]

    async def update_namespace(self, record: NamespaceRecord, expected_notification_version: int) -> None:
        """Writes the record as given, including its notification_version (the caller bumps it).

        One conditional batch on the namespaces partition: the by-id row IF notification_version matches,
        and the by-name row updated in place (IF it is still this namespace's) or, on a rename, the old name
        row deleted and the new one claimed IF NOT EXISTS.
        """
        rows = await self._serial_rows(
            self._s.get_namespace, (NAMESPACES_PARTITION, NAMESPACE_BY_ID, record.id)
        )
        if not rows:
            raise NamespaceNotFoundError(f"namespace id {record.id} does not exist")
        stored = _namespace_from_row(rows[0])
        if stored.notification_version != expected_notification_version:
            raise _namespace_version_mismatch(
                record.id, expected_notification_version, stored.notification_version
            )
        values = (record.id, record.name, record.data, record.notification_version)
        batch = self._batch()
        batch.add(
            self._s.update_namespace_if_version,
            (*values, NAMESPACES_PARTITION, NAMESPACE_BY_ID, record.id, expected_notification_version),
        )
        if stored.name == record.name:
            batch.add(
                self._s.update_namespace_if_id,
                (*values, NAMESPACES_PARTITION, NAMESPACE_BY_NAME, record.name, record.id),
            )
        else:
            batch.add(
                self._s.delete_namespace_if_id,
                (NAMESPACES_PARTITION, NAMESPACE_BY_NAME, stored.name, record.id),
            )
            batch.add(
                self._s.insert_namespace, (NAMESPACES_PARTITION, NAMESPACE_BY_NAME, record.name, *values)
            )
        rows = await self._execute_conditional(batch)
        if rows[0]["[applied]"]:
            return
        by_key = {(row.get("kind"), row.get("key")): row for row in rows if row.get("kind") is not None}
        by_id = by_key.get((NAMESPACE_BY_ID, record.id))
        if by_id is None:
            raise NamespaceNotFoundError(f"namespace id {record.id} does not exist")
        if by_id["notification_version"] != expected_notification_version:
            raise _namespace_version_mismatch(
                record.id, expected_notification_version, by_id["notification_version"]
            )
        clash = by_key.get((NAMESPACE_BY_NAME, record.name))
        if clash is not None and clash["id"] != record.id:
            raise NamespaceAlreadyExistsError(f"namespace name {record.name!r} is taken by id {clash['id']}")
        # The by-name row changed under us (a concurrent rename): the caller reloads and retries.
        raise ConditionFailedError(
            {0: ConditionFailedError.VERSION_MISMATCH}, f"namespace {record.id} changed concurrently"
        )

    async def delete_namespace(self, namespace_id: str, expected_notification_version: int) -> None:
        """One conditional batch on the namespaces partition: the by-id row IF its version matches and the
        by-name row IF it is still this namespace's, so the name and the id go together."""
        rows = await self._serial_rows(
            self._s.get_namespace, (NAMESPACES_PARTITION, NAMESPACE_BY_ID, namespace_id)
        )
        if not rows:
            return
        stored = _namespace_from_row(rows[0])
        if stored.notification_version != expected_notification_version:
            raise _namespace_version_mismatch(
                namespace_id, expected_notification_version, stored.notification_version
            )
        batch = self._batch()
        batch.add(
            self._s.delete_namespace_if_version,
            (NAMESPACES_PARTITION, NAMESPACE_BY_ID, namespace_id, expected_notification_version),
        )
        batch.add(
            self._s.delete_namespace_if_id,
            (NAMESPACES_PARTITION, NAMESPACE_BY_NAME, stored.name, namespace_id),
        )
        rows = await self._execute_conditional(batch)
        if rows[0]["[applied]"]:
            return
        if await self._serial_rows(
            self._s.get_namespace, (NAMESPACES_PARTITION, NAMESPACE_BY_ID, namespace_id)
        ):
            raise ConditionFailedError(
                {0: ConditionFailedError.VERSION_MISMATCH}, f"namespace {namespace_id} changed concurrently"
            )

    # ---- visibility --------------------------------------------------------------------------------------
    async def upsert_visibility(self, record: VisibilityRecord) -> None:
        """Three idempotent writes (row, where-is-the-run pointer, day index), as one UNLOGGED batch when
        small; a failed one is reported as unavailable and the caller's retry of the whole upsert repairs it.

        The start time is part of the row's key, so a changed one moves the row: the run's stored start
        time is read first, unless this store wrote or read it before (a run's start time is set once, at
        its first commit, so that is the common case: a run's visibility is upserted at start and close), nor
        for a run this store created (`commit` remembers that it has no row yet: its run id is new).
        """
        key = (record.namespace_id, record.workflow_id, record.run_id)
        previous = self._visibility_starts.get(key)
        if previous is None:
            previous = await self._visibility_start(*key)
        if previous is not None and previous not in (record.start_time_ms, _NO_VISIBILITY_ROW):
            await self._execute(
                self._s.delete_visibility,
                (record.namespace_id, _day(previous), previous, record.run_id),
            )
        day = _day(record.start_time_ms)
        writes = [
            (self._s.insert_visibility, (day, *_visibility_values(record))),
            (self._s.insert_visibility_day, (record.namespace_id, day)),
            (
                self._s.insert_visibility_by_run,
                (record.namespace_id, record.workflow_id, record.run_id, record.start_time_ms),
            ),
        ]
        if len(record.memo) + len(record.search_attributes) + VISIBILITY_ROW_OVERHEAD <= HISTORY_BATCH_BYTES:
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            batch.is_idempotent = True
            for statement, values in writes:
                batch.add(statement, values)
            await self._execute(batch)
        else:
            await asyncio.gather(*(self._execute(statement, values) for statement, values in writes))
        self._remember_visibility_start(key, record.start_time_ms)

    def _remember_visibility_start(self, key: tuple[str, str, str], start_time_ms: int | None) -> None:
        starts = self._visibility_starts
        if start_time_ms is None:
            starts.pop(key, None)
            return
        starts[key] = start_time_ms
        starts.move_to_end(key)
        while len(starts) > VISIBILITY_STARTS_CACHED:
            starts.popitem(last=False)

    async def get_visibility(
        self, namespace_id: str, workflow_id: str, run_id: str
    ) -> VisibilityRecord | None:
        start = await self._visibility_start(namespace_id, workflow_id, run_id)
        if start is None:
            return None
        row = await self._one(self._s.get_visibility, (namespace_id, _day(start), start, run_id))
        if row is None or row["workflow_id"] != workflow_id:
            return None
        return _visibility_from_row(row)

    async def list_visibility(
        self, namespace_id: str, page_size: int, after: tuple[int, str] | None = None
    ) -> list[VisibilityRecord]:
        """Newest first: walks the namespace's days (newest first), each a clustered slice."""
        if page_size <= 0:
            return []
        records: list[VisibilityRecord] = []
        last_day = _day(after[0]) if after is not None else 2**31 - 1
        days = self._s.visibility_days.bind((namespace_id, last_day))
        days.fetch_size = PAGE_ROWS
        async with contextlib.aclosing(self._pages(days)) as pages:
            async for page in pages:
                for day_row in page:
                    day = day_row["start_day"]
                    wanted = page_size - len(records)
                    if after is not None and day == _day(after[0]):
                        rows = await self._rows(
                            self._s.visibility_page_after, (namespace_id, day, after[0], after[1], wanted)
                        )
                    else:
                        rows = await self._rows(self._s.visibility_page, (namespace_id, day, wanted))
                    self._visibility.rows_read += len(rows)
                    records.extend(_visibility_from_row(row) for row in rows)
                    if len(records) >= page_size:
                        return records
        return records

    async def delete_visibility(self, namespace_id: str, workflow_id: str, run_id: str) -> None:
        start = await self._visibility_start(namespace_id, workflow_id, run_id)
        self._remember_visibility_start((namespace_id, workflow_id, run_id), None)
        if start is None:
            return
        await self._execute(self._s.delete_visibility, (namespace_id, _day(start), start, run_id))
        await self._execute(self._s.delete_visibility_by_run, (namespace_id, workflow_id, run_id))

    # ---- visibility queries: filters pushed down to indexes and day slices (visibility_reader.py) ----------
    async def query_visibility(
        self, namespace_id: str, query: VisibilityQuery, page_size: int, next_page_token: bytes = b""
    ) -> tuple[list[VisibilityRecord], bytes]:
        return await self._visibility.query(namespace_id, query, page_size, next_page_token)

    async def count_visibility(self, namespace_id: str, query: VisibilityQuery) -> int:
        return await self._visibility.count(namespace_id, query)

    async def count_visibility_groups(
        self, namespace_id: str, query: VisibilityQuery
    ) -> list[tuple[tuple[Any, ...], int]]:
        return await self._visibility.count_groups(namespace_id, query)

    @property
    def visibility_rows_read(self) -> int:
        """Visibility rows Cassandra has returned to this store (listings and queries), for tests and
        benchmarks of the pushdown."""
        return self._visibility.rows_read

    # ---- schedules -----------------------------------------------------------------------------------------
    async def get_schedule(self, shard_id: int, namespace_id: str, schedule_id: str) -> ScheduleRecord | None:
        row = await self._one(self._s.get_schedule, (shard_id, namespace_id, schedule_id))
        if row is None:
            return None
        return ScheduleRecord(namespace_id, schedule_id, row["state"], row["db_record_version"])

    async def list_schedules(self, shard_id: int, namespace_id: str | None = None) -> list[ScheduleRecord]:
        if namespace_id is None:
            statement = self._s.list_schedules.bind((shard_id,))
        else:
            statement = self._s.list_namespace_schedules.bind((shard_id, namespace_id))
        statement.fetch_size = PAGE_ROWS
        return [
            ScheduleRecord(row["namespace_id"], row["workflow_id"], row["state"], row["db_record_version"])
            async for page in self._pages(statement)
            for row in page
        ]

    async def write_schedule(
        self, shard_id: int, range_id: int, record: ScheduleRecord, expected_version: int | None
    ) -> None:
        """One LWT batch: the shard fence and the schedule row's own condition."""
        key = (shard_id, record.namespace_id, record.schedule_id)
        batch = self._batch()
        batch.add(self._s.fence_shard, (range_id, shard_id, range_id))
        if expected_version is None:
            batch.add(self._s.insert_schedule, (*key, record.state, record.version))
        else:
            batch.add(self._s.update_schedule, (record.state, record.version, *key, expected_version))
        rows = await self._execute_conditional(batch)
        if not rows[0]["[applied]"]:
            raise _schedule_failure(
                shard_id, range_id, record.namespace_id, record.schedule_id, expected_version, rows
            )

    async def delete_schedule(
        self, shard_id: int, range_id: int, namespace_id: str, schedule_id: str, expected_version: int
    ) -> None:
        batch = self._batch()
        batch.add(self._s.fence_shard, (range_id, shard_id, range_id))
        batch.add(self._s.delete_schedule, (shard_id, namespace_id, schedule_id, expected_version))
        rows = await self._execute_conditional(batch)
        if not rows[0]["[applied]"]:
            raise _schedule_failure(shard_id, range_id, namespace_id, schedule_id, expected_version, rows)

    # ---- batch operations ----------------------------------------------------------------------------------
    async def get_batch(self, shard_id: int, namespace_id: str, job_id: str) -> BatchRecord | None:
        row = await self._one(self._s.get_batch, (shard_id, namespace_id, job_id))
        if row is None:
            return None
        return BatchRecord(namespace_id, job_id, row["state"], row["db_record_version"])

    async def list_batches(self, shard_id: int, namespace_id: str | None = None) -> list[BatchRecord]:
        if namespace_id is None:
            statement = self._s.list_batches.bind((shard_id,))
        else:
            statement = self._s.list_namespace_batches.bind((shard_id, namespace_id))
        statement.fetch_size = PAGE_ROWS
        return [
            BatchRecord(row["namespace_id"], row["workflow_id"], row["state"], row["db_record_version"])
            async for page in self._pages(statement)
            for row in page
        ]

    async def write_batch(
        self, shard_id: int, range_id: int, record: BatchRecord, expected_version: int | None
    ) -> None:
        """One LWT batch: the shard fence and the batch row's own condition (as a schedule's)."""
        key = (shard_id, record.namespace_id, record.job_id)
        batch = self._batch()
        batch.add(self._s.fence_shard, (range_id, shard_id, range_id))
        if expected_version is None:
            batch.add(self._s.insert_batch, (*key, record.state, record.version))
        else:
            batch.add(self._s.update_batch, (record.state, record.version, *key, expected_version))
        rows = await self._execute_conditional(batch)
        if not rows[0]["[applied]"]:
            raise _schedule_failure(
                shard_id, range_id, record.namespace_id, record.job_id, expected_version, rows, ROW_BATCH
            )

    # ---- search attribute registry -------------------------------------------------------------------------
    async def get_task_queue_config(
        self, namespace_id: str, name: str, task_type: int
    ) -> tuple[bytes, int] | None:
        # Serial: an update just acknowledged (an LWT) is always seen.
        rows = await self._serial_rows(self._s.get_tq_config, (namespace_id, name, int(task_type)))
        return None if not rows else (bytes(rows[0]["config"]), int(rows[0]["version"]))

    async def write_task_queue_config(
        self, namespace_id: str, name: str, task_type: int, config: bytes, expected_version: int
    ) -> None:
        """One LWT: IF NOT EXISTS for the first config of the queue, IF version = expected after that."""
        key = (namespace_id, name, int(task_type))
        if expected_version == 0:
            row = await self._conditional(self._s.insert_tq_config, (*key, config, 1))
        else:
            row = await self._conditional(
                self._s.update_tq_config, (config, expected_version + 1, *key, expected_version)
            )
        if not row["[applied]"]:
            raise ConditionFailedError(
                {0: ConditionFailedError.VERSION_MISMATCH},
                f"task queue config {key[1]}: expected version {expected_version}, found {row.get('version')}",
            )

    # ---- Nexus endpoint registry ----------------------------------------------------------------------------
    async def list_nexus_endpoints(self) -> tuple[int, list[NexusEndpointRecord]]:
        # Serial: a change just acknowledged (an LWT) is always seen. Clustering order is by id.
        rows = await self._serial_rows(self._s.list_nexus_endpoints, ())
        table_version = int(rows[0]["table_version"] or 0) if rows else 0
        # With every endpoint deleted the partition keeps its static row only (id None).
        endpoints = [
            NexusEndpointRecord(row["id"], int(row["version"]), bytes(row["data"]))
            for row in rows
            if row["id"] is not None
        ]
        return table_version, endpoints

    async def write_nexus_endpoint(self, record: NexusEndpointRecord, expected_table_version: int) -> None:
        """One LWT batch on the registry's partition: the table version condition and the row."""
        await self._change_nexus_endpoints(
            expected_table_version, (self._s.upsert_nexus_endpoint, (record.id, record.data, record.version))
        )

    async def delete_nexus_endpoint(self, endpoint_id: str, expected_table_version: int) -> None:
        await self._change_nexus_endpoints(
            expected_table_version, (self._s.delete_nexus_endpoint, (endpoint_id,))
        )

    async def _change_nexus_endpoints(self, expected: int, change: tuple[PreparedStatement, tuple]) -> None:
        batch = self._batch()
        if expected == 0:
            batch.add(self._s.create_nexus_table_version, (1,))
        else:
            batch.add(self._s.bump_nexus_table_version, (expected + 1, expected))
        batch.add(*change)
        rows = await self._execute_conditional(batch)
        if not rows[0]["[applied]"]:
            raise ConditionFailedError(
                {0: ConditionFailedError.VERSION_MISMATCH},
                f"nexus endpoints: expected table version {expected}, found {rows[0].get('table_version')}",
            )

    async def get_worker_deployment(self, namespace_id: str, name: str) -> tuple[bytes, int] | None:
        # Serial: a change just acknowledged (an LWT) is always seen, from any node.
        rows = await self._serial_rows(self._s.get_deployment, (namespace_id, name))
        return None if not rows else (bytes(rows[0]["state"]), int(rows[0]["version"]))

    async def list_worker_deployments(self, namespace_id: str) -> list[tuple[str, bytes, int]]:
        rows = await self._serial_rows(self._s.list_deployments, (namespace_id,))
        return [(row["name"], bytes(row["state"]), int(row["version"])) for row in rows]

    async def write_worker_deployment(
        self, namespace_id: str, name: str, state: bytes, expected_version: int
    ) -> None:
        """One LWT: IF NOT EXISTS for a new deployment, IF version = expected after that."""
        if expected_version == 0:
            row = await self._conditional(self._s.insert_deployment, (namespace_id, name, state, 1))
        else:
            row = await self._conditional(
                self._s.update_deployment, (state, expected_version + 1, namespace_id, name, expected_version)
            )
        if not row["[applied]"]:
            raise ConditionFailedError(
                {0: ConditionFailedError.VERSION_MISMATCH},
                f"worker deployment {name}: expected version {expected_version}, found {row.get('version')}",
            )

    async def delete_worker_deployment(self, namespace_id: str, name: str, expected_version: int) -> None:
        row = await self._conditional(self._s.delete_deployment, (namespace_id, name, expected_version))
        if not row["[applied]"]:
            raise ConditionFailedError(
                {0: ConditionFailedError.VERSION_MISMATCH},
                f"worker deployment {name}: expected version {expected_version}, found {row.get('version')}",
            )

    async def get_search_attributes(self, namespace_id: str) -> dict[str, int]:
        statement = self._s.get_search_attributes.bind((namespace_id,))
        statement.fetch_size = PAGE_ROWS
        return {row["name"]: row["value_type"] async for page in self._pages(statement) for row in page}

    async def add_search_attributes(self, namespace_id: str, attributes: Mapping[str, int]) -> None:
        """One `IF NOT EXISTS` per name: a registered name keeps its type, whoever registers it again."""
        await asyncio.gather(
            *(
                self._conditional(self._s.add_search_attribute, (namespace_id, name, int(value_type)))
                for name, value_type in attributes.items()
            )
        )

    async def remove_search_attributes(self, namespace_id: str, names: Iterable[str]) -> None:
        await asyncio.gather(
            *(self._conditional(self._s.remove_search_attribute, (namespace_id, name)) for name in set(names))
        )

    async def _visibility_start(self, namespace_id: str, workflow_id: str, run_id: str) -> int | None:
        row = await self._one(self._s.get_visibility_by_run, (namespace_id, workflow_id, run_id))
        start = None if row is None else row["start_time_ms"]
        self._remember_visibility_start((namespace_id, workflow_id, run_id), start)
        return start

    # ---- plumbing ----------------------------------------------------------------------------------------
    def _batch(self) -> BatchStatement:
        return BatchStatement(batch_type=BatchType.LOGGED, serial_consistency_level=self._serial)

    async def _execute(self, statement: Any, parameters: Any = None) -> list[dict[str, Any]]:
        # The hot path of every request: no context manager, and the statement described only on error.
        try:
            result = await aio.execute(self._session, statement, parameters)
        except _UNAVAILABLE_ERRORS as e:
            raise _unavailable(_describe(statement), e) from e
        return list(result.current_rows)

    async def _rows(self, statement: PreparedStatement, parameters: Sequence[Any]) -> list[dict[str, Any]]:
        """One page (the statement has a LIMIT no larger than a page)."""
        return await self._execute(statement, parameters)

    async def _one(self, statement: PreparedStatement, parameters: Sequence[Any]) -> dict[str, Any] | None:
        rows = await self._execute(statement, parameters)
        return rows[0] if rows else None

    async def _serial_rows(
        self, statement: PreparedStatement, parameters: Sequence[Any]
    ) -> list[dict[str, Any]]:
        """A linearizable read (SERIAL / LOCAL_SERIAL): it also completes any in-flight LWT on the row."""
        bound = statement.bind(parameters)
        bound.consistency_level = self._serial
        return await self._execute(bound)

    async def _prepare(self, cql: str) -> PreparedStatement:
        """Prepare a statement shape first seen at run time (the driver's prepare blocks: a worker thread)."""
        with _unavailable_on_driver_error(f"prepare {' '.join(cql.split()[:4])}"):
            return await asyncio.to_thread(self._session.prepare, cql)

    async def _pages(self, statement: Any) -> AsyncIterator[list[dict[str, Any]]]:
        """Every page of a query; close it (contextlib.aclosing) when leaving the loop early."""
        with _unavailable_on_driver_error(_describe(statement)):
            async for page in aio.pages(self._session, statement):
                yield page

    async def _conditional(self, statement: PreparedStatement, parameters: Sequence[Any]) -> dict[str, Any]:
        """One LWT; returns its result row ("[applied]" and, when not applied, the current values)."""
        bound = statement.bind(parameters)
        bound.serial_consistency_level = self._serial
        return (await self._execute_conditional(bound))[0]

    async def _execute_conditional(self, statement: Any) -> list[dict[str, Any]]:
        try:
            return await self._execute(statement)
        except StoreUnavailableError as e:
            if isinstance(
                e.__cause__, WriteTimeout | CoordinationFailure | OperationTimedOut | ConnectionException
            ):
                raise StoreUnavailableError(
                    f"conditional write outcome unknown (it may have been applied): {e.__cause__}"
                ) from e.__cause__
            raise


def _connect(cluster: Cluster, config: CassandraConfig) -> Session:
    """The first connection; a TLS failure is reported with the setting to fix, not only the driver's text."""
    try:
        return cluster.connect()
    except NoHostAvailable as e:
        if not config.tls_enabled:
            raise
        hint = tls_failure_hint(e.errors.values(), client_certificate=config.tls_cert_file is not None)
        if hint is None:
            raise
        raise StoreUnavailableError(f"cassandra: connect: {hint}") from e


@contextlib.contextmanager
def _unavailable_on_driver_error(what: str) -> Iterator[None]:
    """Timeouts, unreachable or overloaded nodes are availability problems for the caller, not bugs.

    Errors that mean the request itself is wrong (InvalidRequest, SyntaxException, Unauthorized, ...) pass
    through unchanged.
    """
    try:
        yield
    except _UNAVAILABLE_ERRORS as e:
        raise _unavailable(what, e) from e


def _unavailable(what: str, error: BaseException) -> StoreUnavailableError:
    return StoreUnavailableError(f"cassandra: {what}: {type(error).__name__}: {error}")


def _describe(statement: Any) -> str:
    if isinstance(statement, BatchStatement):
        return "batch"
    query = getattr(statement, "query_string", None) or getattr(
        getattr(statement, "prepared_statement", None), "query_string", ""
    )
    return " ".join(str(query).split()[:4]) or type(statement).__name__


# ---- commit failures -----------------------------------------------------------------------------------


def _repeated_targets(writes: Sequence[ExecutionWrite]) -> dict[int, str]:
    seen_runs: set[ExecutionKey] = set()
    seen_pointers: set[tuple[str, str]] = set()
    failures: dict[int, str] = {}
    for index, write in enumerate(writes):
        reason = repeated_target_failure(write, seen_runs, seen_pointers)
        if reason is not None:
            failures[index] = reason
    return failures


def _commit_failure(
    shard_id: int,
    range_id: int,
    writes: Sequence[ExecutionWrite],
    rows: list[dict[str, Any]],
    repeated: dict[int, str],
) -> PersistenceError:
    """Which condition failed, read from the rows the conditions were checked against.

    Rows that do not exist are not returned; every row a write names carries a condition, so a missing one
    means absent. The fence comes first: a stale owner learns it lost the shard, not that it is stale.
    """
    found: dict[tuple[int, str, str, str], dict[str, Any]] = {}
    for row in rows:
        if row.get("type") is not None:
            found[(row["type"], row["namespace_id"], row["workflow_id"], row["run_id"])] = row
    shard = found.get((ROW_SHARD, "", "", ""))
    if shard is None or shard["range_id"] != range_id:
        return ShardOwnershipLostError(shard_id, range_id, None if shard is None else shard["range_id"])
    failures: dict[int, str] = {}
    for index, write in enumerate(writes):
        reason = repeated.get(index) or _execution_failure(write, found) or _current_run_failure(write, found)
        if reason is not None:
            failures[index] = reason
    if not failures:
        # Cannot happen unless the rows returned disagree with the conditions; make the caller reload.
        log.error("shard %s: conditional batch not applied but no failing condition found", shard_id)
        return ConditionFailedError(
            {i: ConditionFailedError.VERSION_MISMATCH for i in range(len(writes))}, "unexplained rejection"
        )
    return ConditionFailedError(failures)


def _schedule_failure(
    shard_id: int,
    range_id: int,
    namespace_id: str,
    schedule_id: str,
    expected_version: int | None,
    rows: list[dict[str, Any]],
    row_kind: int = ROW_SCHEDULE,
) -> PersistenceError:
    """Which condition of a schedule (or batch operation) row's LWT failed: the fence first, then the
    row's own."""
    shard = schedule = None
    for row in rows:
        if row.get("type") == ROW_SHARD:
            shard = row
        elif row.get("type") == row_kind and (row["namespace_id"], row["workflow_id"]) == (
            namespace_id,
            schedule_id,
        ):
            schedule = row
    if shard is None or shard["range_id"] != range_id:
        return ShardOwnershipLostError(shard_id, range_id, None if shard is None else shard["range_id"])
    if expected_version is None:
        return ConditionFailedError({0: ConditionFailedError.ALREADY_EXISTS})
    return ConditionFailedError(
        {0: ConditionFailedError.VERSION_MISMATCH}, "" if schedule else "schedule is gone"
    )


def _execution_failure(
    write: ExecutionWrite, found: dict[tuple[int, str, str, str], dict[str, Any]]
) -> str | None:
    key = write.record.key
    row = found.get((ROW_EXECUTION, key.namespace_id, key.workflow_id, key.run_id))
    if write.expected_version is None:
        return None if row is None else ConditionFailedError.ALREADY_EXISTS
    if row is None or row["db_record_version"] != write.expected_version:
        return ConditionFailedError.VERSION_MISMATCH
    return None


def _current_run_failure(
    write: ExecutionWrite, found: dict[tuple[int, str, str, str], dict[str, Any]]
) -> str | None:
    current_run = write.current_run
    if current_run is None:
        return None
    record = current_run.record
    row = found.get((ROW_CURRENT_RUN, record.namespace_id, record.workflow_id, ""))
    pointer = None if row is None else row["current_run_id"]
    if current_run.mode is CurrentRunMode.CREATE:
        return None if pointer is None else ConditionFailedError.ALREADY_EXISTS
    expected = current_run.previous_run_id if current_run.mode is CurrentRunMode.REPLACE else record.run_id
    if pointer is None or pointer != expected:
        return ConditionFailedError.CURRENT_RUN_MISMATCH
    return None


# ---- row conversions -----------------------------------------------------------------------------------


def _shard_from_row(shard_id: int, row: dict[str, Any]) -> ShardInfo:
    return ShardInfo(
        shard_id,
        range_id=row["range_id"],
        transfer_ack_level=row["transfer_ack_level"] or 0,
        timer_ack_level_ms=row["timer_ack_level_ms"] or 0,
    )


def _current_run_from_row(namespace_id: str, workflow_id: str, row: dict[str, Any]) -> CurrentRunRecord:
    return CurrentRunRecord(
        namespace_id,
        workflow_id,
        row["current_run_id"],
        RunStatus(row["status"]),
        row["execution_status"],
        row["create_request_id"],
        row["start_time_ms"] or 0,
        row["close_time_ms"] or 0,
    )


def _visibility_values(record: VisibilityRecord) -> tuple[Any, ...]:
    return (
        record.namespace_id,
        record.workflow_id,
        record.run_id,
        record.workflow_type,
        record.task_queue,
        record.status,
        record.start_time_ms,
        record.execution_time_ms,
        record.close_time_ms,
        record.history_length,
        record.memo,
        record.search_attributes,
        record.parent_workflow_id,
        record.parent_run_id,
        record.root_workflow_id,
        record.root_run_id,
        record.state_transition_count,
        record.history_size_bytes,
    )


def _node_values(node: HistoryNode) -> tuple[Any, ...]:
    return (
        node.namespace_id,
        node.workflow_id,
        node.run_id,
        node.node_id,
        node.txn_id,
        node.events,
        node.last_event_id,
    )


def _task_values(task: TransferTask | TimerTask) -> tuple[Any, ...]:
    return (task.namespace_id, task.workflow_id, task.run_id, task.kind, task.data)


def _queue_key(key: TaskQueueKey) -> tuple[str, str, int, int]:
    return (key.namespace_id, key.name, int(key.task_type), key.partition)


def _namespace_from_row(row: dict[str, Any]) -> NamespaceRecord:
    return NamespaceRecord(row["id"], row["name"], row["data"] or b"", row["notification_version"] or 0)


def _namespace_version_mismatch(namespace_id: str, expected: int, found: int) -> ConditionFailedError:
    return ConditionFailedError(
        {0: ConditionFailedError.VERSION_MISMATCH},
        f"namespace {namespace_id}: expected notification_version {expected}, found {found}",
    )


def _visibility_from_row(row: dict[str, Any]) -> VisibilityRecord:
    return VisibilityRecord(
        row["namespace_id"],
        row["workflow_id"],
        row["run_id"],
        row["workflow_type"],
        row["task_queue"],
        row["status"],
        row["start_time_ms"],
        row["execution_time_ms"] or 0,
        row["close_time_ms"] or 0,
        row["history_length"] or 0,
        row["memo"] or b"",
        row["search_attributes"] or b"",
        row["parent_workflow_id"] or "",
        row["parent_run_id"] or "",
        row["root_workflow_id"] or "",
        row["root_run_id"] or "",
        row["state_transition_count"] or 0,
        row["history_size_bytes"] or 0,
    )


def _day(time_ms: int) -> int:
    return time_ms // DAY_MS


__all__ = ["CassandraConfig", "CassandraStore"]
