"""The matching role: routes tasks from history to pollers through task-queue partitions.

A poll that receives a task asks history to record it as started; history answers with everything the
worker needs (the poll response). A task whose run moved on is dropped, never retried.

A normal queue has several partitions (partition_config.py), each placed on the ring on its own. Adds
and polls that name no partition pick one at random. A partition hands a task no local poller takes to
its parent (sync match there), and sends a poll it has no task for to its parent, so polls and tasks meet
at the root whichever partitions they landed on; a non-root partition's backlog is pumped to the parent,
one task at a time, so pollers sitting elsewhere drain it. All of that goes through `peers`: this engine
on one node, the routing proxy (to each partition's owner) in a cluster.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable

from temporalio.api.common.v1 import WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.nexus.v1 import Request as NexusRequest
from temporalio.api.query.v1 import WorkflowQuery
from temporalio.api.taskqueue.v1 import TaskQueue, TaskQueueConfig, TaskQueueStats, TaskQueueStatus
from temporalio.api.worker.v1 import WorkerHeartbeat
from temporalio.api.workflowservice.v1 import (
    CountWorkersRequest,
    CountWorkersResponse,
    DescribeWorkerResponse,
    ListWorkersRequest,
    ListWorkersResponse,
    PollActivityTaskQueueResponse,
    PollNexusTaskQueueResponse,
    PollWorkflowTaskQueueResponse,
    RespondQueryTaskCompletedRequest,
    UpdateTaskQueueConfigRequest,
)

from hourglass.cluster.errors import (
    DeadlineExceeded,
    NodeUnreachable,
    NotFound,
    ServiceError,
    ShardNotOwned,
    StickyWorkerUnavailable,
    Unavailable,
)
from hourglass.cluster.history.engine import HistoryEngine, TaskGone
from hourglass.cluster.history.limits import LIMITS
from hourglass.cluster.history.paging import RESPONSE_LIMIT_BYTES, HistoryCursor, history_budget
from hourglass.cluster.history.timeutil import now_ms, to_timestamp
from hourglass.cluster.history.tokens import TaskToken
from hourglass.cluster.matching.deployments import WorkerDeployments
from hourglass.cluster.matching.partition import MatchedTask, Partition, QueryRequest
from hourglass.cluster.matching.partition_config import PartitionConfig
from hourglass.cluster.matching.partition_tree import parent_partition, partition_name, single_partition
from hourglass.cluster.matching.queue_config import QueueConfigs, queue_rate
from hourglass.cluster.matching.stats import merge
from hourglass.cluster.matching.versioning import base_queue, parse_versioned_queue, versioned_queue
from hourglass.cluster.matching.workers import WorkerRegistry
from hourglass.cluster.security.task_tokens import TaskTokenCodec, new_secret
from hourglass.persistence.records import TaskQueueKey
from hourglass.persistence.store import Store

log = logging.getLogger(__name__)

WORKFLOW = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
ACTIVITY = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
NEXUS = TaskQueueType.TASK_QUEUE_TYPE_NEXUS
STICKY = TaskQueueKind.TASK_QUEUE_KIND_STICKY
# A sticky queue with no poll for this long has lost its worker: tasks go to the normal queue (reference).
STICKY_POLLER_UNAVAILABLE_WINDOW_S = 10.0
# How long a backlog task a child partition offers to its parent waits there for a poller before the
# child takes it back and offers it again (a poll arriving at the child takes it meanwhile).
PUMP_OFFER_WAIT_S = 5.0
# Backlog tasks a child partition offers its parent at once: pollers there take the oldest first.
PUMP_PARALLEL = 4
# After a failed forward (the parent's owner is moving), how long before the next attempt.
FORWARD_RETRY_S = 1.0
# Tasks of a version's backlog one redirect looks at, at most (the ones that stay are held meanwhile).
VERSION_REDIRECT_BATCH = 1000
# While pollers wait at a root, how often it makes sure every other partition of the queue has read its
# persisted backlog (after a restart or a move, nothing else may touch a partition nobody polls directly).
CHILD_WAKE_INTERVAL_S = 5.0
# Errors that mean "the parent partition cannot be reached right now": fall back to this partition.
_FORWARD_ERRORS = (ShardNotOwned, Unavailable, NodeUnreachable, DeadlineExceeded)


class MatchingEngine:
    def __init__(self, store: Store, history: HistoryEngine) -> None:
        self.store = store
        # The history engine on a single node; the routing proxy in a cluster.
        self.history = history
        self._partitions: dict[TaskQueueKey, Partition] = {}
        self._queries: dict[str, QueryRequest] = {}
        # Nexus tasks dispatched from this member, waiting for the handler's answer (by Nexus task id).
        self._nexus_tasks: dict[str, QueryRequest] = {}
        # In a cluster: this member's id (query ids name the member that waits for the answer), whether
        # it owns a partition now, and the epoch-based write check of its partitions.
        self.member_id = ""
        self.owns: Callable[[TaskQueueKey], bool] | None = None
        # The membership epoch while this node may write (None: it may not); partitions keep the epoch
        # they were opened in and stop writing when it changes.
        self.write_guard: Callable[[], int | None] | None = None
        # Seals query task tokens; the node sets the cluster's codec (see HistoryEngine.task_tokens).
        self.task_tokens = TaskTokenCodec(new_secret())
        # Partitions per queue and the forwarding tree's degree (the node sets its dynamic config's).
        self.partition_config = PartitionConfig()
        # In a cluster, a non-root partition forwards at most `matching.forwarderMaxOutstandingPolls`
        # polls at once (the reference's forwarder); the others wait here, so a task the member that owns
        # this partition adds is matched here, without a hop to the root and back. On one node every poll
        # goes on to the root (False): no hop to save, and polls meeting all tasks there keeps p99 low.
        self.limit_forwarded_polls = False
        self._forwarded_polls: dict[TaskQueueKey, int] = {}
        # Where partitions are reached for forwarding and describing: this engine, or the routing proxy.
        self.peers: MatchingEngine = self
        # A namespace's name from its id, for namespace-constrained partition counts (None: unknown).
        self.namespace_name: Callable[[str], str | None] = lambda _id: None
        # The address of the member serving a partition (ListTaskQueuePartitions); "" on one node.
        self.owner_address: Callable[[TaskQueueKey], str] = lambda _key: ""
        self._pumps: dict[TaskQueueKey, asyncio.Task] = {}
        self._woken: dict[TaskQueueKey, float] = {}  # root -> when its children were last woken
        self._background: set[asyncio.Task] = set()
        # Worker heartbeats of the namespaces whose registry this member owns (in memory, as the reference).
        self.workers = WorkerRegistry()
        # UpdateTaskQueueConfig's settings; the queue rate limit is applied to this node's partitions.
        self.configs = QueueConfigs(store)
        # Worker Deployments: versions recorded from polls, and the routing of unpinned tasks to them.
        self.deployments = WorkerDeployments(store)
        self.deployments.pollers = self._recent_pollers
        # (namespace id, sticky queue) -> (normal queue, deployment, build id) of a versioned worker.
        self._sticky_versions: dict[tuple[str, str], tuple[str, str, str]] = {}

    async def note_sticky_version(
        self, namespace_id: str, sticky_queue: str, normal_queue: str, deployment: str, build_id: str
    ) -> None:
        """A versioned worker polls this sticky queue: its tasks go there only while the worker's version is
        where the run's next task would be routed (an auto-upgrade run moves to a new current version)."""
        notes = self._sticky_versions
        notes.pop((namespace_id, sticky_queue), None)
        notes[(namespace_id, sticky_queue)] = (normal_queue, deployment, build_id)
        while len(notes) > 100_000:  # oldest first: a worker gone without ShutdownWorker
            notes.pop(next(iter(notes)))

    async def _recent_pollers(self, namespace_id: str, name: str, task_type: int) -> int:
        """How many pollers polled the queue within the reference's poller history (5 minutes)."""
        rows = await self.poller_info(namespace_id, name, task_type)
        return sum(1 for row in rows if row[1] < 5 * 60)

    async def _sticky_version_routed(
        self, namespace_id: str, sticky_queue: str, execution, pinned: str = ""
    ) -> bool:
        """Whether the versioned worker behind a sticky queue is the version the run's task is routed to
        (always, for an unversioned worker; a pinned run's: its pinned version); else the task goes to the
        normal queue and on from there."""
        note = self._sticky_versions.get((namespace_id, sticky_queue))
        if note is None:
            return True
        normal, deployment, build_id = note
        if pinned:
            return pinned == f"{deployment}:{build_id}"
        route = await self.deployments.routing(namespace_id, normal, WORKFLOW)
        if route is None:
            return False
        return route.deployment == deployment and route.target(execution.workflow_id) == build_id

    async def redirect_backlog(
        self,
        namespace_id: str,
        name: str,
        task_type: int,
        partition: int = 0,
        refresh_routes: bool = False,
    ) -> int:
        """Move the backlog a partition of the queue holds to the versions its tasks are routed to now (tasks
        added before the queue had a current version, or unpinned tasks routed to a version's queue that is no
        longer where the queue routes them); answers how many moved. Each task is added to its version's
        queue before it is acknowledged here, so a failure leaves it in one place or both, never none (a
        duplicate is dropped by history as stale). `refresh_routes`: the deployment's routing changed
        (SetCurrent/SetRamping through any member): this member, which routes the partition's adds, reads
        it again first instead of using what it cached."""
        if refresh_routes:
            self.deployments.refresh_routes(namespace_id)
        if parse_versioned_queue(name) is not None:
            return await self._redirect_version_backlog(namespace_id, name, task_type)
        if name.startswith("/_sys/"):
            return 0  # a partition's name: nothing routes from there
        p = self.partition(namespace_id, name, task_type, number=partition)
        await p.prepare()
        moved = 0
        while (task := p.take_for_forwarding()) is not None:
            try:
                target = await self._target(
                    namespace_id, name, task_type, task.execution.workflow_id, task.pinned
                )
            except BaseException:
                p.give_back(task)
                raise
            if target == name:
                p.give_back(task)
                break
            await self._move(p, task, target, task_type)
            moved += 1
        return moved

    async def _redirect_version_backlog(self, namespace_id: str, name: str, task_type: int) -> int:
        """The tasks routing put on a version's queue (not the pinned ones) go where the task queue routes
        them now: the version stopped being current or ramping (the reference redirects unpinned backlog
        likewise). At most VERSION_REDIRECT_BATCH tasks are looked at per call; the others are given back
        in their order."""
        base = base_queue(name)
        p = self.partition(namespace_id, name, task_type)
        await p.prepare()
        kept: list[MatchedTask] = []
        moved = 0
        try:
            for _ in range(VERSION_REDIRECT_BATCH):
                task = p.take_for_forwarding()
                if task is None:
                    break
                if not task.routed:
                    kept.append(task)
                    continue
                try:
                    target = await self._routed(namespace_id, base, task_type, task.execution.workflow_id)
                except BaseException:
                    kept.append(task)
                    raise
                if target == name:
                    kept.append(task)
                    continue
                await self._move(p, task, target, task_type)  # gives the task back if it fails
                moved += 1
        finally:
            for task in kept:
                p.give_back(task)
        return moved

    async def _target(
        self,
        namespace_id: str,
        name: str,
        task_type: int,
        workflow_id: str,
        pinned: str,
        ramping: bool = False,
    ) -> str:
        """The physical queue a task added to `name` goes to: a pinned run's ("deployment:build") to its
        version's queue, whatever the deployment's current or ramping version; with `ramping`, to the
        ramping version's when there is one; any other as routed."""
        if name.startswith("/_sys/"):
            return name
        if pinned:
            deployment, _, build_id = pinned.partition(":")
            return versioned_queue(name, deployment, build_id)
        if ramping:
            route = await self.deployments.routing(namespace_id, name, task_type)
            if route is not None and route.ramping:
                return versioned_queue(name, route.deployment, route.ramping)
        return await self._routed(namespace_id, name, task_type, workflow_id)

    async def _routed(self, namespace_id: str, name: str, task_type: int, workflow_id: str) -> str:
        """The physical queue an unpinned task of `workflow_id` added to `name` goes to (versioning.py)."""
        if name.startswith("/_sys/"):
            return name
        route = await self.deployments.routing(namespace_id, name, task_type)
        return name if route is None else route.queue_for(name, workflow_id)

    # ---- partitions ---------------------------------------------------------------------------------------
    def read_partitions(self, namespace_id: str, name: str, task_type: int, kind: int = 0) -> int:
        """How many partitions polls spread over (and describe covers); 1 for sticky and /_sys/ queues."""
        if single_partition(name, kind):
            return 1
        return self.partition_config.read_partitions(self._namespace(namespace_id), name, task_type)

    def write_partitions(self, namespace_id: str, name: str, task_type: int, kind: int = 0) -> int:
        if single_partition(name, kind):
            return 1
        return self.partition_config.write_partitions(self._namespace(namespace_id), name, task_type)

    def _namespace(self, namespace_id: str) -> str | None:
        return self.namespace_name(namespace_id) if self.partition_config.by_namespace else None

    def choose_partition(self, namespace_id: str, name: str, task_type: int, kind: int, write: bool) -> int:
        """A partition for an add (write) or a poll (read), at random as the reference's load balancer."""
        count = (self.write_partitions if write else self.read_partitions)(
            namespace_id, name, task_type, kind
        )
        return random.randrange(count) if count > 1 else 0

    def _parent(self, key: TaskQueueKey) -> int:
        degree = self.partition_config.degree(self._namespace(key.namespace_id), key.name, key.task_type)
        return parent_partition(key.partition, degree)

    def list_partitions(self, namespace_id: str, name: str, task_type: int) -> list[tuple[str, str]]:
        """(partition name as the reference spells it, address of the member serving it) of every read
        partition of a queue (ListTaskQueuePartitions)."""
        return [
            (partition_name(name, n), self.owner_address(TaskQueueKey(namespace_id, name, task_type, n)))
            for n in range(self.read_partitions(namespace_id, name, task_type))
        ]

    def partition(
        self, namespace_id: str, name: str, task_type: int, kind: int = 0, number: int = 0
    ) -> Partition:
        key = TaskQueueKey(namespace_id, name, task_type, number)
        p = self._partitions.get(key)
        if p is None or p.closed:
            # A sticky queue is served where its worker polls, not where the ring places it
            # (sticky_placement.py).
            sticky = kind == TaskQueueKind.TASK_QUEUE_KIND_STICKY
            if self.owns is not None and not sticky and not self.owns(key):
                raise ShardNotOwned(f"task queue partition {name} is not owned by this node")
            writable = None
            epoch = None
            if self.write_guard is not None:
                guard = self.write_guard
                epoch = guard()
                writable = lambda: epoch is not None and guard() == epoch  # noqa: E731
            # Sticky queues belong to one worker process and are never persisted; Nexus tasks are only ever
            # matched synchronously (the dispatcher waits for the answer), as on the reference.
            persistent = kind != TaskQueueKind.TASK_QUEUE_KIND_STICKY and task_type != NEXUS
            p = Partition(key, self.store, persistent=persistent, writable=writable)
            p.epoch = epoch
            p.sticky = sticky
            if number > 0:
                p.on_backlog = self._start_pump
            self._partitions[key] = p
        return p

    def _start_pump(self, partition: Partition) -> None:
        """A non-root partition holds backlog: offer it up the tree until it is drained (one pump each)."""
        running = self._pumps.get(partition.key)
        if running is None or running.done():
            self._pumps[partition.key] = asyncio.get_running_loop().create_task(self._pump(partition))

    async def _pump(self, partition: Partition) -> None:
        try:
            # Checked again with no await before returning: backlog added meanwhile starts a new pump.
            while partition.ready_count and not partition.closed:
                await asyncio.gather(*(self._pump_one(partition) for _ in range(PUMP_PARALLEL)))
        finally:
            if self._pumps.get(partition.key) is asyncio.current_task():
                del self._pumps[partition.key]

    async def _offer_to_parent(self, key: TaskQueueKey, parent: int, task: MatchedTask, wait: float) -> bool:
        """Offer a task of partition `key` to its parent partition, waiting up to `wait` s for a poller."""
        return await self.peers.offer_task(
            key.namespace_id,
            key.name,
            key.task_type,
            parent,
            task.execution,
            task.scheduled_event_id,
            task.attempt,
            wait,
            task.create_time_ms,
        )

    async def _pump_one(self, partition: Partition) -> None:
        key = partition.key
        parent = self._parent(key)
        while (task := partition.take_for_forwarding()) is not None:
            if await self._moved_away(partition, task):
                continue
            failed = False
            try:
                taken = await self._offer_to_parent(key, parent, task, PUMP_OFFER_WAIT_S)
            except asyncio.CancelledError:
                partition.give_back(task)
                raise
            except Exception as e:
                log.debug("backlog of %s not offered to partition %s: %s", key, parent, e)
                taken, failed = False, True
            if taken:
                await partition.ack(task)
                continue
            partition.give_back(task)
            if failed:
                await asyncio.sleep(FORWARD_RETRY_S)

    async def _moved_away(self, partition: Partition, task: MatchedTask) -> bool:
        """Whether the pump moved a backlog task to where the queue's routing sends it now (a version
        became current meanwhile, or an old row names its pinned version) instead of offering it up the
        tree; a failure leaves it here (given back) for the next round."""
        key = partition.key
        try:
            target = await self._target(
                key.namespace_id, key.name, key.task_type, task.execution.workflow_id, task.pinned
            )
        except asyncio.CancelledError:
            partition.give_back(task)
            raise
        except Exception as e:
            log.debug("routing of %s not read: %s", key, e)
            return False
        if target == key.name:
            return False
        try:
            await self._move(partition, task, target, key.task_type)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.debug("backlog of %s not moved to %s: %s", key, target, e)
            await asyncio.sleep(FORWARD_RETRY_S)
        return True

    def _wake_children(self, root: Partition) -> None:
        """Pollers are about to wait at a root: every few seconds, have each other partition of the queue
        loaded by its owner, so a backlog it persisted before a restart or a move is pumped up here."""
        key = root.key
        loop = asyncio.get_running_loop()
        if loop.time() - self._woken.get(key, -CHILD_WAKE_INTERVAL_S) < CHILD_WAKE_INTERVAL_S:
            return
        self._woken[key] = loop.time()
        count = self.read_partitions(key.namespace_id, key.name, key.task_type)
        if count <= 1:
            return
        task = loop.create_task(self._wake(key, count))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _wake(self, key: TaskQueueKey, count: int) -> None:
        results = await asyncio.gather(
            *(
                self.peers.load_partition(key.namespace_id, key.name, key.task_type, n)
                for n in range(1, count)
            ),
            return_exceptions=True,
        )
        for n, result in enumerate(results, start=1):
            if isinstance(result, Exception):
                log.debug("partition %s of %s not loaded: %s", n, key, result)

    async def load_partition(self, namespace_id: str, name: str, task_type: int, partition: int) -> None:
        """Open a partition here and read its persisted backlog (its pump then offers it to the parent)."""
        p = self.partition(namespace_id, name, task_type, number=partition)
        await p.prepare()
        if partition > 0 and p.ready_count:
            self._start_pump(p)

    def _forwarder(self, key: TaskQueueKey):
        """The Forward of a non-root partition: offer a task to its parent, wherever that lives; a parent
        that cannot be reached just means "not taken" (the task stays here)."""
        if key.partition == 0:
            return None
        parent = self._parent(key)

        async def forward(task: MatchedTask, wait: float) -> bool:
            try:
                return await self._offer_to_parent(key, parent, task, wait)
            except _FORWARD_ERRORS as e:
                log.debug("task of %s not forwarded to partition %s: %s", key, parent, e)
                return False

        return forward

    async def offer_task(
        self,
        namespace_id: str,
        name: str,
        task_type: int,
        partition: int,
        execution: WorkflowExecution,
        scheduled_event_id: int,
        attempt: int,
        wait: float,
        create_time_ms: int = 0,
    ) -> bool:
        """A child partition offers a task to `partition` (sync match only): True once a poller here or
        further up took it and history recorded its start (or dropped it as stale)."""
        p = self.partition(namespace_id, name, task_type, number=partition)
        task = MatchedTask(
            namespace_id, execution, scheduled_event_id, attempt, create_time_ms=create_time_ms
        )
        return await p.offer(task, wait, self._forwarder(p.key))

    def sticky_partition(self, namespace_id: str, name: str) -> Partition | None:
        """The sticky queue's partition if a worker polled it lately (a sticky queue is never created by a
        task: no poller, no point)."""
        p = self._partitions.get(TaskQueueKey(namespace_id, name, WORKFLOW, 0))
        if p is None or not p.has_poller_within(STICKY_POLLER_UNAVAILABLE_WINDOW_S):
            return None
        return p

    async def unload_sticky_queue(self, namespace_id: str, name: str) -> None:
        """The worker owning the sticky queue shut down: forget the queue (on the member that holds it)."""
        key = TaskQueueKey(namespace_id, name, WORKFLOW, 0)
        p = self._partitions.get(key)
        if p is not None and not p.persistent:
            del self._partitions[key]
            p.unload()
        self._sticky_versions.pop((namespace_id, name), None)

    def backlogs(self) -> list[tuple[TaskQueueKey, int, int]]:
        """(partition, tasks waiting, creation ms of the oldest) of every persistent partition this node
        holds, for the backlog gauges. Sticky queues are left out: one per worker, never persisted."""
        return [
            (key, p.backlog_size, p.oldest_task_ms)
            for key, p in list(self._partitions.items())
            if p.persistent and not p.closed
        ]

    def partitions_of(self, namespace_id: str, name: str, task_type: int) -> list[Partition]:
        return [
            p
            for k, p in self._partitions.items()
            if k.namespace_id == namespace_id and k.name == name and k.task_type == task_type
        ]

    @property
    def partition_count(self) -> int:
        return len(self._partitions)

    def partitions_snapshot(self, limit: int) -> list[tuple[TaskQueueKey, Partition]]:
        """Up to `limit` open partitions, normal queues first (a worker's sticky queue matters less), for
        the cluster status."""
        items = sorted(
            ((k, p) for k, p in self._partitions.items() if not p.closed),
            key=lambda kp: (
                not kp[1].persistent,
                kp[0].namespace_id,
                kp[0].name,
                kp[0].task_type,
                kp[0].partition,
            ),
        )
        return items[:limit]

    def release_partitions(self, keep: Callable[[TaskQueueKey, Partition], bool]) -> int:
        """Close every partition this node should no longer serve; answers how many were closed."""
        gone = [k for k, p in self._partitions.items() if not keep(k, p)]
        for key in gone:
            self._partitions.pop(key).close()
            self._woken.pop(key, None)
            pump = self._pumps.pop(key, None)
            if pump is not None:
                pump.cancel()
        return len(gone)

    # ---- worker heartbeats: each namespace's registry lives on one member (routing.WORKER_REGISTRY) ----
    async def record_worker_heartbeats(self, namespace_id: str, heartbeats: list[WorkerHeartbeat]) -> None:
        self.workers.record(namespace_id, heartbeats)

    async def list_workers(self, namespace_id: str, request: ListWorkersRequest) -> ListWorkersResponse:
        return self.workers.list(namespace_id, request)

    async def count_workers(self, namespace_id: str, request: CountWorkersRequest) -> CountWorkersResponse:
        return self.workers.count(namespace_id, request)

    async def describe_worker(self, namespace_id: str, key: str) -> DescribeWorkerResponse:
        return self.workers.describe(namespace_id, key)

    async def complete_worker_polls(
        self, namespace_id: str, task_queue: str, task_type: int, worker_key: str, partition: int = 0
    ) -> int:
        """The polls `worker_key` has waiting on a partition of the queue answer empty (ShutdownWorker, see
        service.py: it asks every partition, polls forwarded to a parent wait there)."""
        key = TaskQueueKey(namespace_id, task_queue, task_type, partition)
        partition = self._partitions.get(key)
        return 0 if partition is None else partition.complete_worker_polls(worker_key)

    async def deployment_target(self, namespace_id: str, name: str, workflow_id: str) -> str | None:
        """The version ("deployment:build", "" = unversioned) workflow queue `name` routes new work of
        `workflow_id` to (current, or ramping for its share of ids); None when no deployment routes it.
        History tells a pinned run when this is not its version (from the stored routing, so any member
        answers alike)."""
        route = await self.deployments.routing(namespace_id, name, WORKFLOW)
        if route is None:
            return None
        build_id = route.target(workflow_id)
        return f"{route.deployment}:{build_id}" if build_id else ""

    async def versions_polled(self, namespace_id: str, name: str) -> list[str]:
        """The versions ("deployment:build") "present in" workflow queue `name`, which a pin may name: those
        whose deployment records that their workers polled it (stored, so every node and a restart agree)."""
        found = await self.deployments.versions_polling(namespace_id, name, WORKFLOW)
        return sorted(f"{deployment}:{build_id}" for deployment, build_id in found)

    async def poller_info(
        self, namespace_id: str, name: str, task_type: int
    ) -> list[tuple[str, float, str, float]]:
        """(identity, seconds since its last poll, build id, the rate it asked for) of the pollers of a
        task queue over all its partitions, each poller once (DescribeTaskQueue)."""
        count = self.read_partitions(namespace_id, name, task_type)
        parts = await asyncio.gather(
            *(self.peers.partition_pollers(namespace_id, name, task_type, n) for n in range(count))
        )
        latest: dict[str, tuple[str, float, str, float]] = {}
        for rows in parts:
            for row in rows:
                if row[0] not in latest or row[1] < latest[row[0]][1]:
                    latest[row[0]] = tuple(row)
        return list(latest.values())

    async def partition_pollers(
        self, namespace_id: str, name: str, task_type: int, partition: int = 0
    ) -> list[tuple[str, float, str, float]]:
        """The pollers one partition has seen (sticky queues included: they are partition 0)."""
        now = asyncio.get_running_loop().time()
        p = self._partitions.get(TaskQueueKey(namespace_id, name, task_type, partition))
        if p is None:
            return []
        return [
            (identity, now - seen, *p.poller_details.get(identity, ("", 0.0)))
            for identity, seen in p.last_poll.items()
        ]

    async def queue_stats(self, namespace_id: str, name: str, task_type: int) -> TaskQueueStats:
        """Backlog count and age, add and dispatch rates of a task queue, summed over its partitions
        (DescribeTaskQueue, as the reference's report_stats)."""
        count = self.read_partitions(namespace_id, name, task_type)
        return merge(
            list(
                await asyncio.gather(
                    *(self.peers.partition_stats(namespace_id, name, task_type, n) for n in range(count))
                )
            )
        )

    async def partition_stats(
        self, namespace_id: str, name: str, task_type: int, partition: int = 0
    ) -> TaskQueueStats:
        """One partition's stats; its persisted backlog is read first if nobody polled it since a restart."""
        p = self.partition(namespace_id, name, task_type, number=partition)
        await p.load()
        return p.describe_stats()

    async def queue_config(self, namespace_id: str, name: str, task_type: int) -> TaskQueueConfig:
        """The queue's stored config (DescribeTaskQueue report_config, `temporal task-queue config get`)."""
        return await self.configs.get(namespace_id, name, task_type)

    async def update_queue_config(
        self, namespace_id: str, name: str, task_type: int, request: UpdateTaskQueueConfigRequest
    ) -> TaskQueueConfig:
        """Runs on the partition's owner, so its new rate limit applies to the next dispatch."""
        return await self.configs.update(namespace_id, request)

    async def queue_rate(self, namespace_id: str, name: str, task_type: int) -> float | None:
        """The queue's configured dispatch rate (None: unlimited), read here from the store (not routed)."""
        try:
            return queue_rate(await self.configs.get(namespace_id, name, task_type))
        except Exception:
            # The store cannot be read: dispatch at the rate known before (or unlimited) rather than stall.
            log.warning("could not read the config of task queue %s", name, exc_info=True)
            return None

    async def _partition_rate(self, namespace_id: str, name: str, task_type: int) -> float | None:
        """A partition's share of the queue's dispatch rate: the reference splits it evenly over the read
        partitions, each serving its own pollers."""
        rate = await self.queue_rate(namespace_id, name, task_type)
        if rate is None:
            return None
        return rate / self.read_partitions(namespace_id, name, task_type)

    async def queue_status(self, namespace_id: str, name: str, task_type: int) -> TaskQueueStatus:
        """The legacy TaskQueueStatus of a task queue's root partition (DescribeTaskQueue in legacy mode)."""
        partition = self.partition(namespace_id, name, task_type)
        await partition.load()
        return partition.describe_status()

    # ---- from history ------------------------------------------------------------------------------------
    async def add_workflow_task(
        self,
        namespace_id: str,
        task_queue: str,
        execution: WorkflowExecution,
        scheduled_event_id: int,
        kind: int = TaskQueueKind.TASK_QUEUE_KIND_NORMAL,
        partition: int = -1,
        pinned: str = "",
        ramping: bool = False,
        member: str = "",
        routed: bool = False,
    ) -> None:
        """Add a workflow task to `partition` of the queue (-1: one chosen here); `pinned`: the deployment
        version ("deployment:build") of a pinned run, whose queue alone gets the task ("" = routed);
        `ramping`: to the queue's ramping version whatever the percentage (continue-as-new's
        USE_RAMPING_VERSION), when it has one; `routed`: an unpinned task routed to this version's queue
        (it moves on when the version stops being current or ramping). `member` (a sticky queue's
        server) is for the cluster's router: here the sticky queue is this member's own."""
        task = MatchedTask(namespace_id, execution, scheduled_event_id, routed=routed)
        if kind == STICKY:
            sticky = self.sticky_partition(namespace_id, task_queue)
            if sticky is None or not await self._sticky_version_routed(
                namespace_id, task_queue, execution, pinned
            ):
                raise StickyWorkerUnavailable()
            await sticky.add(task)
            return
        target = await self._target(
            namespace_id, task_queue, WORKFLOW, execution.workflow_id, pinned, ramping
        )
        if target != task_queue:
            await self.peers.add_workflow_task(
                namespace_id, target, execution, scheduled_event_id, routed=_routed_to(target, pinned)
            )
            return
        await self._add(namespace_id, task_queue, WORKFLOW, partition, task)

    async def add_activity_task(
        self,
        namespace_id: str,
        task_queue: str,
        execution: WorkflowExecution,
        scheduled_event_id: int,
        attempt: int,
        partition: int = -1,
        pinned: str = "",
        routed: bool = False,
    ) -> None:
        """Add an activity task to `partition` of the queue (-1: one chosen here); `pinned`, `routed` as
        above."""
        target = await self._target(namespace_id, task_queue, ACTIVITY, execution.workflow_id, pinned)
        if target != task_queue:
            await self.peers.add_activity_task(
                namespace_id,
                target,
                execution,
                scheduled_event_id,
                attempt,
                routed=_routed_to(target, pinned),
            )
            return
        task = MatchedTask(namespace_id, execution, scheduled_event_id, attempt, routed=routed)
        await self._add(namespace_id, task_queue, ACTIVITY, partition, task)

    async def _add(
        self, namespace_id: str, name: str, task_type: int, number: int, task: MatchedTask
    ) -> None:
        if number < 0:
            number = self.choose_partition(namespace_id, name, task_type, 0, write=True)
        p = self.partition(namespace_id, name, task_type, number=number)
        await p.add(task, self._forwarder(p.key))

    # ---- from pollers ----------------------------------------------------------------------------------
    async def poll_workflow_task(
        self,
        namespace_id: str,
        task_queue: str,
        kind: int,
        identity: str,
        timeout: float,
        build_id: str = "",
        partition: int = -1,
        worker_key: str = "",
        version: str = "",
    ) -> PollWorkflowTaskQueueResponse:
        """Long-poll `partition` of the queue (-1: one chosen here) for a workflow or query task; `version`:
        the poller's deployment version ("deployment:build", "" = unversioned), which history checks."""
        if partition < 0 or kind == STICKY:
            partition = (
                0
                if kind == STICKY
                else self.choose_partition(namespace_id, task_queue, WORKFLOW, kind, False)
            )
        here = self.partition(namespace_id, task_queue, WORKFLOW, kind, partition)
        rate = None if kind == STICKY else await self._partition_rate(namespace_id, task_queue, WORKFLOW)
        deadline = asyncio.get_running_loop().time() + timeout
        while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            if partition > 0:
                forwarded = await self._forward_poll(
                    here,
                    remaining,
                    identity,
                    build_id,
                    0.0,
                    lambda parent, left: self.peers.poll_workflow_task(
                        namespace_id, task_queue, kind, identity, left, build_id, parent, worker_key, version
                    ),
                )
                if forwarded is not None:
                    return forwarded
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                remaining = min(remaining, FORWARD_RETRY_S) if not here.ready_count else remaining
            if partition == 0 and kind != STICKY:
                self._wake_children(here)
            task = await here.poll(remaining, identity, build_id, worker_key=worker_key, rate_limit=rate)
            if task is None:
                if partition > 0 and not here.closed:
                    continue  # waited here (parent unreachable, or enough polls wait there): forward again
                break
            if task.pinned and not task_queue.startswith("/_sys/"):
                await self._move_pinned(here, task, task_queue, WORKFLOW)
                continue
            if task.query is not None:
                try:
                    return await self._query_task_response(task, base_queue(task_queue))
                except ServiceError as e:
                    if not task.query.result.done():
                        task.query.result.set_exception(e)
                    continue
            response = await self._deliver(
                here,
                task,
                self.history.record_workflow_task_started(
                    namespace_id,
                    task.execution,
                    task.scheduled_event_id,
                    str(uuid.uuid4()),
                    identity,
                    # A version's physical queue is still the run's task queue to history.
                    TaskQueue(name=base_queue(task_queue), kind=kind),
                    # A versioned worker's WorkflowTaskStarted carries no stamp (as on the reference).
                    "" if version else build_id,
                    version,
                ),
            )
            if response is not None:
                return response
        return PollWorkflowTaskQueueResponse()

    async def _forward_poll(self, here: Partition, remaining: float, identity, build_id, rate, poll_parent):
        """A poll on a non-root partition with no backlog goes on to the parent partition, where tasks of
        every partition meet; None when it should be served here instead (a backlog here, or the parent
        unreachable: then it waits here a little and tries again)."""
        here.note_poller(identity, build_id, rate)
        await here.prepare()
        if here.ready_count:
            return None
        key = here.key
        forwarded = self._forwarded_polls.get(key, 0)
        if self.limit_forwarded_polls and forwarded >= self.partition_config.outstanding_polls(
            self._namespace(key.namespace_id), key.name, key.task_type
        ):
            return None  # enough polls wait at the parent: this one waits here a while, then tries again
        self._forwarded_polls[key] = forwarded + 1
        try:
            return await poll_parent(self._parent(key), remaining)
        except _FORWARD_ERRORS as e:
            log.debug("poll of %s not forwarded: %s", key, e)
            return None
        finally:
            left = self._forwarded_polls.get(key, 1) - 1
            if left > 0:
                self._forwarded_polls[key] = left
            else:
                self._forwarded_polls.pop(key, None)

    async def poll_activity_task(
        self,
        namespace_id: str,
        namespace: str,
        task_queue: str,
        identity: str,
        timeout: float,
        build_id: str = "",
        max_tasks_per_second: float = 0.0,
        partition: int = -1,
        worker_key: str = "",
        version: str = "",
        sdk_name: str = "",
        sdk_version: str = "",
    ) -> PollActivityTaskQueueResponse:
        """Long-poll `partition` of the queue (-1: one chosen here) for an activity task (`sdk_name`,
        `sdk_version`: the poller's, recorded with a standalone activity's attempt)."""
        if partition < 0:
            partition = self.choose_partition(namespace_id, task_queue, ACTIVITY, 0, False)
        here = self.partition(namespace_id, task_queue, ACTIVITY, number=partition)
        rate = await self._partition_rate(namespace_id, task_queue, ACTIVITY)
        deadline = asyncio.get_running_loop().time() + timeout
        while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            if partition > 0:
                forwarded = await self._forward_poll(
                    here,
                    remaining,
                    identity,
                    build_id,
                    max_tasks_per_second,
                    lambda parent, left: self.peers.poll_activity_task(
                        namespace_id,
                        namespace,
                        task_queue,
                        identity,
                        left,
                        build_id,
                        max_tasks_per_second,
                        parent,
                        worker_key,
                        version,
                        sdk_name,
                        sdk_version,
                    ),
                )
                if forwarded is not None:
                    return forwarded
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                remaining = min(remaining, FORWARD_RETRY_S) if not here.ready_count else remaining
            if partition == 0:
                self._wake_children(here)
            task = await here.poll(
                remaining,
                identity,
                build_id,
                max_tasks_per_second,
                worker_key,
                rate_limit=rate,
            )
            if task is None:
                if partition > 0 and not here.closed:
                    continue  # waited here (parent unreachable, or enough polls wait there): forward again
                break
            if task.pinned and not task_queue.startswith("/_sys/"):
                await self._move_pinned(here, task, task_queue, ACTIVITY)
                continue
            response = await self._deliver(
                here,
                task,
                self.history.record_activity_task_started(
                    namespace_id,
                    namespace,
                    task.execution,
                    task.scheduled_event_id,
                    task.attempt,
                    str(uuid.uuid4()),
                    identity,
                    base_queue(task_queue),
                    sdk_name,
                    sdk_version,
                    build_id,  # the ActivityTaskStarted event's worker version
                    version,
                ),
            )
            if response is not None:
                return response
        return PollActivityTaskQueueResponse()

    async def _move_pinned(self, here: Partition, task: MatchedTask, name: str, task_type: int) -> None:
        """A task from a backlog row that names its pinned version (backlog_data.py) goes to that version's
        queue."""
        target = await self._target(task.namespace_id, name, task_type, "", task.pinned)
        await self._move(here, task, target, task_type)

    async def _move(self, here: Partition, task: MatchedTask, target: str, task_type: int) -> None:
        """Move a task taken from `here` to the physical queue `target`: added there first, then
        acknowledged here (a failure leaves it in one place or both; history drops a duplicate as stale)."""
        namespace_id = task.namespace_id
        routed = _routed_to(target, task.pinned)
        try:
            if task_type == WORKFLOW:
                await self.peers.add_workflow_task(
                    namespace_id, target, task.execution, task.scheduled_event_id, routed=routed
                )
            else:
                await self.peers.add_activity_task(
                    namespace_id,
                    target,
                    task.execution,
                    task.scheduled_event_id,
                    task.attempt,
                    routed=routed,
                )
        except BaseException:
            here.give_back(task)
            raise
        await here.ack(task)

    async def _deliver(self, partition: Partition, task: MatchedTask, record_started):
        """Record the start in history; on success or a stale task the task is consumed, else handed back."""
        try:
            response = await record_started
        except TaskGone as e:
            log.debug(
                "task of %s (event %s) from %s dropped: %s",
                task.execution.workflow_id,
                task.scheduled_event_id,
                partition.key.name,
                e,
            )
            await partition.ack(task)
            return None
        except BaseException:
            partition.give_back(task)
            raise
        await partition.ack(task)
        return response

    # ---- queries ---------------------------------------------------------------------------------------
    async def query_workflow(
        self,
        namespace_id: str,
        task_queue: str,
        execution: WorkflowExecution,
        query: WorkflowQuery,
        timeout: float,
        sticky_queue: str = "",
        sticky_timeout: float = 0.0,
        pinned: str = "",
        sticky_member: str = "",
    ):
        """Dispatch a query to a worker and wait for its answer. A sticky run is asked on its sticky queue
        first (that worker has it cached), for at most `sticky_timeout`; failing that its stickiness is
        reset and the query goes to the normal queue, as on the reference. `sticky_member` (the member
        serving the sticky queue) is for the cluster's router (sticky_placement.py)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if sticky_queue:
            answer = await self.query_sticky(
                namespace_id, sticky_queue, execution, query, min(sticky_timeout, timeout)
            )
            if answer is not None:
                return answer
            try:
                await self.history.reset_sticky_task_queue(namespace_id, execution)
            except NotFound:
                pass  # closed meanwhile: the normal queue's worker can still answer
        target = await self._target(namespace_id, task_queue, WORKFLOW, execution.workflow_id, pinned)
        if target != task_queue:
            # Asked of the version the run's next task would go to (a pinned run: its pinned version) (its pollers run the workflow code).
            return await self.peers.query_workflow(
                namespace_id, target, execution, query, max(deadline - loop.time(), 0.0)
            )
        partition = self.partition(namespace_id, task_queue, WORKFLOW)
        return await self._query(partition, execution, query, max(deadline - loop.time(), 0.0))

    async def query_sticky(
        self,
        namespace_id: str,
        sticky_queue: str,
        execution: WorkflowExecution,
        query: WorkflowQuery,
        timeout: float,
    ):
        """Ask the worker polling sticky queue `sticky_queue` here (it has the run cached); None if no worker
        polled it lately or none answered within `timeout`."""
        partition = self.sticky_partition(namespace_id, sticky_queue)
        if partition is None:
            return None
        try:
            return await self._query(partition, execution, query, timeout)
        except DeadlineExceeded:
            return None

    async def sticky_pollers(
        self, namespace_id: str, sticky_queue: str
    ) -> list[tuple[str, float, str, float]]:
        """The pollers of a sticky queue held here (DescribeTaskQueue of a sticky queue)."""
        return await self.partition_pollers(namespace_id, sticky_queue, WORKFLOW, 0)

    async def _query(
        self, partition: Partition, execution: WorkflowExecution, query: WorkflowQuery, timeout: float
    ):
        """Dispatch a query to a worker polling the workflow's queue and wait for its answer."""
        query_id = f"{self.member_id}|{uuid.uuid4()}" if self.member_id else str(uuid.uuid4())
        request = QueryRequest(query_id, execution, query)
        self._queries[request.query_id] = request
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            if not await partition.offer_query(request, timeout):
                raise DeadlineExceeded(
                    "query was not answered: no worker is polling the workflow's task queue"
                )
            try:
                return await asyncio.wait_for(
                    asyncio.shield(request.result), max(deadline - loop.time(), 0.01)
                )
            except TimeoutError:
                raise DeadlineExceeded("query timed out waiting for the worker's answer") from None
        finally:
            self._queries.pop(request.query_id, None)

    async def _query_task_response(self, task: MatchedTask, task_queue: str) -> PollWorkflowTaskQueueResponse:
        ms = await self.history.get_mutable_state(task.namespace_id, task.execution)
        # On the run's sticky queue the worker answers from its cache: no history (as the reference).
        sticky = bool(ms.info.sticky_task_queue) and ms.info.sticky_task_queue == task_queue
        execution = WorkflowExecution(workflow_id=ms.info.workflow_id, run_id=ms.info.run_id)
        token = TaskToken(
            task.namespace_id, execution.workflow_id, execution.run_id, 0, 0, query_id=task.query.query_id
        )
        response = PollWorkflowTaskQueueResponse(
            task_token=self.task_tokens.encode(token),
            workflow_execution=execution,
            workflow_type=WorkflowType(name=ms.info.workflow_type),
            previous_started_event_id=ms.last_completed_workflow_task_started_event_id,
            # No started event: a query task starts nothing (the reference sends 0). The Go SDK reads
            # a started event id as "history up to here" and fails the task on an empty (sticky) one.
            started_event_id=0,
            attempt=1,
            query=task.query.query,
            workflow_execution_task_queue=TaskQueue(name=ms.info.task_queue, kind=1),
            scheduled_time=to_timestamp(now_ms()),
            started_time=to_timestamp(now_ms()),
        )
        response.history.SetInParent()  # present even when empty: the SDK refuses a task without one
        if not sticky:
            # The first page of the history; the worker reads the rest with the token (paging.py).
            history, following = await self.history.read_history_page(
                ms,
                HistoryCursor(ms.info.run_id, 1, ms.next_event_id, 1).encode(),
                LIMITS.matching_history_max_page_size,
                history_budget(RESPONSE_LIMIT_BYTES, response.ByteSize()),
            )
            response.history.CopyFrom(history)
            response.next_page_token = following
        return response

    async def respond_query_task_completed(
        self, query_id: str, request: RespondQueryTaskCompletedRequest
    ) -> bool:
        pending = self._queries.get(query_id)
        if pending is None or pending.result.done():
            return False
        pending.result.set_result(request)
        return True

    # ---- Nexus tasks ---------------------------------------------------------------------------------------
    async def dispatch_nexus_task(
        self, namespace_id: str, task_queue: str, request: NexusRequest, timeout: float
    ):
        """Hand a Nexus request to a worker polling the queue and wait for its answer: the worker's
        RespondNexusTaskCompletedRequest or RespondNexusTaskFailedRequest. DeadlineExceeded when no worker
        took it, or none answered, within `timeout`."""
        partition = self.partition(namespace_id, task_queue, NEXUS)
        task_id = f"{self.member_id}|{uuid.uuid4()}" if self.member_id else str(uuid.uuid4())
        pending = QueryRequest(task_id, WorkflowExecution(), request)
        self._nexus_tasks[task_id] = pending
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            if not await partition.offer_query(pending, timeout):
                raise DeadlineExceeded("no worker is polling the Nexus task queue")
            try:
                return await asyncio.wait_for(
                    asyncio.shield(pending.result), max(deadline - loop.time(), 0.01)
                )
            except TimeoutError:
                raise DeadlineExceeded("the Nexus handler did not answer in time") from None
        finally:
            self._nexus_tasks.pop(task_id, None)

    async def poll_nexus_task(
        self, namespace_id: str, task_queue: str, identity: str, timeout: float, worker_key: str = ""
    ) -> PollNexusTaskQueueResponse:
        """Long-poll the queue's Nexus requests (one partition: they are never persisted or forwarded)."""
        here = self.partition(namespace_id, task_queue, NEXUS)
        task = await here.poll(timeout, identity, worker_key=worker_key)
        if task is None or task.query is None:
            return PollNexusTaskQueueResponse()
        if task.query.result.done():  # the dispatcher gave up meanwhile
            return PollNexusTaskQueueResponse()
        token = TaskToken(namespace_id, "", "", 0, 0, nexus_task_id=task.query.query_id)
        return PollNexusTaskQueueResponse(task_token=self.task_tokens.encode(token), request=task.query.query)

    async def respond_nexus_task(self, task_id: str, response) -> bool:
        """The worker's answer to a Nexus task; False when nobody waits for it any more."""
        pending = self._nexus_tasks.get(task_id)
        if pending is None or pending.result.done():
            return False
        pending.result.set_result(response)
        return True


def _routed_to(target: str, pinned: str) -> bool:
    """Whether a task going to `target` is unpinned work that routing sends to a version's queue."""
    return not pinned and parse_versioned_queue(target) is not None
