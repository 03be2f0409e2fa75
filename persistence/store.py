"""The one store interface every backend implements (SQLite embedded, Cassandra / Astra DB).

Shaped after the reference's Cassandra layout so each method is one partition's worth of work there:
everything a workflow transition commits (shard fence, execution row, current-run pointer, tasks) shares the
shard partition, and `commit` is ONE conditional batch. All methods are async so a networked store never
blocks the event loop; the conformance suite in tests/persistence/ defines the exact semantics.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hourglass.persistence.records import (
    BatchRecord,
    ClusterMetadata,
    CurrentRunRecord,
    ExecutionRecord,
    ExecutionWrite,
    HistoryNode,
    NamespaceRecord,
    NexusEndpointRecord,
    QueueTask,
    ScheduleRecord,
    ShardInfo,
    TaskQueueInfo,
    TaskQueueKey,
    TimerTask,
    TransferTask,
    VisibilityRecord,
)
from hourglass.persistence.visibility import scan
from hourglass.persistence.visibility.model import VisibilityQuery


class Store(abc.ABC):
    """Durable state of a cluster. Implementations must be safe for concurrent use from one event loop."""

    # The store's name as GetClusterInfo reports it (persistence and visibility store), as the reference
    # names its own: "sqlite", "cassandra".
    kind: str = "unknown"

    # ---- lifecycle -------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def init_cluster_metadata(self, metadata: ClusterMetadata) -> ClusterMetadata:
        """Record the metadata if none exists; return what is stored (which may differ from the argument).

        The task-token secret is recorded at most once: with the row, or (a store made before the secret
        existed, or one recorded without it) by the first call that brings one, conditionally, so callers
        racing each other all get the same secret back.
        """

    async def schema_version(self) -> tuple[str, int]:
        """(the store's kind, the schema version it is at now), for operators (`hourglass cluster status`,
        hourglass.sdk.admin): what a rolling upgrade checks before and after `hourglass schema update`."""
        raise NotImplementedError

    # ---- shards ----------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def get_or_create_shard(self, shard_id: int) -> ShardInfo:
        """Return the shard row, creating it with range_id 0 if absent (idempotent under races)."""

    @abc.abstractmethod
    async def update_shard(self, info: ShardInfo, expected_range_id: int) -> None:
        """Write the shard row iff its stored range_id equals `expected_range_id`.

        Acquiring a shard is `update_shard(replace(info, range_id=R+1), expected_range_id=R)`.
        Raises ShardOwnershipLostError otherwise.
        """

    # ---- executions ------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def get_execution(
        self, shard_id: int, namespace_id: str, workflow_id: str, run_id: str
    ) -> ExecutionRecord | None: ...

    @abc.abstractmethod
    async def get_current_run(
        self, shard_id: int, namespace_id: str, workflow_id: str
    ) -> CurrentRunRecord | None: ...

    @abc.abstractmethod
    async def commit(self, shard_id: int, range_id: int, writes: Sequence[ExecutionWrite]) -> None:
        """Apply all `writes` atomically, or none of them.

        Conditions, all checked before anything is written:
        - the shard row's range_id equals `range_id`, else ShardOwnershipLostError;
        - per write: the execution row's db_record_version equals `expected_version` (or the row is absent
          when it is None), and the current-run pointer matches the write's CurrentRunMode;
          else ConditionFailedError naming every failing write by index.
        Then: execution rows are upserted, current-run pointers written, tasks inserted.

        Writes in one batch are checked as if applied in order: a later write touching a row (or pointer)
        an earlier write of the batch creates or changes fails with the reason it would get after it
        (`already_exists`, `version_mismatch`, `current_run_mismatch`), so group commit never lets two
        transitions of one run silently overwrite each other. A CurrentRunWrite must name the same run as
        its ExecutionWrite (ValueError otherwise). ShardOwnershipLostError.actual_range_id is None when
        the shard row does not exist.
        """

    @abc.abstractmethod
    async def delete_execution(self, shard_id: int, namespace_id: str, workflow_id: str, run_id: str) -> None:
        """Remove a run's row (and the current-run pointer if it names this run). History is separate."""

    # ---- history ---------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def append_history_node(self, node: HistoryNode) -> None:
        """Idempotent, unconditional append. Rewriting the same (run, node_id, txn_id) is harmless."""

    async def append_history_nodes(self, nodes: Sequence[HistoryNode]) -> int:
        """Append several nodes (of different runs: a group commit's) as append_history_node would, in as
        few requests as the store allows; returns how many requests that took (the writes metric). On
        failure some may have been written (harmless: appends are idempotent and unread until committed).
        """
        if len(nodes) == 1:
            await self.append_history_node(nodes[0])
        elif nodes:
            await asyncio.gather(*(self.append_history_node(node) for node in nodes))
        return len(nodes)

    @abc.abstractmethod
    async def read_history_nodes(
        self,
        namespace_id: str,
        workflow_id: str,
        run_id: str,
        min_node_id: int,
        max_txn_id: int,
        limit: int,
    ) -> list[HistoryNode]:
        """Nodes of a run with node_id >= min_node_id, ordered by node_id, at most `limit`.

        For each node_id only the node with the highest txn_id <= max_txn_id is returned: higher txn ids
        were written by transitions that never committed (or not yet).
        """

    @abc.abstractmethod
    async def delete_history(self, namespace_id: str, workflow_id: str, run_id: str) -> None: ...

    # ---- history queue tasks (shard partition) -----------------------------------------------------------
    @abc.abstractmethod
    async def get_transfer_tasks(
        self, shard_id: int, min_task_id_exclusive: int, max_task_id_inclusive: int, limit: int
    ) -> list[TransferTask]:
        """Ordered by task_id."""

    @abc.abstractmethod
    async def delete_transfer_tasks(self, shard_id: int, max_task_id_inclusive: int) -> None:
        """Range delete of every transfer task with task_id <= the bound."""

    @abc.abstractmethod
    async def get_timer_tasks(
        self, shard_id: int, min_fire_time_ms: int, max_fire_time_ms_exclusive: int, limit: int
    ) -> list[TimerTask]:
        """Timer tasks with min <= fire_time < max, ordered by (fire_time_ms, task_id)."""

    @abc.abstractmethod
    async def delete_timer_tasks(self, shard_id: int, max_fire_time_ms_exclusive: int) -> None:
        """Range delete of every timer task firing strictly before the bound."""

    @abc.abstractmethod
    async def delete_fired_timer_tasks(self, shard_id: int, timers: Sequence[tuple[int, int]]) -> None:
        """Delete executed timer tasks by (fire_time_ms, task_id), as one write (timers fire out of a range's
        order when they are retried, so they cannot be range-deleted); absent ones are ignored."""

    # ---- matching: task-queue partitions ---------------------------------------------------------------
    @abc.abstractmethod
    async def lease_task_queue(self, key: TaskQueueKey) -> TaskQueueInfo:
        """Create the partition row or bump its range_id with a condition; the caller now owns the lease."""

    @abc.abstractmethod
    async def update_task_queue(self, info: TaskQueueInfo) -> None:
        """Write ack level iff range_id still equals info.range_id, else TaskQueueLeaseLostError."""

    @abc.abstractmethod
    async def create_queue_tasks(self, key: TaskQueueKey, range_id: int, tasks: Sequence[QueueTask]) -> None:
        """Insert backlog tasks in one batch fenced by the partition's range_id (TaskQueueLeaseLostError)."""

    @abc.abstractmethod
    async def get_queue_tasks(
        self, key: TaskQueueKey, min_task_id_exclusive: int, limit: int
    ) -> list[QueueTask]:
        """Ordered by task_id."""

    @abc.abstractmethod
    async def delete_queue_tasks(self, key: TaskQueueKey, max_task_id_inclusive: int) -> None:
        """Range delete of consumed backlog tasks."""

    @abc.abstractmethod
    async def list_task_queues(self) -> list[TaskQueueInfo]:
        """Every partition row (used at start to resume backlogs)."""

    # ---- namespaces --------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_namespace(self, record: NamespaceRecord) -> None:
        """NamespaceAlreadyExistsError if the name or id is taken."""

    @abc.abstractmethod
    async def get_namespace_by_name(self, name: str) -> NamespaceRecord | None: ...

    @abc.abstractmethod
    async def get_namespace_by_id(self, namespace_id: str) -> NamespaceRecord | None: ...

    @abc.abstractmethod
    async def list_namespaces(self) -> list[NamespaceRecord]: ...

    @abc.abstractmethod
    async def update_namespace(self, record: NamespaceRecord, expected_notification_version: int) -> None:
        """Conditional on the stored notification_version; NamespaceNotFoundError / ConditionFailedError."""

    @abc.abstractmethod
    async def delete_namespace(self, namespace_id: str, expected_notification_version: int) -> None:
        """Remove the namespace (its by-id and by-name entries together), conditional on the stored
        notification_version (ConditionFailedError); a namespace already gone is not an error, so a
        deletion interrupted after this write can run again."""

    # ---- visibility --------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def upsert_visibility(self, record: VisibilityRecord) -> None: ...

    @abc.abstractmethod
    async def get_visibility(
        self, namespace_id: str, workflow_id: str, run_id: str
    ) -> VisibilityRecord | None: ...

    @abc.abstractmethod
    async def list_visibility(
        self, namespace_id: str, page_size: int, after: tuple[int, str] | None = None
    ) -> list[VisibilityRecord]:
        """Newest start first; `after` is the (start_time_ms, run_id) of the last row of the previous page."""

    @abc.abstractmethod
    async def delete_visibility(self, namespace_id: str, workflow_id: str, run_id: str) -> None: ...

    # ---- visibility queries (list filter language) -------------------------------------------------------
    # Defaults scan list_visibility and evaluate the query in Python: correct for every store, linear in
    # the namespace's size. A store that can push filters down overrides them (see SQLiteStore).
    async def query_visibility(
        self, namespace_id: str, query: VisibilityQuery, page_size: int, next_page_token: bytes = b""
    ) -> tuple[list[VisibilityRecord], bytes]:
        """One page (at most `page_size` > 0 records) of the runs matching `query`, in its sort order, and
        the opaque token of the next page (b"" when this is the last). PageTokenError for a bad token."""
        return await scan.query_by_scan(self, namespace_id, query, page_size, next_page_token)

    async def count_visibility(self, namespace_id: str, query: VisibilityQuery) -> int:
        """How many runs match the query's filter (its ORDER BY and GROUP BY are ignored)."""
        return await scan.count_by_scan(self, namespace_id, query)

    async def count_visibility_groups(
        self, namespace_id: str, query: VisibilityQuery
    ) -> list[tuple[tuple[Any, ...], int]]:
        """Matching runs counted per value of `query.group_by` (canonical values, e.g. ExecutionStatus as
        its enum number), ordered by those values."""
        return await scan.count_groups_by_scan(self, namespace_id, query)

    # ---- search attribute registry (per namespace) ---------------------------------------------------------
    # Not abstract so that stores written before the registry keep working; they answer
    # NotImplementedError until they implement it.
    async def get_search_attributes(self, namespace_id: str) -> dict[str, int]:
        """Custom search attributes registered in the namespace: name -> IndexedValueType."""
        raise NotImplementedError(f"{type(self).__name__} has no search attribute registry")

    async def add_search_attributes(self, namespace_id: str, attributes: Mapping[str, int]) -> None:
        """Register attributes; a name already registered keeps its type (adding it again is a no-op)."""
        raise NotImplementedError(f"{type(self).__name__} has no search attribute registry")

    async def remove_search_attributes(self, namespace_id: str, names: Iterable[str]) -> None:
        """Unregister attributes; names not registered are ignored. Values already stored stay."""
        raise NotImplementedError(f"{type(self).__name__} has no search attribute registry")

    # ---- task queue configuration (UpdateTaskQueueConfig) ------------------------------------------------
    # Not abstract so that stores written before it keep working; they answer NotImplementedError.
    async def get_task_queue_config(
        self, namespace_id: str, name: str, task_type: int
    ) -> tuple[bytes, int] | None:
        """The queue's serialized TaskQueueConfig and its version, or None when none was ever set."""
        raise NotImplementedError(f"{type(self).__name__} has no task queue configuration")

    async def write_task_queue_config(
        self, namespace_id: str, name: str, task_type: int, config: bytes, expected_version: int
    ) -> None:
        """Store the config with version `expected_version + 1`, iff the stored version is `expected_version`
        (0: none stored yet); ConditionFailedError `version_mismatch` otherwise."""
        raise NotImplementedError(f"{type(self).__name__} has no task queue configuration")

    # ---- Nexus endpoint registry (OperatorService *NexusEndpoint) --------------------------------------------
    # One registry per cluster with one table version: every change names the version it read, so a writer
    # that checked a name's uniqueness against the endpoints it read cannot race another writer.
    # Not abstract so that stores written before it keep working; they answer NotImplementedError.
    async def list_nexus_endpoints(self) -> tuple[int, list[NexusEndpointRecord]]:
        """The registry's table version (0: never written) and every endpoint, ordered by id."""
        raise NotImplementedError(f"{type(self).__name__} has no Nexus endpoint registry")

    async def write_nexus_endpoint(self, record: NexusEndpointRecord, expected_table_version: int) -> None:
        """Create or replace the endpoint and bump the table version to `expected_table_version + 1`, iff the
        stored table version is `expected_table_version`; ConditionFailedError `version_mismatch` otherwise."""
        raise NotImplementedError(f"{type(self).__name__} has no Nexus endpoint registry")

    async def delete_nexus_endpoint(self, endpoint_id: str, expected_table_version: int) -> None:
        """Delete the endpoint (absent: nothing to delete) and bump the table version, under the same condition
        as write_nexus_endpoint."""
        raise NotImplementedError(f"{type(self).__name__} has no Nexus endpoint registry")

    # ---- worker deployments (cluster/matching/deployments.py) ------------------------------------------
    # Not abstract for the same reason; one versioned blob per (namespace, deployment name).
    async def get_worker_deployment(self, namespace_id: str, name: str) -> tuple[bytes, int] | None:
        """The deployment's serialized state and its version, or None when there is no such deployment."""
        raise NotImplementedError(f"{type(self).__name__} has no worker deployments")

    async def list_worker_deployments(self, namespace_id: str) -> list[tuple[str, bytes, int]]:
        """(name, state, version) of every deployment of the namespace, ordered by name."""
        raise NotImplementedError(f"{type(self).__name__} has no worker deployments")

    async def write_worker_deployment(
        self, namespace_id: str, name: str, state: bytes, expected_version: int
    ) -> None:
        """Store the state with version `expected_version + 1`, iff the stored version is `expected_version`
        (0: none stored yet); ConditionFailedError `version_mismatch` otherwise."""
        raise NotImplementedError(f"{type(self).__name__} has no worker deployments")

    async def delete_worker_deployment(self, namespace_id: str, name: str, expected_version: int) -> None:
        """Delete the row iff its version is `expected_version` (ConditionFailedError otherwise, also when
        it is gone)."""
        raise NotImplementedError(f"{type(self).__name__} has no worker deployments")

    # ---- schedules (shard partition) -------------------------------------------------------------------
    # Not abstract so that stores written before schedules keep working; they answer NotImplementedError.
    async def get_schedule(self, shard_id: int, namespace_id: str, schedule_id: str) -> ScheduleRecord | None:
        """The schedule's row, or None."""
        raise NotImplementedError(f"{type(self).__name__} has no schedules")

    async def list_schedules(self, shard_id: int, namespace_id: str | None = None) -> list[ScheduleRecord]:
        """Every schedule of the shard (of one namespace when given), ordered by (namespace id, schedule id)."""
        raise NotImplementedError(f"{type(self).__name__} has no schedules")

    async def write_schedule(
        self, shard_id: int, range_id: int, record: ScheduleRecord, expected_version: int | None
    ) -> None:
        """Create (`expected_version` None: the row must not exist) or replace the row iff its stored version
        equals `expected_version`; the row is written with `record.version`. Fenced by the shard's range id
        (ShardOwnershipLostError); a failed row condition raises ConditionFailedError with reason
        `already_exists` or `version_mismatch` under index 0."""
        raise NotImplementedError(f"{type(self).__name__} has no schedules")

    async def delete_schedule(
        self, shard_id: int, range_id: int, namespace_id: str, schedule_id: str, expected_version: int
    ) -> None:
        """Delete the row iff its version is `expected_version` (ConditionFailedError `version_mismatch`
        otherwise, also when it is gone), fenced by the shard's range id."""
        raise NotImplementedError(f"{type(self).__name__} has no schedules")

    # ---- batch operations (shard partition) ----------------------------------------------------------
    # Same semantics as schedules, keyed by (namespace id, job id). Not abstract for the same reason.
    async def get_batch(self, shard_id: int, namespace_id: str, job_id: str) -> BatchRecord | None:
        """The batch's row, or None."""
        raise NotImplementedError(f"{type(self).__name__} has no batch operations")

    async def list_batches(self, shard_id: int, namespace_id: str | None = None) -> list[BatchRecord]:
        """Every batch of the shard (of one namespace when given), ordered by (namespace id, job id)."""
        raise NotImplementedError(f"{type(self).__name__} has no batch operations")

    async def write_batch(
        self, shard_id: int, range_id: int, record: BatchRecord, expected_version: int | None
    ) -> None:
        """Create (`expected_version` None) or replace the row iff its stored version equals
        `expected_version`, fenced by the shard's range id; failures as in `write_schedule`."""
        raise NotImplementedError(f"{type(self).__name__} has no batch operations")
