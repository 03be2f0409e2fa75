"""Drainage of Worker Deployment versions: a version that stops being current or ramping is DRAINING, and
becomes DRAINED once visibility counts no running workflow pinned to it, as the reference's version workflow
does (refreshDrainageInfo): first after `matching.wv.VersionDrainageStatusVisibilityGracePeriod` (visibility
may lag behind the last pinned task), then every `matching.wv.VersionDrainageStatusRefreshInterval`.

One monitor runs per node; it checks the deployments whose home shard (that of the reference's deployment
workflow id) the node owns, so each version is checked by one member of a cluster. A check that races a
routing change is dropped by the registry's conditional write (deployments.record_drainage).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from hourglass.cluster.matching.deployments import WorkerDeployments
from hourglass.persistence.store import Store

log = logging.getLogger(__name__)

# How often the monitor looks again for versions that started draining on another member (a change made
# through this node wakes it at once), and its shortest sleep.
RESCAN_S = 5.0
MIN_SLEEP_S = 0.05
DEPLOYMENT_WORKFLOW_PREFIX = "temporal-sys-worker-deployment:"

# (namespace id, "<deployment>:<build id>") -> running workflows pinned to that version.
PinnedCount = Callable[[str, str], Awaitable[int]]


def pinned_query(version: str) -> str:
    """The reference's drainage query (makeDeploymentQuery), `version` being "<deployment>:<build id>"."""
    escaped = version.replace("\\", "\\\\").replace("'", "\\'")
    return (
        f"TemporalWorkerDeploymentVersion = '{escaped}' AND TemporalWorkflowVersioningBehavior = 'Pinned' "
        "AND ExecutionStatus = 'Running'"
    )


class DrainageMonitor:
    """Checks every due draining version of the deployments this node is home to."""

    def __init__(
        self,
        store: Store,
        deployments: WorkerDeployments,
        pinned_count: PinnedCount,
        owns: Callable[[str, str], bool],
    ) -> None:
        self.store = store
        self.deployments = deployments
        self.pinned_count = pinned_count
        self.owns = owns  # (namespace id, deployment workflow id) -> whether this node checks it
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        self.deployments.drainage_started = self._wake.set

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            delay = RESCAN_S
            try:
                next_due = await self.check_due()
                if next_due is not None:
                    delay = min(delay, max(MIN_SLEEP_S, (next_due - time.time_ns()) / 1e9))
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the store or visibility failed: try again at the next pass
                log.warning("drainage of worker deployment versions not checked: %s", e)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def check_due(self) -> int | None:
        """Check every draining version whose check is due; answer when the next one is due (ns), if any."""
        next_due: int | None = None
        for namespace in await self.store.list_namespaces():
            namespace_id = namespace.id
            for deployment, build_id, due in await self.deployments.draining(namespace_id):
                if not self.owns(namespace_id, DEPLOYMENT_WORKFLOW_PREFIX + deployment):
                    continue
                now = time.time_ns()
                if due > now:
                    next_due = due if next_due is None else min(next_due, due)
                    continue
                count = await self.pinned_count(namespace_id, f"{deployment}:{build_id}")
                await self.deployments.record_drainage(namespace_id, deployment, build_id, now, count)
                # A version still draining is due again a refresh interval from now.
                for name, build, again in await self.deployments.draining(namespace_id):
                    if (name, build) == (deployment, build_id):
                        next_due = again if next_due is None else min(next_due, again)
        return next_due
