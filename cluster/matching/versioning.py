"""Routing of unpinned (auto-upgrade and unversioned) work to worker deployment versions.

Each version a worker polls with (`deployment_options`, WORKER_VERSIONING_MODE_VERSIONED) has its own
physical queue per task queue and type, named as a `/_sys/` queue (one partition, never split again), so
that its pollers meet only the tasks meant for that version. A task added to the task queue's own name is
sent, when added, to:
- the deployment's ramping version, for the ramp percentage of workflow ids (the reference's
  deterministic split: farmhash Fingerprint32 of the workflow id, scaled to [0, 100));
- else the deployment's current version;
- else (current version "unversioned", or the queue in no deployment's current/ramping version) the queue
  itself, where unversioned pollers wait.
A task already in a queue's backlog stays where it was added (the reference redirects such backlog when the
current version changes; Hourglass does not yet).
"""

from __future__ import annotations

from dataclasses import dataclass

import farmhash

from hourglass.cluster.matching.partition_tree import SYS_PREFIX

# Marks a version's physical queue: /_sys/<task queue>/_wv/<deployment>/<build id>
_MARK = "/_wv/"


def versioned_queue(name: str, deployment: str, build_id: str) -> str:
    """The physical queue of `name` that the pollers of (deployment, build id) poll."""
    return f"{SYS_PREFIX}{name}{_MARK}{deployment}/{build_id}"


def parse_versioned_queue(queue: str) -> tuple[str, str, str] | None:
    """(task queue, deployment, build id) of a version's physical queue; None for any other name."""
    if not queue.startswith(SYS_PREFIX) or _MARK not in queue:
        return None
    base, _, rest = queue[len(SYS_PREFIX) :].rpartition(_MARK)
    deployment, sep, build_id = rest.partition("/")
    if not base or not sep:
        return None
    return base, deployment, build_id


def base_queue(queue: str) -> str:
    """The task queue a physical queue belongs to (the name itself for an unversioned queue)."""
    parsed = parse_versioned_queue(queue)
    return queue if parsed is None else parsed[0]


def ramp_threshold(workflow_id: str) -> float:
    """A number in [0, 100) fixed per workflow id: ids under the ramp percentage go to the ramping version
    (the reference's calcRampThreshold)."""
    return 100.0 * farmhash.fingerprint32(workflow_id.encode()) / 4294967296.0


@dataclass(frozen=True)
class QueueRouting:
    """Where a task queue's unpinned tasks go: build ids of one deployment ("" = unversioned)."""

    deployment: str
    current: str  # "" = the unversioned queue
    ramping: str | None = None  # None = no ramp; "" = ramping to unversioned
    ramp_percentage: float = 0.0

    def target(self, workflow_id: str) -> str:
        """The build id ("" = unversioned) a task of `workflow_id` goes to."""
        if self.ramping is None or self.ramp_percentage <= 0:
            return self.current
        if self.ramp_percentage >= 100 or ramp_threshold(workflow_id) <= self.ramp_percentage:
            return self.ramping
        return self.current

    def queue_for(self, name: str, workflow_id: str) -> str:
        """The physical queue a task of `workflow_id` added to `name` goes to."""
        build_id = self.target(workflow_id)
        return name if not build_id else versioned_queue(name, self.deployment, build_id)
