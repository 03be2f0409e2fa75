"""Sticky queues in a cluster: served by the member the worker polls through, not placed by the ring.

A sticky queue belongs to one worker process: never partitioned, never persisted. Placed by hash on the
matching ring like any queue, it usually sat neither on the member the worker polls through nor on the
run's history owner, so a sticky task's add, its poll and its record-started each took an internal hop.
Here the member that receives a worker's sticky poll serves that queue itself (its `home`), the frontend
that receives the worker's task completion names its home in the completion (a worker polls and
completes through the same connection), and history keeps that member beside the sticky queue in the
run's mutable state (`ExecutionInfo.sticky_member`, never shown to clients), so the next task is added
straight there: the poll takes no hop.

Nothing is lost when that member is gone or no longer knows the queue (restarted, drained): the add
fails with StickyWorkerUnavailable and history puts the task on the normal queue at once, as the
reference does for a sticky queue without a recent poller; a task already waiting on a member that dies
moves to the normal queue when its sticky schedule-to-start timeout fires (history's timer, as the
reference). A member that is draining (or has no matching role) is no home: its workers' sticky polls go
to the ring's owner of the queue, as before, and its own sticky queues are closed with its partitions.
Queries ask the sticky queue's member first; ShutdownWorker drops the queue on every member; describing a
sticky queue lists the pollers every member has seen.
"""

from __future__ import annotations

import asyncio
import logging

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.query.v1 import WorkflowQuery

from hourglass.cluster.errors import NodeUnreachable, NotFound, ShardNotOwned, StickyWorkerUnavailable
from hourglass.cluster.matching.partition import Partition

log = logging.getLogger(__name__)

STICKY = TaskQueueKind.TASK_QUEUE_KIND_STICKY
WORKFLOW = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
# Fan-out calls (ShutdownWorker's unload, describe's pollers) give a member this long to answer.
FAN_OUT_TIMEOUT_S = 5.0
# Matching methods other members call on a member for its sticky queues (beyond MATCHING_ROUTES).
STICKY_METHODS = frozenset({"query_sticky", "sticky_pollers"})


def _serves_matching(router, member_id: str) -> bool:
    m = router.placement.members.get(member_id)
    return m is not None and "matching" in m.roles


def home(router, namespace_id: str, queue: str) -> str | None:
    """The member that serves sticky queue `queue` for a worker polling through this member: this member
    while it is in the ring with the matching role, else the ring's owner of the queue (as before)."""
    if _serves_matching(router, router.member_id):
        return router.member_id
    return router.placement.partition_owner(namespace_id, queue, WORKFLOW, 0)


def keeps(partition: Partition, member_id: str, placement) -> bool:
    """Whether a member keeps a sticky queue it holds when ownership is recomputed: while it is in the ring
    (a draining member closes them with its other partitions and stops serving new ones)."""
    return member_id in placement.members


class StickyRoutes:
    """The sticky-queue operations of RoutedMatching: where each runs, and what happens when that member
    cannot be reached."""

    def __init__(self, engine, router) -> None:
        self.engine = engine
        self.router = router

    def home(self, namespace_id: str, queue: str) -> str | None:
        return home(self.router, namespace_id, queue)

    def _others(self) -> list[str]:
        me = self.router.member_id
        return [m for m in self.router.placement.members if m != me and _serves_matching(self.router, m)]

    async def add(self, args: tuple, member: str) -> None:
        """Add a sticky task (the engine's add_workflow_task arguments) on `member`, the member history
        learned serves the queue; StickyWorkerUnavailable (history then uses the normal queue) when it is
        unknown, gone from the ring or unreachable."""
        router = self.router
        if member == router.member_id:
            return await self.engine.add_workflow_task(*args)
        if not member or not _serves_matching(router, member):
            raise StickyWorkerUnavailable()
        try:
            await router.client.invoke(member, "matching", "add_workflow_task", args)
        except (NodeUnreachable, ShardNotOwned) as e:
            log.debug("sticky task not added on %s: %s", member, e.message)
            raise StickyWorkerUnavailable() from None

    async def query(
        self,
        member: str,
        namespace_id: str,
        sticky_queue: str,
        execution: WorkflowExecution,
        query: WorkflowQuery,
        timeout: float,
    ):
        """Ask the sticky worker through `member` (None: no answer there within `timeout`), then forget the
        run's stickiness when it did not answer, as the engine does on one node."""
        answer = None
        if member == self.router.member_id:
            answer = await self.engine.query_sticky(namespace_id, sticky_queue, execution, query, timeout)
        elif member and _serves_matching(self.router, member):
            try:
                answer = await self.router.client.invoke(
                    member,
                    "matching",
                    "query_sticky",
                    (namespace_id, sticky_queue, execution, query, timeout),
                    timeout + FAN_OUT_TIMEOUT_S,
                )
            except NodeUnreachable as e:
                log.debug("sticky query not asked on %s: %s", member, e.message)
        if answer is None:
            try:
                await self.engine.history.reset_sticky_task_queue(namespace_id, execution)
            except NotFound:
                pass  # closed meanwhile: the normal queue's worker can still answer
        return answer

    async def unload(self, namespace_id: str, name: str) -> None:
        """ShutdownWorker: drop the sticky queue here and on every other member (the worker may have polled
        through any of them); only this member's own failure fails the call."""
        others = self._others()
        results = await asyncio.gather(
            *(
                self.router.client.invoke(
                    m, "matching", "unload_sticky_queue", (namespace_id, name), FAN_OUT_TIMEOUT_S
                )
                for m in others
            ),
            return_exceptions=True,
        )
        for m, r in zip(others, results, strict=True):
            if isinstance(r, Exception):
                log.debug("sticky queue %s not unloaded on %s: %s", name, m, r)
        await self.engine.unload_sticky_queue(namespace_id, name)

    async def pollers(self, namespace_id: str, name: str) -> list[tuple[str, float, str, float]]:
        """(identity, seconds since its last poll, build id, rate) of the sticky queue's pollers on every
        member, each poller once (its latest poll)."""
        others = self._others()
        parts = await asyncio.gather(
            self.engine.sticky_pollers(namespace_id, name),
            *(
                self.router.client.invoke(
                    m, "matching", "sticky_pollers", (namespace_id, name), FAN_OUT_TIMEOUT_S
                )
                for m in others
            ),
            return_exceptions=True,
        )
        latest: dict[str, tuple[str, float, str, float]] = {}
        for rows in parts:
            if isinstance(rows, BaseException):
                log.debug("sticky queue %s: a member's pollers not read: %s", name, rows)
                continue
            for row in rows:
                if row[0] not in latest or row[1] < latest[row[0]][1]:
                    latest[row[0]] = tuple(row)
        return list(latest.values())
