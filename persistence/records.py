"""Plain records exchanged between the server roles and a store.

The store treats workflow state and history as opaque bytes: it never interprets Temporal protos. What it
does own are the conditions (range id, record version, current-run pointer) that keep concurrent writers
honest, because those are what a database can check atomically.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass
class ClusterMetadata:
    """Facts fixed when a cluster is created; a node refuses to start if its config disagrees."""

    cluster_name: str
    history_shard_count: int
    # The key task tokens are sealed with (HMAC-SHA256), shared by every node. A store made before it
    # existed has none (b""): the first node to start records the one it proposes, and all agree on it.
    task_token_secret: bytes = field(default=b"", repr=False)


@dataclass
class ShardInfo:
    """One history shard's row. `range_id` fences writers; ack levels say what queue work is done."""

    shard_id: int
    range_id: int
    # Transfer tasks with task_id <= transfer_ack_level have been executed.
    transfer_ack_level: int = 0
    # Timer tasks firing strictly before this time (ms since epoch) have been executed.
    timer_ack_level_ms: int = 0


@dataclass(frozen=True)
class ExecutionKey:
    namespace_id: str
    workflow_id: str
    run_id: str


@dataclass
class ExecutionRecord:
    """A run's mutable state as stored. `state` is serialized by the history role."""

    namespace_id: str
    workflow_id: str
    run_id: str
    state: bytes
    db_record_version: int

    @property
    def key(self) -> ExecutionKey:
        return ExecutionKey(self.namespace_id, self.workflow_id, self.run_id)


class RunStatus(enum.IntEnum):
    """The lifecycle of a run as the current-run pointer records it (for id-reuse decisions)."""

    RUNNING = 1
    CLOSED = 2


@dataclass
class CurrentRunRecord:
    """Which run of a workflow id is the current one, and how it ended (for id-reuse policies)."""

    namespace_id: str
    workflow_id: str
    run_id: str
    status: RunStatus
    # temporal.api.enums.v1.WorkflowExecutionStatus of the run (RUNNING, COMPLETED, FAILED...).
    execution_status: int
    # Request id of the start that created the run: a retried start with the same id is not a conflict.
    create_request_id: str
    start_time_ms: int = 0
    close_time_ms: int = 0


class CurrentRunMode(enum.Enum):
    """How a transition touches the current-run pointer of its workflow id."""

    # A brand-new workflow id: the pointer must not exist yet.
    CREATE = "create"
    # A new run replaces a previous (closed, or being terminated) run: the pointer must name `previous_run_id`.
    REPLACE = "replace"
    # The same run changes status (it closes): the pointer must still name this run.
    UPDATE = "update"


@dataclass
class CurrentRunWrite:
    mode: CurrentRunMode
    record: CurrentRunRecord
    previous_run_id: str | None = None


@dataclass
class TransferTask:
    """Work to do right after a commit: dispatch a workflow/activity task, record visibility, ..."""

    task_id: int
    namespace_id: str
    workflow_id: str
    run_id: str
    kind: str
    # Kind-specific fields, serialized by the history role (JSON bytes).
    data: bytes = b""


@dataclass
class TimerTask:
    """Work due at `fire_time_ms`: a user timer, a timeout, a retry backoff."""

    fire_time_ms: int
    task_id: int
    namespace_id: str
    workflow_id: str
    run_id: str
    kind: str
    data: bytes = b""


@dataclass
class ExecutionWrite:
    """Everything one workflow transition writes in the shard's conditional batch.

    `expected_version` None means the execution row must not exist yet (a new run). Otherwise the stored
    row's db_record_version must equal it. The row is written with `record.db_record_version`.
    """

    record: ExecutionRecord
    expected_version: int | None
    current_run: CurrentRunWrite | None = None
    transfer_tasks: list[TransferTask] = field(default_factory=list)
    timer_tasks: list[TimerTask] = field(default_factory=list)


@dataclass
class HistoryNode:
    """A batch of history events (a serialized temporal.api.history.v1.History).

    Keyed by (run_id, node_id = first event id, txn_id). Appending is idempotent and unconditional; a
    node that no committed state points at is invisible to readers, who pass the last committed txn id.
    """

    namespace_id: str
    workflow_id: str
    run_id: str
    node_id: int
    txn_id: int
    events: bytes
    # Id of the last event in the batch, so readers can stop without decoding.
    last_event_id: int = 0


@dataclass(frozen=True)
class TaskQueueKey:
    namespace_id: str
    name: str
    # temporal.api.enums.v1.TaskQueueType: 1 workflow, 2 activity.
    task_type: int
    partition: int = 0


@dataclass
class TaskQueueInfo:
    """A task-queue partition's metadata row: its lease (`range_id`) and how far it has been consumed."""

    key: TaskQueueKey
    range_id: int
    ack_level: int = 0


@dataclass
class QueueTask:
    """A persisted backlog task of a task-queue partition (points at a workflow/activity task in history)."""

    task_id: int
    namespace_id: str
    workflow_id: str
    run_id: str
    scheduled_event_id: int
    create_time_ms: int = 0
    # 0 means no expiry (schedule-to-start timeouts are enforced by history's timers, this just skips work).
    expiry_time_ms: int = 0
    data: bytes = b""


@dataclass
class NamespaceRecord:
    id: str
    name: str
    # Serialized temporal.api.namespace.v1 info/config (NamespaceInfo + NamespaceConfig) owned by the frontend.
    data: bytes
    # Bumped by every update; updates are conditional on it.
    notification_version: int = 0


@dataclass
class NexusEndpointRecord:
    """One Nexus endpoint of the cluster's registry."""

    id: str
    # Bumped by every update of this endpoint (UpdateNexusEndpoint names the version it read).
    version: int
    # Serialized temporal.api.nexus.v1.Endpoint owned by the frontend; opaque to the store.
    data: bytes


@dataclass
class VisibilityRecord:
    """What list/count/describe-by-query see of a run."""

    namespace_id: str
    workflow_id: str
    run_id: str
    workflow_type: str
    task_queue: str
    status: int
    start_time_ms: int
    execution_time_ms: int = 0
    close_time_ms: int = 0
    history_length: int = 0
    # Serialized memo / search attributes (temporal.api.common.v1 Memo, SearchAttributes).
    memo: bytes = b""
    search_attributes: bytes = b""
    # Lineage: the parent ("" for a top-level run) and the root of the run's tree (itself when top-level).
    parent_workflow_id: str = ""
    parent_run_id: str = ""
    root_workflow_id: str = ""
    root_run_id: str = ""
    state_transition_count: int = 0
    history_size_bytes: int = 0


@dataclass
class ScheduleRecord:
    """A schedule's state, kept in the shard that owns (namespace, schedule id) and fenced like a run.

    `state` is serialized by the scheduler (opaque here); `version` is its optimistic-concurrency counter:
    every write names the version it read, so two writers (an RPC and a firing) never overwrite each other.
    """

    namespace_id: str
    schedule_id: str
    state: bytes
    version: int


@dataclass
class BatchRecord:
    """A batch operation's state (StartBatchOperation), kept like a schedule in the shard that owns
    (namespace, job id): `state` is serialized by the batcher (opaque here), `version` is its
    optimistic-concurrency counter, so a page of progress is committed by the shard's owner only."""

    namespace_id: str
    job_id: str
    state: bytes
    version: int
