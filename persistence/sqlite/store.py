"""The embedded store: one SQLite database, for `start-dev` and single-node clusters.

Calls use the stdlib `sqlite3` module synchronously inside the async methods, on purpose: a statement takes
microseconds, far less than a thread hop would. The same property makes the store safe on one event loop:
no method awaits while a transaction is open, so transactions never interleave.

The connection runs in autocommit mode (isolation_level=None); every multi-statement operation is wrapped
in an explicit BEGIN IMMEDIATE ... COMMIT, so `commit()` is one atomic transaction, as the shard partition's
conditional batch is on Cassandra. A file database uses WAL with synchronous=FULL: once `commit()` has
returned, a kill -9 (or a power cut) of the server loses nothing of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from hourglass.persistence.batch_rules import check_batch_is_well_formed, repeated_target_failure
from hourglass.persistence.errors import (
    ConditionFailedError,
    NamespaceAlreadyExistsError,
    NamespaceNotFoundError,
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
    CurrentRunWrite,
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
from hourglass.persistence.sqlite import visibility as visibility_sql
from hourglass.persistence.store import Store
from hourglass.persistence.visibility import model, scan
from hourglass.persistence.visibility.attributes import ValueType, search_attribute_types
from hourglass.persistence.visibility.evaluate import sort_key_function
from hourglass.persistence.visibility.model import VisibilityQuery, filter_depth
from hourglass.persistence.visibility.paging import decode_page_token, encode_page_token
from hourglass.schema.migrate_sqlite import apply_sqlite_schema, read_schema_version

log = logging.getLogger(__name__)

# A second process holding the write lock is waited for this long before the call reports unavailable.
BUSY_TIMEOUT_MS = 2000


def _fields(record_type: type) -> tuple[str, ...]:
    """Column names of a record's table: the schema names columns after the record's fields."""
    return tuple(f.name for f in dataclasses.fields(record_type))


def _columns(names: Sequence[str]) -> str:
    return ", ".join(names)


def _placeholders(names: Sequence[str]) -> str:
    return ", ".join("?" for _ in names)


def _values(record: Any, names: Sequence[str]) -> tuple[Any, ...]:
    """A record's column values; enums are stored as ints so the schema never depends on Python names."""
    return tuple(_db_value(getattr(record, name)) for name in names)


def _db_value(value: Any) -> Any:
    return int(value) if isinstance(value, enum.IntEnum) else value


SHARD = _fields(ShardInfo)
EXECUTION = _fields(ExecutionRecord)
CURRENT_RUN = _fields(CurrentRunRecord)
TRANSFER_TASK = _fields(TransferTask)
TIMER_TASK = _fields(TimerTask)
HISTORY_NODE = _fields(HistoryNode)
_APPEND_NODE = (
    f"INSERT OR REPLACE INTO history_node ({_columns(HISTORY_NODE)}) VALUES ({_placeholders(HISTORY_NODE)})"
)
QUEUE_TASK = _fields(QueueTask)
NAMESPACE = _fields(NamespaceRecord)
VISIBILITY = _fields(VisibilityRecord)
SCHEDULE = _fields(ScheduleRecord)
BATCH = _fields(BatchRecord)

# Backlog rows are keyed by their partition; these columns hold a TaskQueueKey (see schema.sql).
QUEUE_KEY_WHERE = "queue_namespace_id = ? AND queue_name = ? AND queue_task_type = ? AND queue_partition = ?"
TASK_QUEUE_WHERE = "namespace_id = ? AND name = ? AND task_type = ? AND partition = ?"
RUN_WHERE = "namespace_id = ? AND workflow_id = ? AND run_id = ?"


def _queue_key(key: TaskQueueKey) -> tuple[str, str, int, int]:
    return (key.namespace_id, key.name, int(key.task_type), key.partition)


def _current_run_from_row(row: tuple[Any, ...]) -> CurrentRunRecord:
    record = CurrentRunRecord(*row)
    record.status = RunStatus(record.status)
    return record


@contextlib.contextmanager
def _unavailable_on_db_error() -> Iterator[None]:
    """A locked, full or failing database is an availability problem for the caller, not a bug."""
    try:
        yield
    except sqlite3.OperationalError as e:
        raise StoreUnavailableError(f"sqlite: {e}") from e


class SQLiteStore(Store):
    """The Store interface on one SQLite connection."""

    kind = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        """Use `SQLiteStore.open`; this takes a connection already configured and migrated."""
        self._conn = conn
        visibility_sql.register_functions(conn)

    # ---- lifecycle -------------------------------------------------------------------------------------
    @classmethod
    async def open(cls, path: str | None = None) -> SQLiteStore:
        """Open (creating and migrating as needed) the database at `path`; None or ":memory:" is in memory."""
        conn = _connect(path)
        try:
            apply_sqlite_schema(conn)
            store = cls(conn)
            store._index_unindexed_visibility()
        except BaseException:
            conn.close()
            raise
        return store

    async def close(self) -> None:
        self._conn.close()

    async def schema_version(self) -> tuple[str, int]:
        with _unavailable_on_db_error():
            return "sqlite", read_schema_version(self._conn)

    async def init_cluster_metadata(self, metadata: ClusterMetadata) -> ClusterMetadata:
        secret = metadata.task_token_secret or None
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO cluster_metadata (id, cluster_name, history_shard_count, task_token_secret) "
                "VALUES (1, ?, ?, ?)",
                (metadata.cluster_name, metadata.history_shard_count, secret),
            )
            # A database made before the column existed: the first node to start records its secret.
            conn.execute(
                "UPDATE cluster_metadata SET task_token_secret = ? WHERE id = 1 AND task_token_secret IS NULL",
                (secret,),
            )
            row = conn.execute(
                "SELECT cluster_name, history_shard_count, task_token_secret FROM cluster_metadata"
            ).fetchone()
        return ClusterMetadata(row[0], row[1], bytes(row[2] or b""))

    # ---- shards ----------------------------------------------------------------------------------------
    async def get_or_create_shard(self, shard_id: int) -> ShardInfo:
        with self._transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO shards (shard_id, range_id) VALUES (?, 0)", (shard_id,))
            row = conn.execute(
                f"SELECT {_columns(SHARD)} FROM shards WHERE shard_id = ?", (shard_id,)
            ).fetchone()
        return ShardInfo(*row)

    async def update_shard(self, info: ShardInfo, expected_range_id: int) -> None:
        with self._transaction() as conn:
            self._check_range_id(conn, info.shard_id, expected_range_id)
            conn.execute(
                "UPDATE shards SET range_id = ?, transfer_ack_level = ?, timer_ack_level_ms = ? "
                "WHERE shard_id = ?",
                (info.range_id, info.transfer_ack_level, info.timer_ack_level_ms, info.shard_id),
            )

    @staticmethod
    def _check_range_id(conn: sqlite3.Connection, shard_id: int, range_id: int) -> None:
        """The fence: a writer whose range id is not the stored one has lost the shard."""
        row = conn.execute("SELECT range_id FROM shards WHERE shard_id = ?", (shard_id,)).fetchone()
        actual = None if row is None else row[0]
        if actual != range_id:
            raise ShardOwnershipLostError(shard_id, range_id, actual)

    # ---- executions ------------------------------------------------------------------------------------
    async def get_execution(
        self, shard_id: int, namespace_id: str, workflow_id: str, run_id: str
    ) -> ExecutionRecord | None:
        row = self._read_one(
            f"SELECT {_columns(EXECUTION)} FROM executions WHERE shard_id = ? AND {RUN_WHERE}",
            (shard_id, namespace_id, workflow_id, run_id),
        )
        return None if row is None else ExecutionRecord(*row)

    async def get_current_run(
        self, shard_id: int, namespace_id: str, workflow_id: str
    ) -> CurrentRunRecord | None:
        row = self._read_one(
            f"SELECT {_columns(CURRENT_RUN)} FROM current_executions "
            "WHERE shard_id = ? AND namespace_id = ? AND workflow_id = ?",
            (shard_id, namespace_id, workflow_id),
        )
        return None if row is None else _current_run_from_row(row)

    async def commit(self, shard_id: int, range_id: int, writes: Sequence[ExecutionWrite]) -> None:
        """Conditions are evaluated against the state before the batch; nothing is written unless all hold."""
        check_batch_is_well_formed(writes)
        with self._transaction() as conn:
            self._check_range_id(conn, shard_id, range_id)
            failures = self._condition_failures(conn, shard_id, writes)
            if failures:
                raise ConditionFailedError(failures)
            try:
                for write in writes:
                    self._apply_write(conn, shard_id, write)
            except OverflowError as e:  # an integer SQLite cannot hold; the transaction rolls back
                raise UnencodableWriteError(str(e)) from e

    def _condition_failures(
        self, conn: sqlite3.Connection, shard_id: int, writes: Sequence[ExecutionWrite]
    ) -> dict[int, str]:
        """Every failing write's index and one reason (row conditions first, then the current-run one)."""
        failures: dict[int, str] = {}
        seen_runs: set[ExecutionKey] = set()
        seen_pointers: set[tuple[str, str]] = set()
        for index, write in enumerate(writes):
            reasons = (
                repeated_target_failure(write, seen_runs, seen_pointers),
                self._execution_failure(conn, shard_id, write),
                self._current_run_failure(conn, shard_id, write.current_run),
            )
            reason = next((r for r in reasons if r), None)
            if reason is not None:
                failures[index] = reason
        return failures

    @staticmethod
    def _execution_failure(conn: sqlite3.Connection, shard_id: int, write: ExecutionWrite) -> str | None:
        key = write.record.key
        row = conn.execute(
            f"SELECT db_record_version FROM executions WHERE shard_id = ? AND {RUN_WHERE}",
            (shard_id, key.namespace_id, key.workflow_id, key.run_id),
        ).fetchone()
        if write.expected_version is None:
            return None if row is None else ConditionFailedError.ALREADY_EXISTS
        if row is None or row[0] != write.expected_version:
            return ConditionFailedError.VERSION_MISMATCH
        return None

    @staticmethod
    def _current_run_failure(
        conn: sqlite3.Connection, shard_id: int, current_run: CurrentRunWrite | None
    ) -> str | None:
        if current_run is None:
            return None
        record = current_run.record
        row = conn.execute(
            "SELECT run_id FROM current_executions WHERE shard_id = ? AND namespace_id = ? AND workflow_id = ?",
            (shard_id, record.namespace_id, record.workflow_id),
        ).fetchone()
        pointer = None if row is None else row[0]
        if current_run.mode is CurrentRunMode.CREATE:
            return None if pointer is None else ConditionFailedError.ALREADY_EXISTS
        expected = (
            current_run.previous_run_id if current_run.mode is CurrentRunMode.REPLACE else record.run_id
        )
        if pointer is None or pointer != expected:
            return ConditionFailedError.CURRENT_RUN_MISMATCH
        return None

    @staticmethod
    def _apply_write(conn: sqlite3.Connection, shard_id: int, write: ExecutionWrite) -> None:
        conn.execute(
            f"INSERT INTO executions (shard_id, {_columns(EXECUTION)}) VALUES (?, {_placeholders(EXECUTION)}) "
            "ON CONFLICT (shard_id, namespace_id, workflow_id, run_id) "
            "DO UPDATE SET state = excluded.state, db_record_version = excluded.db_record_version",
            (shard_id, *_values(write.record, EXECUTION)),
        )
        if write.current_run is not None:
            conn.execute(
                f"INSERT OR REPLACE INTO current_executions (shard_id, {_columns(CURRENT_RUN)}) "
                f"VALUES (?, {_placeholders(CURRENT_RUN)})",
                (shard_id, *_values(write.current_run.record, CURRENT_RUN)),
            )
        conn.executemany(
            f"INSERT OR REPLACE INTO transfer_tasks (shard_id, {_columns(TRANSFER_TASK)}) "
            f"VALUES (?, {_placeholders(TRANSFER_TASK)})",
            [(shard_id, *_values(task, TRANSFER_TASK)) for task in write.transfer_tasks],
        )
        conn.executemany(
            f"INSERT OR REPLACE INTO timer_tasks (shard_id, {_columns(TIMER_TASK)}) "
            f"VALUES (?, {_placeholders(TIMER_TASK)})",
            [(shard_id, *_values(task, TIMER_TASK)) for task in write.timer_tasks],
        )

    async def delete_execution(self, shard_id: int, namespace_id: str, workflow_id: str, run_id: str) -> None:
        with self._transaction() as conn:
            params = (shard_id, namespace_id, workflow_id, run_id)
            conn.execute(f"DELETE FROM executions WHERE shard_id = ? AND {RUN_WHERE}", params)
            conn.execute(f"DELETE FROM current_executions WHERE shard_id = ? AND {RUN_WHERE}", params)

    # ---- history ---------------------------------------------------------------------------------------
    async def append_history_node(self, node: HistoryNode) -> None:
        self._write(_APPEND_NODE, _values(node, HISTORY_NODE))

    async def append_history_nodes(self, nodes: Sequence[HistoryNode]) -> int:
        """A group's nodes in one transaction: one commit (one fsync on a file store) instead of N."""
        if not nodes:
            return 0
        with self._transaction() as conn:
            conn.executemany(_APPEND_NODE, [_values(node, HISTORY_NODE) for node in nodes])
        return 1

    async def read_history_nodes(
        self,
        namespace_id: str,
        workflow_id: str,
        run_id: str,
        min_node_id: int,
        max_txn_id: int,
        limit: int,
    ) -> list[HistoryNode]:
        # With a single max() aggregate, SQLite takes the other (bare) columns from the row holding the
        # maximum (https://sqlite.org/lang_select.html#bareagg), so each group yields its newest visible node.
        rows = self._read(
            "SELECT namespace_id, workflow_id, run_id, node_id, max(txn_id), events, last_event_id "
            f"FROM history_node WHERE {RUN_WHERE} AND node_id >= ? AND txn_id <= ? "
            "GROUP BY node_id ORDER BY node_id LIMIT ?",
            (namespace_id, workflow_id, run_id, min_node_id, max_txn_id, max(limit, 0)),
        )
        return [HistoryNode(*row) for row in rows]

    async def delete_history(self, namespace_id: str, workflow_id: str, run_id: str) -> None:
        self._write(f"DELETE FROM history_node WHERE {RUN_WHERE}", (namespace_id, workflow_id, run_id))

    # ---- history queue tasks (shard partition) -----------------------------------------------------------
    async def get_transfer_tasks(
        self, shard_id: int, min_task_id_exclusive: int, max_task_id_inclusive: int, limit: int
    ) -> list[TransferTask]:
        rows = self._read(
            f"SELECT {_columns(TRANSFER_TASK)} FROM transfer_tasks "
            "WHERE shard_id = ? AND task_id > ? AND task_id <= ? ORDER BY task_id LIMIT ?",
            (shard_id, min_task_id_exclusive, max_task_id_inclusive, max(limit, 0)),
        )
        return [TransferTask(*row) for row in rows]

    async def delete_transfer_tasks(self, shard_id: int, max_task_id_inclusive: int) -> None:
        self._write(
            "DELETE FROM transfer_tasks WHERE shard_id = ? AND task_id <= ?",
            (shard_id, max_task_id_inclusive),
        )

    async def get_timer_tasks(
        self, shard_id: int, min_fire_time_ms: int, max_fire_time_ms_exclusive: int, limit: int
    ) -> list[TimerTask]:
        rows = self._read(
            f"SELECT {_columns(TIMER_TASK)} FROM timer_tasks "
            "WHERE shard_id = ? AND fire_time_ms >= ? AND fire_time_ms < ? "
            "ORDER BY fire_time_ms, task_id LIMIT ?",
            (shard_id, min_fire_time_ms, max_fire_time_ms_exclusive, max(limit, 0)),
        )
        return [TimerTask(*row) for row in rows]

    async def delete_timer_tasks(self, shard_id: int, max_fire_time_ms_exclusive: int) -> None:
        self._write(
            "DELETE FROM timer_tasks WHERE shard_id = ? AND fire_time_ms < ?",
            (shard_id, max_fire_time_ms_exclusive),
        )

    async def delete_fired_timer_tasks(self, shard_id: int, timers: Sequence[tuple[int, int]]) -> None:
        """One transaction: one commit (one fsync on a file store) for the whole batch."""
        if not timers:
            return
        with self._transaction() as conn:
            conn.executemany(
                "DELETE FROM timer_tasks WHERE shard_id = ? AND fire_time_ms = ? AND task_id = ?",
                [(shard_id, fire_time_ms, task_id) for fire_time_ms, task_id in timers],
            )

    # ---- matching: task-queue partitions ---------------------------------------------------------------
    async def lease_task_queue(self, key: TaskQueueKey) -> TaskQueueInfo:
        with self._transaction() as conn:
            row = conn.execute(
                f"SELECT range_id, ack_level FROM task_queues WHERE {TASK_QUEUE_WHERE}", _queue_key(key)
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO task_queues (namespace_id, name, task_type, partition, range_id, ack_level) "
                    "VALUES (?, ?, ?, ?, 1, 0)",
                    _queue_key(key),
                )
                return TaskQueueInfo(key, range_id=1, ack_level=0)
            range_id, ack_level = row
            bumped = conn.execute(
                f"UPDATE task_queues SET range_id = ? WHERE {TASK_QUEUE_WHERE} AND range_id = ?",
                (range_id + 1, *_queue_key(key), range_id),
            )
            if bumped.rowcount != 1:
                raise TaskQueueLeaseLostError(f"task queue {key} was leased concurrently")
            return TaskQueueInfo(key, range_id=range_id + 1, ack_level=ack_level)

    async def update_task_queue(self, info: TaskQueueInfo) -> None:
        with self._transaction() as conn:
            self._check_lease(conn, info.key, info.range_id)
            conn.execute(
                f"UPDATE task_queues SET ack_level = ? WHERE {TASK_QUEUE_WHERE}",
                (info.ack_level, *_queue_key(info.key)),
            )

    async def create_queue_tasks(self, key: TaskQueueKey, range_id: int, tasks: Sequence[QueueTask]) -> None:
        with self._transaction() as conn:
            self._check_lease(conn, key, range_id)
            conn.executemany(
                "INSERT OR REPLACE INTO queue_tasks "
                f"(queue_namespace_id, queue_name, queue_task_type, queue_partition, {_columns(QUEUE_TASK)}) "
                f"VALUES (?, ?, ?, ?, {_placeholders(QUEUE_TASK)})",
                [(*_queue_key(key), *_values(task, QUEUE_TASK)) for task in tasks],
            )

    @staticmethod
    def _check_lease(conn: sqlite3.Connection, key: TaskQueueKey, range_id: int) -> None:
        """The matching fence: only the latest lease holder may write a partition."""
        row = conn.execute(
            f"SELECT range_id FROM task_queues WHERE {TASK_QUEUE_WHERE}", _queue_key(key)
        ).fetchone()
        actual = None if row is None else row[0]
        if actual != range_id:
            raise TaskQueueLeaseLostError(f"task queue {key}: expected range_id {range_id}, found {actual}")

    async def get_queue_tasks(
        self, key: TaskQueueKey, min_task_id_exclusive: int, limit: int
    ) -> list[QueueTask]:
        rows = self._read(
            f"SELECT {_columns(QUEUE_TASK)} FROM queue_tasks "
            f"WHERE {QUEUE_KEY_WHERE} AND task_id > ? ORDER BY task_id LIMIT ?",
            (*_queue_key(key), min_task_id_exclusive, max(limit, 0)),
        )
        return [QueueTask(*row) for row in rows]

    async def delete_queue_tasks(self, key: TaskQueueKey, max_task_id_inclusive: int) -> None:
        self._write(
            f"DELETE FROM queue_tasks WHERE {QUEUE_KEY_WHERE} AND task_id <= ?",
            (*_queue_key(key), max_task_id_inclusive),
        )

    async def list_task_queues(self) -> list[TaskQueueInfo]:
        rows = self._read(
            "SELECT namespace_id, name, task_type, partition, range_id, ack_level FROM task_queues "
            "ORDER BY namespace_id, name, task_type, partition"
        )
        return [
            TaskQueueInfo(TaskQueueKey(ns, name, task_type, partition), range_id, ack_level)
            for ns, name, task_type, partition, range_id, ack_level in rows
        ]

    # ---- namespaces --------------------------------------------------------------------------------------
    async def create_namespace(self, record: NamespaceRecord) -> None:
        with self._transaction() as conn:
            taken = conn.execute(
                "SELECT id, name FROM namespaces WHERE id = ? OR name = ?", (record.id, record.name)
            ).fetchone()
            if taken is not None:
                raise NamespaceAlreadyExistsError(f"namespace {taken[1]!r} (id {taken[0]}) already exists")
            conn.execute(
                f"INSERT INTO namespaces ({_columns(NAMESPACE)}) VALUES ({_placeholders(NAMESPACE)})",
                _values(record, NAMESPACE),
            )

    async def get_namespace_by_name(self, name: str) -> NamespaceRecord | None:
        row = self._read_one(f"SELECT {_columns(NAMESPACE)} FROM namespaces WHERE name = ?", (name,))
        return None if row is None else NamespaceRecord(*row)

    async def get_namespace_by_id(self, namespace_id: str) -> NamespaceRecord | None:
        row = self._read_one(f"SELECT {_columns(NAMESPACE)} FROM namespaces WHERE id = ?", (namespace_id,))
        return None if row is None else NamespaceRecord(*row)

    async def list_namespaces(self) -> list[NamespaceRecord]:
        rows = self._read(f"SELECT {_columns(NAMESPACE)} FROM namespaces ORDER BY name")
        return [NamespaceRecord(*row) for row in rows]

    async def update_namespace(self, record: NamespaceRecord, expected_notification_version: int) -> None:
        """Writes the record as given, including its notification_version (the caller bumps it)."""
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT notification_version FROM namespaces WHERE id = ?", (record.id,)
            ).fetchone()
            if row is None:
                raise NamespaceNotFoundError(f"namespace id {record.id} does not exist")
            if row[0] != expected_notification_version:
                raise ConditionFailedError(
                    {0: ConditionFailedError.VERSION_MISMATCH},
                    f"namespace {record.id}: expected notification_version {expected_notification_version}, "
                    f"found {row[0]}",
                )
            clash = conn.execute(
                "SELECT id FROM namespaces WHERE name = ? AND id != ?", (record.name, record.id)
            ).fetchone()
            if clash is not None:
                raise NamespaceAlreadyExistsError(f"namespace name {record.name!r} is taken by id {clash[0]}")
            conn.execute(
                "UPDATE namespaces SET name = ?, data = ?, notification_version = ? WHERE id = ?",
                (record.name, record.data, record.notification_version, record.id),
            )

    async def delete_namespace(self, namespace_id: str, expected_notification_version: int) -> None:
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT notification_version FROM namespaces WHERE id = ?", (namespace_id,)
            ).fetchone()
            if row is None:
                return
            if row[0] != expected_notification_version:
                raise ConditionFailedError(
                    {0: ConditionFailedError.VERSION_MISMATCH},
                    f"namespace {namespace_id}: expected notification_version {expected_notification_version}, "
                    f"found {row[0]}",
                )
            conn.execute("DELETE FROM namespaces WHERE id = ?", (namespace_id,))

    # ---- visibility --------------------------------------------------------------------------------------
    async def upsert_visibility(self, record: VisibilityRecord) -> None:
        """Writes the record and the JSON index of its search attributes (typed by the namespace's registry)."""
        with self._transaction() as conn:
            index = visibility_sql.index_document(
                record.search_attributes, self._search_attribute_types(conn, record.namespace_id)
            )
            conn.execute(
                f"INSERT OR REPLACE INTO visibility ({_columns(VISIBILITY)}, {visibility_sql.INDEX_COLUMN}) "
                f"VALUES ({_placeholders(VISIBILITY)}, ?)",
                (*_values(record, VISIBILITY), index),
            )

    async def get_visibility(
        self, namespace_id: str, workflow_id: str, run_id: str
    ) -> VisibilityRecord | None:
        row = self._read_one(
            f"SELECT {_columns(VISIBILITY)} FROM visibility WHERE {RUN_WHERE}",
            (namespace_id, workflow_id, run_id),
        )
        return None if row is None else VisibilityRecord(*row)

    async def list_visibility(
        self, namespace_id: str, page_size: int, after: tuple[int, str] | None = None
    ) -> list[VisibilityRecord]:
        """Keyset paging on the (start_time_ms, run_id) index: each page costs the same however deep."""
        where, params = "namespace_id = ?", [namespace_id]
        if after is not None:
            where += " AND (start_time_ms, run_id) < (?, ?)"
            params += [after[0], after[1]]
        rows = self._read(
            f"SELECT {_columns(VISIBILITY)} FROM visibility WHERE {where} "
            "ORDER BY start_time_ms DESC, run_id DESC LIMIT ?",
            (*params, max(page_size, 0)),
        )
        return [VisibilityRecord(*row) for row in rows]

    async def delete_visibility(self, namespace_id: str, workflow_id: str, run_id: str) -> None:
        self._write(f"DELETE FROM visibility WHERE {RUN_WHERE}", (namespace_id, workflow_id, run_id))

    # ---- visibility queries: the filter and order pushed down as SQL (persistence/sqlite/visibility.py) ----
    async def query_visibility(
        self, namespace_id: str, query: VisibilityQuery, page_size: int, next_page_token: bytes = b""
    ) -> tuple[list[VisibilityRecord], bytes]:
        if page_size < 1:
            raise ValueError(f"page_size must be positive, not {page_size}")
        if _too_deep_for_sql(query):
            return await scan.query_by_scan(self, namespace_id, query, page_size, next_page_token)
        keys = query.sort_keys
        after = decode_page_token(next_page_token, len(keys))
        width = len(VISIBILITY)
        parts = model.split_large_in(query.filter, IN_CHUNK)
        if parts is None:
            rows = self._visibility_rows(namespace_id, query.filter, keys, after, page_size + 1)
        else:  # each part's rows are disjoint from the others': merge them in the query's order
            rows = []
            for part in parts:
                rows += self._visibility_rows(namespace_id, part, keys, after, page_size + 1)
                await asyncio.sleep(0)
            by_order = sort_key_function(keys)
            rows = sorted(rows, key=lambda row: by_order(row[width:]))[: page_size + 1]
        page = rows[:page_size]
        token = encode_page_token(page[-1][width:]) if len(rows) > page_size else b""
        return [VisibilityRecord(*row[:width]) for row in page], token

    def _visibility_rows(
        self,
        namespace_id: str,
        query_filter: model.Filter | None,
        keys: Sequence[model.SortKey],
        after: Sequence[Any] | None,
        limit: int,
    ) -> list[tuple[Any, ...]]:
        """Up to `limit` rows in the keys' order after `after`: the record's columns, then its sort values."""
        where = visibility_sql.where_clause(query_filter)
        resume = visibility_sql.Sql("1") if after is None else visibility_sql.after_clause(keys, after)
        sort_values = visibility_sql.sort_expressions(keys)
        order = visibility_sql.order_by_clause(keys)
        return self._read(
            f"SELECT {_columns(VISIBILITY)}, {', '.join(e.text for e in sort_values)} FROM visibility "
            f"WHERE namespace_id = ? AND {where.text} AND {resume.text} ORDER BY {order.text} LIMIT ?",
            (
                *[p for e in sort_values for p in e.params],
                namespace_id,
                *where.params,
                *resume.params,
                *order.params,
                limit,
            ),
        )

    async def count_visibility(self, namespace_id: str, query: VisibilityQuery) -> int:
        if _too_deep_for_sql(query):
            return await scan.count_by_scan(self, namespace_id, query)
        total = 0
        for part in model.split_large_in(query.filter, IN_CHUNK) or [query.filter]:
            where = visibility_sql.where_clause(part)
            row = self._read_one(
                f"SELECT COUNT(*) FROM visibility WHERE namespace_id = ? AND {where.text}",
                (namespace_id, *where.params),
            )
            total += row[0] if row else 0
            await asyncio.sleep(0)
        return total

    async def count_visibility_groups(
        self, namespace_id: str, query: VisibilityQuery
    ) -> list[tuple[tuple[Any, ...], int]]:
        if _too_deep_for_sql(query):
            return await scan.count_groups_by_scan(self, namespace_id, query)
        where = visibility_sql.where_clause(query.filter)
        groups = [visibility_sql.attribute_expression(a) for a in query.group_by]
        columns = ", ".join(g.text for g in groups)
        rows = self._read(
            f"SELECT {columns}, COUNT(*) FROM visibility WHERE namespace_id = ? AND {where.text} "
            f"GROUP BY {columns} ORDER BY {columns}",
            (
                *[p for g in groups for p in g.params],
                namespace_id,
                *where.params,
                *[p for g in groups for p in g.params] * 2,
            ),
        )
        return [(tuple(row[:-1]), row[-1]) for row in rows]

    def _index_unindexed_visibility(self) -> None:
        """Index rows written before schema v2 (or by v1 code): their search attributes were never indexed."""
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT namespace_id, workflow_id, run_id, search_attributes FROM visibility "
                f"WHERE {visibility_sql.INDEX_COLUMN} IS NULL"
            ).fetchall()
            for namespace_id, workflow_id, run_id, search_attributes in rows:
                index = visibility_sql.index_document(
                    search_attributes, self._search_attribute_types(conn, namespace_id)
                )
                conn.execute(
                    f"UPDATE visibility SET {visibility_sql.INDEX_COLUMN} = ? WHERE {RUN_WHERE}",
                    (index, namespace_id, workflow_id, run_id),
                )

    # ---- search attribute registry ----------------------------------------------------------------------
    async def get_task_queue_config(
        self, namespace_id: str, name: str, task_type: int
    ) -> tuple[bytes, int] | None:
        row = self._read_one(
            "SELECT config, version FROM task_queue_configs WHERE namespace_id = ? AND name = ? AND task_type = ?",
            (namespace_id, name, int(task_type)),
        )
        return None if row is None else (bytes(row[0]), int(row[1]))

    async def write_task_queue_config(
        self, namespace_id: str, name: str, task_type: int, config: bytes, expected_version: int
    ) -> None:
        key = (namespace_id, name, int(task_type))
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT version FROM task_queue_configs WHERE namespace_id = ? AND name = ? AND task_type = ?",
                key,
            ).fetchone()
            if (row[0] if row else 0) != expected_version:
                raise ConditionFailedError(
                    {0: ConditionFailedError.VERSION_MISMATCH},
                    f"task queue config {name}: expected version {expected_version}, found {row[0] if row else 0}",
                )
            conn.execute(
                "INSERT OR REPLACE INTO task_queue_configs (namespace_id, name, task_type, config, version) "
                "VALUES (?, ?, ?, ?, ?)",
                (*key, config, expected_version + 1),
            )

    # ---- Nexus endpoint registry ----------------------------------------------------------------------------
    async def list_nexus_endpoints(self) -> tuple[int, list[NexusEndpointRecord]]:
        # No await between the two reads: no write of this store's connection comes between them.
        row = self._read_one("SELECT version FROM nexus_endpoints_table WHERE partition = 0")
        rows = self._read("SELECT id, version, data FROM nexus_endpoints ORDER BY id")
        return (row[0] if row else 0), [NexusEndpointRecord(i, int(v), bytes(d)) for i, v, d in rows]

    async def write_nexus_endpoint(self, record: NexusEndpointRecord, expected_table_version: int) -> None:
        with self._transaction() as conn:
            self._bump_nexus_table_version(conn, expected_table_version)
            conn.execute(
                "INSERT OR REPLACE INTO nexus_endpoints (id, data, version) VALUES (?, ?, ?)",
                (record.id, record.data, record.version),
            )

    async def delete_nexus_endpoint(self, endpoint_id: str, expected_table_version: int) -> None:
        with self._transaction() as conn:
            self._bump_nexus_table_version(conn, expected_table_version)
            conn.execute("DELETE FROM nexus_endpoints WHERE id = ?", (endpoint_id,))

    @staticmethod
    def _bump_nexus_table_version(conn: sqlite3.Connection, expected: int) -> None:
        row = conn.execute("SELECT version FROM nexus_endpoints_table WHERE partition = 0").fetchone()
        found = row[0] if row else 0
        if found != expected:
            raise ConditionFailedError(
                {0: ConditionFailedError.VERSION_MISMATCH},
                f"nexus endpoints: expected table version {expected}, found {found}",
            )
        conn.execute(
            "INSERT OR REPLACE INTO nexus_endpoints_table (partition, version) VALUES (0, ?)", (expected + 1,)
        )

    async def get_worker_deployment(self, namespace_id: str, name: str) -> tuple[bytes, int] | None:
        row = self._read_one(
            "SELECT state, version FROM worker_deployments WHERE namespace_id = ? AND name = ?",
            (namespace_id, name),
        )
        return None if row is None else (bytes(row[0]), int(row[1]))

    async def list_worker_deployments(self, namespace_id: str) -> list[tuple[str, bytes, int]]:
        rows = self._read(
            "SELECT name, state, version FROM worker_deployments WHERE namespace_id = ? ORDER BY name",
            (namespace_id,),
        )
        return [(name, bytes(state), int(version)) for name, state, version in rows]

    async def write_worker_deployment(
        self, namespace_id: str, name: str, state: bytes, expected_version: int
    ) -> None:
        with self._transaction() as conn:
            found = self._deployment_version(conn, namespace_id, name)
            if found != expected_version:
                raise ConditionFailedError(
                    {0: ConditionFailedError.VERSION_MISMATCH},
                    f"worker deployment {name}: expected version {expected_version}, found {found}",
                )
            conn.execute(
                "INSERT OR REPLACE INTO worker_deployments (namespace_id, name, state, version) "
                "VALUES (?, ?, ?, ?)",
                (namespace_id, name, state, expected_version + 1),
            )

    async def delete_worker_deployment(self, namespace_id: str, name: str, expected_version: int) -> None:
        with self._transaction() as conn:
            found = self._deployment_version(conn, namespace_id, name)
            if found == 0 or found != expected_version:
                raise ConditionFailedError(
                    {0: ConditionFailedError.VERSION_MISMATCH},
                    f"worker deployment {name}: expected version {expected_version}, found {found}",
                )
            conn.execute(
                "DELETE FROM worker_deployments WHERE namespace_id = ? AND name = ?", (namespace_id, name)
            )

    @staticmethod
    def _deployment_version(conn, namespace_id: str, name: str) -> int:
        row = conn.execute(
            "SELECT version FROM worker_deployments WHERE namespace_id = ? AND name = ?", (namespace_id, name)
        ).fetchone()
        return int(row[0]) if row else 0

    async def get_search_attributes(self, namespace_id: str) -> dict[str, int]:
        rows = self._read("SELECT name, type FROM search_attributes WHERE namespace_id = ?", (namespace_id,))
        return dict(rows)

    async def add_search_attributes(self, namespace_id: str, attributes: Mapping[str, int]) -> None:
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO search_attributes (namespace_id, name, type) VALUES (?, ?, ?) "
                "ON CONFLICT (namespace_id, name) DO NOTHING",
                [(namespace_id, name, int(value_type)) for name, value_type in attributes.items()],
            )

    async def remove_search_attributes(self, namespace_id: str, names: Iterable[str]) -> None:
        with self._transaction() as conn:
            conn.executemany(
                "DELETE FROM search_attributes WHERE namespace_id = ? AND name = ?",
                [(namespace_id, name) for name in names],
            )

    @staticmethod
    def _search_attribute_types(conn: sqlite3.Connection, namespace_id: str) -> dict[str, ValueType]:
        rows = conn.execute(
            "SELECT name, type FROM search_attributes WHERE namespace_id = ?", (namespace_id,)
        )
        return search_attribute_types(dict(rows.fetchall()))

    # ---- schedules and batch operations: versioned rows of a shard, written fenced by its range id --------
    def _get_shard_row(
        self, table: str, id_column: str, columns: tuple[str, ...], key: tuple
    ) -> tuple | None:
        return self._read_one(
            f"SELECT {_columns(columns)} FROM {table} WHERE shard_id = ? AND namespace_id = ? AND {id_column} = ?",
            key,
        )

    def _list_shard_rows(
        self, table: str, id_column: str, columns: tuple[str, ...], shard_id: int, namespace_id: str | None
    ) -> list[tuple]:
        where, params = "shard_id = ?", [shard_id]
        if namespace_id is not None:
            where, params = where + " AND namespace_id = ?", [shard_id, namespace_id]
        return self._read(
            f"SELECT {_columns(columns)} FROM {table} WHERE {where} ORDER BY namespace_id, {id_column}",
            params,
        )

    def _write_shard_row(
        self,
        table: str,
        id_column: str,
        columns: tuple[str, ...],
        shard_id: int,
        range_id: int,
        record: object,
        expected_version: int | None,
    ) -> None:
        """Insert (expected_version None: the row must not exist) or replace the row at that version."""
        key = (shard_id, record.namespace_id, getattr(record, id_column))
        with self._transaction() as conn:
            self._check_range_id(conn, shard_id, range_id)
            row = conn.execute(
                f"SELECT version FROM {table} WHERE shard_id = ? AND namespace_id = ? AND {id_column} = ?",
                key,
            ).fetchone()
            if expected_version is None and row is not None:
                raise ConditionFailedError({0: ConditionFailedError.ALREADY_EXISTS})
            if expected_version is not None and (row is None or row[0] != expected_version):
                raise ConditionFailedError({0: ConditionFailedError.VERSION_MISMATCH})
            conn.execute(
                f"INSERT OR REPLACE INTO {table} ({_columns(('shard_id', *columns))}) "
                f"VALUES ({_placeholders(('shard_id', *columns))})",
                (shard_id, *_values(record, columns)),
            )

    async def get_schedule(self, shard_id: int, namespace_id: str, schedule_id: str) -> ScheduleRecord | None:
        row = self._get_shard_row("schedules", "schedule_id", SCHEDULE, (shard_id, namespace_id, schedule_id))
        return None if row is None else ScheduleRecord(*row)

    async def list_schedules(self, shard_id: int, namespace_id: str | None = None) -> list[ScheduleRecord]:
        rows = self._list_shard_rows("schedules", "schedule_id", SCHEDULE, shard_id, namespace_id)
        return [ScheduleRecord(*row) for row in rows]

    async def write_schedule(
        self, shard_id: int, range_id: int, record: ScheduleRecord, expected_version: int | None
    ) -> None:
        self._write_shard_row(
            "schedules", "schedule_id", SCHEDULE, shard_id, range_id, record, expected_version
        )

    async def delete_schedule(
        self, shard_id: int, range_id: int, namespace_id: str, schedule_id: str, expected_version: int
    ) -> None:
        with self._transaction() as conn:
            self._check_range_id(conn, shard_id, range_id)
            deleted = conn.execute(
                "DELETE FROM schedules WHERE shard_id = ? AND namespace_id = ? AND schedule_id = ? AND version = ?",
                (shard_id, namespace_id, schedule_id, expected_version),
            ).rowcount
            if deleted != 1:
                raise ConditionFailedError({0: ConditionFailedError.VERSION_MISMATCH})

    async def get_batch(self, shard_id: int, namespace_id: str, job_id: str) -> BatchRecord | None:
        row = self._get_shard_row("batch_operations", "job_id", BATCH, (shard_id, namespace_id, job_id))
        return None if row is None else BatchRecord(*row)

    async def list_batches(self, shard_id: int, namespace_id: str | None = None) -> list[BatchRecord]:
        rows = self._list_shard_rows("batch_operations", "job_id", BATCH, shard_id, namespace_id)
        return [BatchRecord(*row) for row in rows]

    async def write_batch(
        self, shard_id: int, range_id: int, record: BatchRecord, expected_version: int | None
    ) -> None:
        self._write_shard_row(
            "batch_operations", "job_id", BATCH, shard_id, range_id, record, expected_version
        )

    # ---- plumbing ----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE takes the write lock first, so conditions read inside stay true until COMMIT."""
        conn = self._conn
        with _unavailable_on_db_error():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
                    conn.execute("ROLLBACK")
                raise

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with _unavailable_on_db_error():
            return self._conn.execute(sql, params).fetchall()

    def _read_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with _unavailable_on_db_error():
            return self._conn.execute(sql, params).fetchone()

    def _write(self, sql: str, params: Sequence[Any] = ()) -> None:
        """One statement in autocommit mode is its own transaction."""
        with _unavailable_on_db_error():
            self._conn.execute(sql, params)


# SQLite's parser overflows its stack ("parser stack overflow") near 30 nested AND / OR / NOT levels; the
# reference accepts queries nested up to 199 levels. Deeper filters are evaluated in Python (scan.py).
SQL_MAX_FILTER_DEPTH = 16
# SQLite takes ~0.2 s for an IN of 150k values (a 1.9 MB query): such lists are run in parts of this many
# values, yielding to the event loop between parts.
IN_CHUNK = 5000


def _too_deep_for_sql(query: VisibilityQuery) -> bool:
    return filter_depth(query.filter) > SQL_MAX_FILTER_DEPTH


def _connect(path: str | None) -> sqlite3.Connection:
    """A connection in autocommit mode; durable settings for a file, none needed in memory."""
    in_memory = path is None or path == ":memory:"
    try:
        conn = sqlite3.connect(":memory:" if in_memory else path, isolation_level=None)
    except sqlite3.OperationalError as e:
        raise StoreUnavailableError(f"sqlite: cannot open {path}: {e}") from e
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if not in_memory:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            log.warning(
                "sqlite: WAL is not available for %s (journal_mode=%s); commits stay durable", path, mode
            )
        conn.execute("PRAGMA synchronous = FULL")
    return conn
