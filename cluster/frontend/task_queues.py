"""DescribeTaskQueue in its three shapes, as the reference answers them.

- default: the pollers of one task type, and with report_stats the queue's backlog and rates;
- legacy (include_task_queue_status, what `temporal task-queue describe --legacy-mode` asks): the
  partition's TaskQueueStatus as well, which that command dereferences;
- enhanced (api_mode ENHANCED, the Go SDK's DescribeTaskQueueEnhanced behind `temporal task-queue
  describe`): everything under versions_info, keyed by build id ("" = unversioned workers), per task
  type. The SDK refuses an answer with pollers or a status outside versions_info ("server does not
  support `DescribeTaskQueueEnhanced`"), so nothing else is filled in that mode.

Build-id versioning (version sets, assignment rules) is off, as on the reference's start-dev: a named
build id's queue is empty and unreachable. Versioned workers (Worker Deployments) poll their version's
own physical queue: the default shape lists them beside unversioned pollers, with their deployment
options, and versioning_info is the routing config of the deployment that routes the queue
(cluster/matching/deployments.py). The enhanced shape reports the unversioned queue only.
"""

from __future__ import annotations

import time

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.deployment.v1 import WorkerDeploymentVersion
from temporalio.api.enums.v1 import (
    BuildIdTaskReachability,
    DescribeTaskQueueMode,
    RateLimitSource,
    TaskQueueKind,
    TaskQueueType,
    WorkerVersioningMode,
)
from temporalio.api.taskqueue.v1 import (
    PollerInfo,
    TaskQueueTypeInfo,
    TaskQueueVersionInfo,
    TaskQueueVersioningInfo,
)
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, DescribeTaskQueueResponse

from hourglass.cluster.errors import InvalidArgument
from hourglass.cluster.history.timeutil import to_timestamp
from hourglass.cluster.matching.partition_tree import parse_partition_name
from hourglass.cluster.matching.queue_config import queue_rate
from hourglass.cluster.matching.versioning import versioned_queue

# A poller not seen for this long is no longer listed.
POLLER_HORIZON_S = 5 * 60
# The priority key of tasks without a priority (the reference's default, 3 of 1..5).
DEFAULT_PRIORITY_KEY = 3
UNVERSIONED = "__unversioned__"
# A poller's dispatch rate when its worker asked for no limit (the reference reports the same).
DEFAULT_POLLER_RATE = 100_000.0
_GO_ZERO_TIME = Timestamp(seconds=-62135596800)


async def describe_task_queue(
    matching, namespace_id: str, request: DescribeTaskQueueRequest
) -> DescribeTaskQueueResponse:
    """The answer to `request` for the queue `request.task_queue` of the namespace `namespace_id`."""
    if request.api_mode == DescribeTaskQueueMode.DESCRIBE_TASK_QUEUE_MODE_ENHANCED:
        return await _enhanced(matching, namespace_id, request)
    name = request.task_queue.name
    sticky = request.task_queue.kind == TaskQueueKind.TASK_QUEUE_KIND_STICKY
    task_type = request.task_queue_type or TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
    if sticky:
        # In a cluster each member serves the sticky queues its workers poll it for: all are asked.
        rows = await matching.sticky_pollers(namespace_id, name)
        return DescribeTaskQueueResponse(pollers=_poller_infos(rows))
    resp = DescribeTaskQueueResponse(pollers=await _pollers(matching, namespace_id, name, task_type))
    deployments = matching.deployments
    for deployment, build_id in await deployments.versions_polling(namespace_id, name, task_type):
        queue = versioned_queue(name, deployment, build_id)
        for poller in await _pollers(matching, namespace_id, queue, task_type):
            poller.worker_version_capabilities.build_id = build_id
            poller.deployment_options.deployment_name = deployment
            poller.deployment_options.build_id = build_id
            poller.deployment_options.worker_versioning_mode = (
                WorkerVersioningMode.WORKER_VERSIONING_MODE_VERSIONED
            )
            resp.pollers.append(poller)
    resp.versioning_info.CopyFrom(await _versioning_info(deployments, namespace_id, name, task_type))
    if request.report_stats:
        if _is_child_partition(name):
            raise InvalidArgument("DescribeTaskQueue stats are only supported for the root partition")
        stats = await matching.queue_stats(namespace_id, name, task_type)
        resp.stats.CopyFrom(stats)
        resp.stats_by_priority_key[DEFAULT_PRIORITY_KEY].CopyFrom(stats)
    if request.include_task_queue_status:
        resp.task_queue_status.CopyFrom(await matching.queue_status(namespace_id, name, task_type))
    config = await matching.queue_config(namespace_id, name, task_type)
    if request.report_config and config.ByteSize():
        resp.config.CopyFrom(config)
    rate = queue_rate(config)
    if rate is not None:
        # The limit matching applies, set through the API (UpdateTaskQueueConfig), as the reference says.
        resp.effective_rate_limit.requests_per_second = rate
        resp.effective_rate_limit.rate_limit_source = RateLimitSource.RATE_LIMIT_SOURCE_API
    return resp


async def _enhanced(
    matching, namespace_id: str, request: DescribeTaskQueueRequest
) -> DescribeTaskQueueResponse:
    name = request.task_queue.name
    resp = DescribeTaskQueueResponse()
    selection = request.versions if request.HasField("versions") else None
    types = list(request.task_queue_types) or [
        TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    ]
    if selection is not None:
        for build_id in selection.build_ids:
            if build_id:
                resp.versions_info[build_id].CopyFrom(_build_id_version(request, types))
    # No selection means the unversioned queue.
    if selection is not None and not (
        selection.unversioned or selection.all_active or "" in selection.build_ids
    ):
        return resp
    info = TaskQueueVersionInfo()
    for task_type in types:
        type_info = TaskQueueTypeInfo()
        if request.report_pollers:
            type_info.pollers.extend(await _pollers(matching, namespace_id, name, task_type))
        if request.report_stats:
            type_info.stats.CopyFrom(await matching.queue_stats(namespace_id, name, task_type))
        info.types_info[task_type].CopyFrom(type_info)
    if request.report_task_reachability:
        info.task_reachability = BuildIdTaskReachability.BUILD_ID_TASK_REACHABILITY_REACHABLE
    resp.versions_info[""].CopyFrom(info)
    return resp


def _build_id_version(request: DescribeTaskQueueRequest, types: list[int]) -> TaskQueueVersionInfo:
    """A named build id's queue, as the reference shows one no assignment rule or version set targets (the
    older build-id APIs are refused, see build_id_versioning.py): no pollers, no backlog, unreachable."""
    info = TaskQueueVersionInfo()
    for task_type in types:
        type_info = TaskQueueTypeInfo()
        if request.report_stats:
            type_info.stats.approximate_backlog_age.SetInParent()
        info.types_info[task_type].CopyFrom(type_info)
    if request.report_task_reachability:
        info.task_reachability = BuildIdTaskReachability.BUILD_ID_TASK_REACHABILITY_UNREACHABLE
    return info


async def _versioning_info(
    deployments, namespace_id: str, name: str, task_type: int
) -> TaskQueueVersioningInfo:
    """The current and ramping version the queue's unpinned tasks go to, as the reference reports them."""
    route, state = await deployments.queue_versioning(namespace_id, name, task_type)
    if route is None or state is None:
        return TaskQueueVersioningInfo(current_version=UNVERSIONED, update_time=_GO_ZERO_TIME)
    info = TaskQueueVersioningInfo(current_version=UNVERSIONED)
    if route.current:
        info.current_version = f"{route.deployment}.{route.current}"
        info.current_deployment_version.CopyFrom(
            WorkerDeploymentVersion(deployment_name=route.deployment, build_id=route.current)
        )
    if route.ramping is not None:
        info.ramping_version = f"{route.deployment}.{route.ramping}" if route.ramping else UNVERSIONED
        info.ramping_version_percentage = route.ramp_percentage
        if route.ramping:
            info.ramping_deployment_version.CopyFrom(
                WorkerDeploymentVersion(deployment_name=route.deployment, build_id=route.ramping)
            )
    changed = max(state.current_changed_ns, state.ramping_changed_ns, state.ramp_percentage_changed_ns)
    info.update_time.FromNanoseconds(changed)
    return info


def _is_child_partition(name: str) -> bool:
    """A non-root partition's own name (/_sys/<queue>/<n>): stats are the whole queue's, asked at its root."""
    try:
        return parse_partition_name(name)[1] > 0
    except ValueError:
        return False


async def _pollers(matching, namespace_id: str, name: str, task_type: int) -> list[PollerInfo]:
    return _poller_infos(await matching.poller_info(namespace_id, name, task_type))


def _poller_infos(rows) -> list[PollerInfo]:
    now = time.time()
    pollers = []
    for identity, age, build_id, rate in rows:
        if age >= POLLER_HORIZON_S:
            continue
        poller = PollerInfo(
            identity=identity,
            last_access_time=to_timestamp(int((now - age) * 1000)),
            rate_per_second=rate or DEFAULT_POLLER_RATE,
        )
        if build_id:
            poller.worker_version_capabilities.build_id = build_id
        pollers.append(poller)
    return pollers
