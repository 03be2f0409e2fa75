"""The Worker Deployment RPCs of WorkflowService: request checks as the reference's frontend makes them,
then the deployment registry (cluster/matching/deployments.py) on this node, whose state is in the store
every node reads."""

from __future__ import annotations

import asyncio
import logging
import time

from temporalio.api.enums.v1 import WorkerVersioningMode
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from hourglass.cluster.errors import InvalidArgument, NotFound, ResourceExhausted
from hourglass.cluster.matching.deployments import (
    BUILD_ID_FIELD,
    DEPLOYMENT_NAME_FIELD,
    WorkerDeployments,
    validate_field,
    version_info,
)
from hourglass.cluster.matching.versioning import versioned_queue

VERSIONED = WorkerVersioningMode.WORKER_VERSIONING_MODE_VERSIONED
# How often a sticky queue's owner is told again which version polls it (ownership may have moved).
STICKY_NOTE_REFRESH_S = 30.0
_noted: dict[tuple[str, str], float] = {}
# How often a version's pollers trigger moving the queue's unversioned backlog to the versions.
REDIRECT_INTERVAL_S = 5.0
_redirected: dict[tuple[str, str, int], float] = {}
_background: set[asyncio.Task] = set()
# How long SetCurrent/SetRamping waits for the members that route the version's task queues to hear of it.
PROPAGATION_TIMEOUT_S = 5.0
# How long a poll whose version cannot be recorded (a deployment limit) waits before it is refused.
REGISTER_ERROR_BACKOFF_S = 5.0
log = logging.getLogger(__name__)


async def polled_queue(matching, namespace_id: str, request, task_type: int) -> str:
    """The physical queue a poll waits on: a versioned worker's version queue (recording its version and
    task queue first), else the task queue itself."""
    name = request.task_queue.name
    options = request.deployment_options
    if options.worker_versioning_mode != VERSIONED:
        return name
    if request.task_queue.kind == 2:  # sticky: the worker's own queue, told which version polls it
        key = (namespace_id, name)
        if key not in _noted or time.monotonic() - _noted[key] > STICKY_NOTE_REFRESH_S:
            await matching.note_sticky_version(
                namespace_id, name, request.task_queue.normal_name, options.deployment_name, options.build_id
            )
            if len(_noted) >= 10_000:
                _noted.clear()  # every worker polling again is noted again: a bound, not a cache policy
            _noted[key] = time.monotonic()
        return name
    if not options.deployment_name or not options.build_id:
        raise InvalidArgument("versioned workers must set both a deployment name and a build id")
    validate_field(DEPLOYMENT_NAME_FIELD, options.deployment_name)
    validate_field(BUILD_ID_FIELD, options.build_id)
    try:
        await matching.deployments.register(
            namespace_id, options.deployment_name, options.build_id, name, task_type
        )
    except ResourceExhausted:
        # As the reference: the poller is held before it hears the limit, so it does not retry at once.
        await asyncio.sleep(REGISTER_ERROR_BACKOFF_S)
        raise
    await _redirect_unversioned_backlog(matching, namespace_id, name, task_type, options)
    return versioned_queue(name, options.deployment_name, options.build_id)


def _redirect_all(matching, namespace_id: str, name: str, task_type: int) -> None:
    """Move the unversioned backlog of every partition of the queue, in the background."""
    if len(_redirected) >= 10_000:
        _redirected.clear()
    _redirected[(namespace_id, name, task_type)] = time.monotonic()
    for number in range(matching.read_partitions(namespace_id, name, task_type)):
        task = asyncio.get_running_loop().create_task(
            matching.redirect_backlog(namespace_id, name, task_type, number)
        )
        _background.add(task)
        task.add_done_callback(_finished)


async def _propagate(matching, namespace_id: str, deployment: str, build_id: str, previous: str) -> None:
    """The routing of a deployment changed: before the change is answered, the member that routes each
    partition of the task queues of these versions (the new and the previous current or ramping one) reads
    it again, so the next task added through any node goes by it (the reference, likewise, answers once its
    routing reached every task queue partition); the same call moves the queue's unversioned backlog to
    the version it is routed to now, and the previous version's queues their unpinned (routed) backlog.
    Waits PROPAGATION_TIMEOUT_S at most; the rest finishes in the background (a member that did not hear
    reads the routing again within ROUTING_REFRESH_S anyway)."""
    queues: set[tuple[str, int]] = set()
    version_queues: set[tuple[str, int]] = set()
    for build in (build_id, previous):
        if not build:
            continue
        try:
            _, version = await matching.deployments.describe_version(namespace_id, deployment, build)
        except NotFound:
            continue  # deleted meanwhile
        queues.update((name, int(task_type)) for name, task_type in version.task_queues)
        if build == previous:
            version_queues.update(
                (versioned_queue(name, deployment, build), int(task_type))
                for name, task_type in version.task_queues
            )
    tasks = []
    loop = asyncio.get_running_loop()

    def redirect(name: str, task_type: int, number: int) -> None:
        task = loop.create_task(
            matching.redirect_backlog(namespace_id, name, task_type, number, refresh_routes=True)
        )
        _background.add(task)
        task.add_done_callback(_finished)
        tasks.append(task)

    for name, task_type in sorted(version_queues):
        redirect(name, task_type, 0)  # a version's queue has one partition
    for name, task_type in sorted(queues):
        _redirected[(namespace_id, name, task_type)] = time.monotonic()
        count = max(
            matching.read_partitions(namespace_id, name, task_type),
            matching.write_partitions(namespace_id, name, task_type),
        )
        for number in range(count):
            redirect(name, task_type, number)
    if tasks:
        await asyncio.wait(tasks, timeout=PROPAGATION_TIMEOUT_S)


async def _redirect_unversioned_backlog(
    matching, namespace_id: str, name: str, task_type: int, options
) -> None:
    """A poller of the version the queue routes to: tasks added to the queue itself before it had a current
    version move to their version (the reference redirects such backlog too). At most every
    REDIRECT_INTERVAL_S per queue and type, in the background; the poll does not wait for it."""
    key = (namespace_id, name, task_type)
    now = time.monotonic()
    if now - _redirected.get(key, -REDIRECT_INTERVAL_S) < REDIRECT_INTERVAL_S:
        return
    route = await matching.deployments.routing(namespace_id, name, task_type)
    if route is None or route.deployment != options.deployment_name:
        return
    if options.build_id not in (route.current, route.ramping):
        return
    _redirect_all(matching, namespace_id, name, task_type)


def _finished(task: asyncio.Task) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.info("backlog of a versioned queue not redirected yet: %s", task.exception())


def _version_of(request) -> tuple[str, str]:
    """(deployment, build id) a request names, by `deployment_version` or the older "<name>.<build>"."""
    if "deployment_version" in type(request).DESCRIPTOR.fields_by_name and request.HasField(
        "deployment_version"
    ):
        return request.deployment_version.deployment_name, request.deployment_version.build_id
    text = request.version
    deployment, sep, build_id = text.partition(".")
    if not sep or not deployment or not build_id:
        raise InvalidArgument(
            f'invalid version string "{text}", expected format is "<deployment_name>.<build_id>"'
        )
    return deployment, build_id


def _require_deployment_name(name: str) -> None:
    if not name:
        raise InvalidArgument("deployment name cannot be empty")
    validate_field(DEPLOYMENT_NAME_FIELD, name)


def _target_build(request) -> str:
    """The build id a SetCurrent/SetRamping request names ("" = unversioned)."""
    if request.build_id or not request.version:
        return request.build_id
    if request.version == "__unversioned__":
        return ""
    deployment, build_id = _version_of(request)
    if deployment != request.deployment_name:
        raise InvalidArgument(
            f"invalid version string '{request.version}' does not match deployment name "
            f"'{request.deployment_name}'"
        )
    return build_id


async def describe(deployments: WorkerDeployments, namespace_id: str, request):
    _require_deployment_name(request.deployment_name)
    return await deployments.describe(namespace_id, request.deployment_name)


async def create(deployments: WorkerDeployments, namespace_id: str, request):
    _require_deployment_name(request.deployment_name)
    token = await deployments.create(
        namespace_id, request.deployment_name, request.identity, request.request_id
    )
    return rr.CreateWorkerDeploymentResponse(conflict_token=token)


async def list_deployments(deployments: WorkerDeployments, namespace_id: str, request):
    return await deployments.list(namespace_id, request)


async def describe_version(deployments: WorkerDeployments, matching, namespace_id: str, request):
    deployment, build_id = _version_of(request)
    validate_field(DEPLOYMENT_NAME_FIELD, deployment)
    validate_field(BUILD_ID_FIELD, build_id)
    state, version = await deployments.describe_version(namespace_id, deployment, build_id)
    resp = rr.DescribeWorkerDeploymentVersionResponse(
        worker_deployment_version_info=version_info(state, version)
    )
    for name, task_type in version.task_queues:
        queue = resp.version_task_queues.add(name=name, type=task_type)
        if request.report_task_queue_stats:
            stats = await matching.queue_stats(
                namespace_id, versioned_queue(name, deployment, build_id), task_type
            )
            queue.stats.CopyFrom(stats)
            queue.stats_by_priority_key[3].CopyFrom(stats)
    return resp


async def set_current(matching, namespace_id: str, request):
    _require_deployment_name(request.deployment_name)
    build_id = _target_build(request)
    resp = await matching.deployments.set_current(namespace_id, request, build_id)
    previous = resp.previous_deployment_version.build_id
    await _propagate(matching, namespace_id, request.deployment_name, build_id, previous)
    return resp


async def set_ramping(matching, namespace_id: str, request):
    _require_deployment_name(request.deployment_name)
    build_id = _target_build(request)
    resp = await matching.deployments.set_ramping(namespace_id, request, build_id)
    previous = resp.previous_deployment_version.build_id
    await _propagate(matching, namespace_id, request.deployment_name, build_id, previous)
    return resp


async def set_manager(deployments: WorkerDeployments, namespace_id: str, request):
    _require_deployment_name(request.deployment_name)
    return await deployments.set_manager(namespace_id, request)


async def delete_version(deployments: WorkerDeployments, namespace_id: str, request):
    deployment, build_id = _version_of(request)
    validate_field(DEPLOYMENT_NAME_FIELD, deployment)
    await deployments.delete_version(
        namespace_id, deployment, build_id, request.skip_drainage, request.identity
    )
    return rr.DeleteWorkerDeploymentVersionResponse()


async def delete_deployment(deployments: WorkerDeployments, namespace_id: str, request):
    _require_deployment_name(request.deployment_name)
    await deployments.delete_deployment(namespace_id, request.deployment_name, request.identity)
    return rr.DeleteWorkerDeploymentResponse()


async def update_metadata(deployments: WorkerDeployments, namespace_id: str, request):
    deployment, build_id = _version_of(request)
    entries = await deployments.update_metadata(
        namespace_id, deployment, build_id, dict(request.upsert_entries), list(request.remove_entries)
    )
    resp = rr.UpdateWorkerDeploymentVersionMetadataResponse()
    for key, payload in entries.items():
        resp.metadata.entries[key].CopyFrom(payload)
    return resp
