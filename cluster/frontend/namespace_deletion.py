"""DeleteNamespace: mark the namespace deleted and rename it at once, then delete its runs, its schedules
and finally its record in the background, as the reference's delete-namespace system workflow does.

The namespace record is the only state a deletion needs: its state DELETED says that its runs are still
to be deleted. Every frontend looks for such namespaces when it starts and every RECLAIM_INTERVAL_S, so a
node killed in the middle of a deletion (or the node that took the call gone for good) leaves the work to
the next pass; each step is idempotent (a run or schedule already gone is skipped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution

from hourglass.cluster.errors import FailedPrecondition, InvalidArgument, NamespaceNotFound, NotFound
from hourglass.cluster.frontend.namespaces import Namespace, NamespaceRegistry
from hourglass.cluster.history.limits import LIMITS
from hourglass.persistence.store import Store

log = logging.getLogger(__name__)

# The reference's own namespace, which it refuses to delete (Hourglass has none, but refuses it the same).
SYSTEM_NAMESPACE = "temporal-system"
SYSTEM_NAMESPACE_ID = "32049b68-7872-4094-8e63-d0dd59896a83"
# How often each frontend looks for deleted namespaces whose runs are left (after a restart, say).
RECLAIM_INTERVAL_S = 30.0
# Runs deleted per page of visibility.
RECLAIM_PAGE = 500


class NamespaceDeleter:
    def __init__(
        self,
        namespaces: NamespaceRegistry,
        store: Store,
        history: Any,
        schedules: Any,
        interval_s: float = RECLAIM_INTERVAL_S,
    ) -> None:
        self.namespaces = namespaces
        self.store = store
        self.history = history  # the engine or its routing proxy: delete_workflow runs on the run's shard
        self.schedules = schedules
        self.interval_s = interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def delete(self, name: str, namespace_id: str) -> str:
        """Mark the namespace deleted (renamed) and wake the background pass; the new name is answered."""
        if name and namespace_id:
            raise InvalidArgument("Only one of namespace name or Id should be set on request.")
        if not name and not namespace_id:
            raise InvalidArgument("Namespace not set on request.")
        if name == SYSTEM_NAMESPACE or namespace_id == SYSTEM_NAMESPACE_ID:
            raise FailedPrecondition("unable to delete system namespace")
        ns = await self.namespaces.get(name) if name else await self.namespaces.get_by_id(namespace_id)
        marked = await self.namespaces.mark_deleted(ns)
        log.info("namespace %s (%s) marked deleted as %s; deleting its runs", ns.name, ns.id, marked.name)
        self._wake.set()
        return marked.name

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="namespace-deletion")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.reclaim_all()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning(
                    "deleting the runs of deleted namespaces failed; next pass retries", exc_info=True
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()

    async def reclaim_all(self) -> None:
        """One pass: every namespace marked deleted loses its runs and schedules, then its record."""
        for ns in await self.namespaces.list():
            if ns.deleted:
                await self.reclaim(ns)

    async def reclaim(self, ns: Namespace) -> None:
        """Runs are deleted at `frontend.deleteNamespaceDeleteActivityRPS` per second at most."""
        await self._delete_schedules(ns)
        loop = asyncio.get_running_loop()
        started, deleted = loop.time(), 0
        while True:
            page = await self.store.list_visibility(ns.id, RECLAIM_PAGE)
            if not page:
                break
            for record in page:
                execution = WorkflowExecution(workflow_id=record.workflow_id, run_id=record.run_id)
                with contextlib.suppress(NotFound, NamespaceNotFound):
                    await self.history.delete_workflow(ns.id, execution)
                # Also when the run itself was gone already: the page must shrink.
                await self.store.delete_visibility(ns.id, record.workflow_id, record.run_id)
                deleted += 1
                ahead = started + deleted / LIMITS.delete_namespace_rps - loop.time()
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await self.namespaces.remove(ns)
        log.info("namespace %s (%s) deleted", ns.name, ns.id)

    async def _delete_schedules(self, ns: Namespace) -> None:
        if self.schedules is None:
            return
        for state in await self.schedules.list(ns.id):
            with contextlib.suppress(NotFound):
                await self.schedules.delete(ns.id, state.schedule_id)
