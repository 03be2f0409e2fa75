"""The matching role: routes tasks from history to pollers through task-queue partitions.

A poll that receives a task asks history to record it as started; history answers with everything the
worker needs (the poll response). A task whose run moved on is dropped, never retried.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from temporalio.api.common.v1 import WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.query.v1 import WorkflowQuery
from temporalio.api.taskqueue.v1 import TaskQueue, TaskQueueConfig, TaskQueueStats, TaskQueueStatus
from temporalio.api.workflowservice.v1 import (
    PollActivityTaskQueueResponse,
    PollWorkflowTaskQueueResponse,
    RespondQueryTaskCompletedRequest,
    UpdateTaskQueueConfigRequest,
)

from hourglass.cluster.errors import (
    DeadlineExceeded,
    NotFound,
    ServiceError,
    ShardNotOwned,
    StickyWorkerUnavailable,
)
from hourglass.cluster.history.engine import HistoryEngine, TaskGone
from hourglass.cluster.history.limits import LIMITS
from hourglass.cluster.history.paging import RESPONSE_LIMIT_BYTES, HistoryCursor, history_budget
from hourglass.cluster.history.timeutil import now_ms, to_timestamp
from hourglass.cluster.history.tokens import TaskToken
from hourglass.cluster.matching.partition import MatchedTask, Partition, QueryRequest
from hourglass.cluster.matching.queue_config import QueueConfigs, queue_rate
from hourglass.cluster.matching.stats import merge
from hourglass.cluster.security.task_tokens import TaskTokenCodec, new_secret
from hourglass.persistence.records import TaskQueueKey
from hourglass.persistence.store import Store

log = logging.getLogger(__name__)

WORKFLOW = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
ACTIVITY = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
STICKY = TaskQueueKind.TASK_QUEUE_KIND_STICKY
# A sticky queue with no poll for this long has lost its worker: tasks go to the normal queue (reference).
STICKY_POLLER_UNAVAILABLE_WINDOW_S = 10.0


class MatchingEngine:
    def __init__(self, store: Store, history: HistoryEngine) -> None:
        self.store = store
        # The history engine on a single node; the routing proxy in a cluster.
        self.history = history
        self._partitions: dict[TaskQueueKey, Partition] = {}
        self._queries: dict[str, QueryRequest] = {}
        # In a cluster: this member's id (query ids name the member that waits for the answer), whether
        # it owns a partition now, and the epoch-based write check of its partitions.
        self.member_id = ""
        self.owns: Callable[[TaskQueueKey], bool] | None = None
        # The membership epoch while this node may write (None: it may not); partitions keep the epoch
        # they were opened in and stop writing when it changes.
        self.write_guard: Callable[[], int | None] | None = None
        # Seals query task tokens; the node sets the cluster's codec (see HistoryEngine.task_tokens).
        self.task_tokens = TaskTokenCodec(new_secret())
        # UpdateTaskQueueConfig's settings; the queue rate limit is applied to this node's partitions.
        self.configs = QueueConfigs(store)

    def partition(self, namespace_id: str, name: str, task_type: int, kind: int = 0) -> Partition:
        key = TaskQueueKey(namespace_id, name, task_type, 0)
        p = self._partitions.get(key)
        if p is None or p.closed:
            if self.owns is not None and not self.owns(key):
                raise ShardNotOwned(f"task queue partition {name} is not owned by this node")
            writable = None
            epoch = None
            if self.write_guard is not None:
                guard = self.write_guard
                epoch = guard()
                writable = lambda: epoch is not None and guard() == epoch  # noqa: E731
            # Sticky queues belong to one worker process and are never persisted.
            p = Partition(
                key, self.store, persistent=kind != TaskQueueKind.TASK_QUEUE_KIND_STICKY, writable=writable
            )
            p.epoch = epoch
            self._partitions[key] = p
        return p

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
        return len(gone)

    async def poller_info(
        self, namespace_id: str, name: str, task_type: int
    ) -> list[tuple[str, float, str, float]]:
        """(identity, seconds since its last poll, build id, the rate it asked for) of the pollers of a
        task queue (DescribeTaskQueue)."""
        now = asyncio.get_running_loop().time()
        return [
            (identity, now - seen, *partition.poller_details.get(identity, ("", 0.0)))
            for partition in self.partitions_of(namespace_id, name, task_type)
            for identity, seen in partition.last_poll.items()
        ]

    async def queue_stats(self, namespace_id: str, name: str, task_type: int) -> TaskQueueStats:
        """Backlog count and age, add and dispatch rates of a task queue (DescribeTaskQueue)."""
        partition = self.partition(namespace_id, name, task_type)
        await partition.load()
        return merge([p.describe_stats() for p in self.partitions_of(namespace_id, name, task_type)])

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

    async def queue_status(self, namespace_id: str, name: str, task_type: int) -> TaskQueueStatus:
        """The legacy TaskQueueStatus of a task queue's partition (DescribeTaskQueue in legacy mode)."""
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
    ) -> None:
        if kind == STICKY:
            partition = self.sticky_partition(namespace_id, task_queue)
            if partition is None:
                raise StickyWorkerUnavailable()
        else:
            partition = self.partition(namespace_id, task_queue, WORKFLOW)
        await partition.add(MatchedTask(namespace_id, execution, scheduled_event_id))

    async def add_activity_task(
        self,
        namespace_id: str,
        task_queue: str,
        execution: WorkflowExecution,
        scheduled_event_id: int,
        attempt: int,
    ) -> None:
        await self.partition(namespace_id, task_queue, ACTIVITY).add(
            MatchedTask(namespace_id, execution, scheduled_event_id, attempt)
        )

    # ---- from pollers ----------------------------------------------------------------------------------
    async def poll_workflow_task(
        self, namespace_id: str, task_queue: str, kind: int, identity: str, timeout: float, build_id: str = ""
    ) -> PollWorkflowTaskQueueResponse:
        partition = self.partition(namespace_id, task_queue, WORKFLOW, kind)
        rate = (
            None
            if kind == TaskQueueKind.TASK_QUEUE_KIND_STICKY
            else await self.queue_rate(namespace_id, task_queue, WORKFLOW)
        )
        deadline = asyncio.get_running_loop().time() + timeout
        while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            task = await partition.poll(remaining, identity, build_id, rate_limit=rate)
            if task is None:
                break
            if task.query is not None:
                try:
                    return await self._query_task_response(task, task_queue)
                except ServiceError as e:
                    if not task.query.result.done():
                        task.query.result.set_exception(e)
                    continue
            response = await self._deliver(
                partition,
                task,
                self.history.record_workflow_task_started(
                    namespace_id,
                    task.execution,
                    task.scheduled_event_id,
                    str(uuid.uuid4()),
                    identity,
                    TaskQueue(name=task_queue, kind=kind),
                    build_id,
                ),
            )
            if response is not None:
                return response
        return PollWorkflowTaskQueueResponse()

    async def poll_activity_task(
        self,
        namespace_id: str,
        namespace: str,
        task_queue: str,
        identity: str,
        timeout: float,
        build_id: str = "",
        max_tasks_per_second: float = 0.0,
    ) -> PollActivityTaskQueueResponse:
        partition = self.partition(namespace_id, task_queue, ACTIVITY)
        rate = await self.queue_rate(namespace_id, task_queue, ACTIVITY)
        deadline = asyncio.get_running_loop().time() + timeout
        while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            task = await partition.poll(remaining, identity, build_id, max_tasks_per_second, rate_limit=rate)
            if task is None:
                break
            response = await self._deliver(
                partition,
                task,
                self.history.record_activity_task_started(
                    namespace_id,
                    namespace,
                    task.execution,
                    task.scheduled_event_id,
                    task.attempt,
                    str(uuid.uuid4()),
                    identity,
                    task_queue,
                ),
            )
            if response is not None:
                return response
        return PollActivityTaskQueueResponse()

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
    ):
        """Dispatch a query to a worker and wait for its answer. A sticky run is asked on its sticky queue
        first (that worker has it cached), for at most `sticky_timeout`; failing that its stickiness is
        reset and the query goes to the normal queue, as on the reference."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if sticky_queue:
            partition = self.sticky_partition(namespace_id, sticky_queue)
            if partition is not None:
                try:
                    return await self._query(partition, execution, query, min(sticky_timeout, timeout))
                except DeadlineExceeded:
                    pass
            try:
                await self.history.reset_sticky_task_queue(namespace_id, execution)
            except NotFound:
                pass  # closed meanwhile: the normal queue's worker can still answer
        partition = self.partition(namespace_id, task_queue, WORKFLOW)
        return await self._query(partition, execution, query, max(deadline - loop.time(), 0.0))

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
            started_event_id=ms.last_completed_workflow_task_started_event_id,
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
