"""Worker Deployments and their versions: what the reference keeps in its deployment workflows, kept here
as one stored row per (namespace, deployment) (Store.*_worker_deployment), changed by conditional writes.

A version comes into being when a worker polls with deployment options (WORKER_VERSIONING_MODE_VERSIONED):
the deployment, the version and the (task queue, type) it polls are recorded. SetCurrentVersion and
SetRampingVersion change the deployment's routing config, which matching on every node reads (cached for
ROUTING_REFRESH_S; the node that made a change sees it at once) to send unpinned tasks (versioning.py).
Answers, statuses and error messages are the reference's (1.32): versions are named "<deployment>.<build
id>" in the deprecated string fields and "<deployment>:<build id>" in error messages.
"""

from __future__ import annotations

import base64
import json
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.common.v1 import Payload
from temporalio.api.deployment.v1 import (
    RoutingConfig,
    VersionDrainageInfo,
    WorkerDeploymentInfo,
    WorkerDeploymentVersion,
    WorkerDeploymentVersionInfo,
)
from temporalio.api.enums.v1 import (
    ResourceExhaustedCause,
    ResourceExhaustedScope,
    RoutingConfigUpdateState,
    TaskQueueType,
    VersionDrainageStatus,
    WorkerDeploymentVersionStatus,
)
from temporalio.api.errordetails.v1 import ResourceExhaustedFailure
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from hourglass.cluster.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    ServiceError,
    Unavailable,
)
from hourglass.cluster.history.limits import LIMITS
from hourglass.cluster.matching.versioning import QueueRouting, versioned_queue
from hourglass.persistence.errors import ConditionFailedError
from hourglass.persistence.store import Store

UNVERSIONED = "__unversioned__"
# How long a node routes by the routing config it read before reading it again (a change made through
# this node is seen at once).
ROUTING_REFRESH_S = 2.0
# How long a node trusts that a polled (version, task queue) is recorded before checking the store again.
REGISTERED_REFRESH_S = 60.0
# A version polled within this long has pollers (the reference's poller history, 5 minutes).
POLLER_HORIZON_S = 5 * 60
WRITE_ATTEMPTS = 8

Status = WorkerDeploymentVersionStatus
Drainage = VersionDrainageStatus

NOT_FOUND = "no Worker Deployment found with name '{}'; does your Worker Deployment have pollers?"
VERSION_NOT_FOUND = "build ID '{}' not found in Worker Deployment '{}'"
ALREADY_EXISTS = 'Worker Deployment with name "{}" already exists'
# The request id of a deployment made by a worker's poll (CreateWorkerDeployment names its own).
AUTO_CREATED = "__auto_created_from_polls__"
MANAGER_MISMATCH = (
    "ManagerIdentity '{}' is set and does not match user identity '{}'; to proceed, set your own identity "
    "as the ManagerIdentity, remove the ManagerIdentity, or wait for the other client to do so"
)


@dataclass
class VersionState:
    build_id: str
    create_ns: int
    status: int = Status.WORKER_DEPLOYMENT_VERSION_STATUS_INACTIVE
    task_queues: list[list] = field(default_factory=list)  # [name, task type]
    metadata: dict[str, str] = field(default_factory=dict)  # key -> Payload, serialized, base64
    current_since_ns: int = 0
    ramping_since_ns: int = 0
    routing_update_ns: int = 0
    first_activation_ns: int = 0
    last_current_ns: int = 0
    last_deactivation_ns: int = 0
    drainage_status: int = 0
    drainage_changed_ns: int = 0
    ramp_percentage: float = 0.0
    # When visibility was last asked whether pinned workflows still run on the draining version.
    drainage_checked_ns: int = 0


@dataclass
class DeploymentState:
    name: str
    create_ns: int
    versions: dict[str, VersionState] = field(default_factory=dict)
    current: str = ""  # build id; "" = unversioned
    current_changed_ns: int = 0
    ramping: str | None = None  # None = no ramp; "" = unversioned
    ramp_percentage: float = 0.0
    ramping_changed_ns: int = 0
    ramp_percentage_changed_ns: int = 0
    revision: int = 0
    last_modifier: str = ""
    manager: str = ""
    token_ns: int = 0
    request_id: str = AUTO_CREATED

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, blob: bytes) -> DeploymentState:
        raw = json.loads(blob)
        raw["versions"] = {k: VersionState(**v) for k, v in raw["versions"].items()}
        return cls(**raw)


class AlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS


DEPLOYMENT_NAME_FIELD = "WorkerDeploymentName"
BUILD_ID_FIELD = "BuildID"
# The prefix and delimiter of the reference's version workflow id, which holds both fields.
_VERSION_WORKFLOW_ID_PREFIX = len("temporal-sys-worker-deployment-version") + 1


def validate_field(field_name: str, value: str) -> None:
    """A deployment name or build id as the reference accepts it (ValidateDeploymentVersionFields)."""
    if not value:
        raise InvalidArgument(f"{field_name} cannot be empty")
    if len(value) > (LIMITS.max_id_length - _VERSION_WORKFLOW_ID_PREFIX) // 2:
        raise InvalidArgument(f"size of {field_name} larger than the maximum allowed")
    if field_name == DEPLOYMENT_NAME_FIELD:
        for delimiter in (".", ":"):
            if delimiter in value:
                raise InvalidArgument(f"worker deployment name cannot contain '{delimiter}'")
    if value.startswith("__"):
        raise InvalidArgument(f"{field_name} cannot start with '__'")


def limit_reached(message: str) -> ResourceExhausted:
    """A Worker Deployment limit, with the cause the SDKs read (RESOURCE_EXHAUSTED_CAUSE_WORKER_DEPLOYMENT_LIMITS)."""
    return ResourceExhausted(
        message,
        ResourceExhaustedFailure(
            cause=ResourceExhaustedCause.RESOURCE_EXHAUSTED_CAUSE_WORKER_DEPLOYMENT_LIMITS,
            scope=ResourceExhaustedScope.RESOURCE_EXHAUSTED_SCOPE_NAMESPACE,
        ),
    )


# ---- wire shapes ----------------------------------------------------------------------------------------
def version_string(deployment: str, build_id: str) -> str:
    """The deprecated string form of a version (1.32 answers "<deployment>.<build id>")."""
    return f"{deployment}.{build_id}" if build_id else UNVERSIONED


def error_version(deployment: str, build_id: str) -> str:
    return f"{deployment}:{build_id}"


def conflict_token(ns: int) -> bytes:
    """The token of the state changed at `ns`: a Go time.Time in its binary form, as the reference's."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    return struct.pack(">bqih", 1, seconds + 62135596800, nanos, -1)


def _ts(ns: int) -> Timestamp:
    t = Timestamp()
    t.FromNanoseconds(ns)
    return t


def _now_ns() -> int:
    return time.time_ns()


def routing_config(state: DeploymentState) -> RoutingConfig:
    config = RoutingConfig(current_version=version_string(state.name, state.current))
    if state.current:
        config.current_deployment_version.CopyFrom(
            WorkerDeploymentVersion(deployment_name=state.name, build_id=state.current)
        )
    if state.ramping is not None:
        config.ramping_version = version_string(state.name, state.ramping)
        config.ramping_version_percentage = state.ramp_percentage
        if state.ramping:
            config.ramping_deployment_version.CopyFrom(
                WorkerDeploymentVersion(deployment_name=state.name, build_id=state.ramping)
            )
    for ns, target in (
        (state.current_changed_ns, config.current_version_changed_time),
        (state.ramping_changed_ns, config.ramping_version_changed_time),
        (state.ramp_percentage_changed_ns, config.ramping_version_percentage_changed_time),
    ):
        if ns:
            target.CopyFrom(_ts(ns))
    config.revision_number = state.revision
    return config


def _drainage(v: VersionState) -> VersionDrainageInfo | None:
    if not v.drainage_changed_ns:
        return None
    return VersionDrainageInfo(
        status=v.drainage_status,
        last_changed_time=_ts(v.drainage_changed_ns),
        last_checked_time=_ts(v.drainage_checked_ns or v.drainage_changed_ns),
    )


def version_summary(
    state: DeploymentState, v: VersionState
) -> WorkerDeploymentInfo.WorkerDeploymentVersionSummary:
    summary = WorkerDeploymentInfo.WorkerDeploymentVersionSummary(
        version=version_string(state.name, v.build_id),
        deployment_version=WorkerDeploymentVersion(deployment_name=state.name, build_id=v.build_id),
        create_time=_ts(v.create_ns),
        status=v.status,
        drainage_status=v.drainage_status,
    )
    drainage = _drainage(v)
    if drainage is not None:
        summary.drainage_info.CopyFrom(drainage)
    for ns, target in (
        (v.current_since_ns, summary.current_since_time),
        (v.ramping_since_ns, summary.ramping_since_time),
        (v.routing_update_ns, summary.routing_update_time),
        (v.first_activation_ns, summary.first_activation_time),
        (v.last_current_ns, summary.last_current_time),
        (v.last_deactivation_ns, summary.last_deactivation_time),
    ):
        if ns:
            target.CopyFrom(_ts(ns))
    return summary


def _ordered_versions(state: DeploymentState) -> list[VersionState]:
    """Newest first, as the reference lists a deployment's versions."""
    return sorted(state.versions.values(), key=lambda v: v.create_ns, reverse=True)


def deployment_info(state: DeploymentState) -> WorkerDeploymentInfo:
    info = WorkerDeploymentInfo(
        name=state.name,
        create_time=_ts(state.create_ns),
        routing_config=routing_config(state),
        last_modifier_identity=state.last_modifier,
        manager_identity=state.manager,
        routing_config_update_state=RoutingConfigUpdateState.ROUTING_CONFIG_UPDATE_STATE_COMPLETED,
    )
    info.version_summaries.extend(version_summary(state, v) for v in _ordered_versions(state))
    return info


def version_info(state: DeploymentState, v: VersionState) -> WorkerDeploymentVersionInfo:
    info = WorkerDeploymentVersionInfo(
        version=version_string(state.name, v.build_id),
        deployment_version=WorkerDeploymentVersion(deployment_name=state.name, build_id=v.build_id),
        status=v.status,
        create_time=_ts(v.create_ns),
        ramp_percentage=v.ramp_percentage if v.ramping_since_ns else 0.0,
    )
    for ns, target in (
        (v.routing_update_ns, info.routing_changed_time),
        (v.current_since_ns, info.current_since_time),
        (v.ramping_since_ns, info.ramping_since_time),
    ):
        if ns:
            target.CopyFrom(_ts(ns))
    drainage = _drainage(v)
    if drainage is not None and v.drainage_status:
        info.drainage_info.CopyFrom(drainage)
    for name, task_type in v.task_queues:
        info.task_queue_infos.add(name=name, type=task_type)
    for key, blob in v.metadata.items():
        info.metadata.entries[key].ParseFromString(base64.b64decode(blob))
    return info


# ---- the registry -----------------------------------------------------------------------------------------
@dataclass
class _Loaded:
    state: DeploymentState | None
    version: int


class WorkerDeployments:
    """Every deployment of the namespaces, as stored; the routing config matching applies, cached."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # (namespace id) -> (read at, {(task queue, type): routing})
        self._routes: dict[str, tuple[float, dict[tuple[str, int], QueueRouting]]] = {}
        # (namespace id) -> how many changes this member made: a read that started before a change must
        # not cache what it read after the change dropped the cache (the redirect would route by it).
        self._route_changes: dict[str, int] = {}
        self._registered: dict[tuple[str, str, str, str, int], float] = {}
        # (namespace id, physical queue, task type) -> pollers seen within the horizon; set by the matching
        # engine (its poller_info), to refuse deleting a version that still has pollers.
        self.pollers: Callable[[str, str, int], Awaitable[int]] | None = None
        # Wakes this node's drainage monitor (drainage.py) when a version starts draining here.
        self.drainage_started: Callable[[], None] | None = None

    # ---- reading ------------------------------------------------------------------------------------
    async def _load(self, namespace_id: str, name: str) -> _Loaded:
        stored = await self.store.get_worker_deployment(namespace_id, name)
        if stored is None:
            return _Loaded(None, 0)
        return _Loaded(DeploymentState.decode(stored[0]), stored[1])

    async def _existing(self, namespace_id: str, name: str) -> _Loaded:
        loaded = await self._load(namespace_id, name)
        if loaded.state is None:
            raise NotFound(NOT_FOUND.format(name))
        return loaded

    async def _write(self, namespace_id: str, name: str, loaded: _Loaded) -> None:
        assert loaded.state is not None
        await self.store.write_worker_deployment(namespace_id, name, loaded.state.encode(), loaded.version)
        self._forget_routes(namespace_id)

    def refresh_routes(self, namespace_id: str) -> None:
        """Another member changed a deployment's routing and says so: read it again at the next task."""
        self._forget_routes(namespace_id)

    def _forget_routes(self, namespace_id: str) -> None:
        """This member changed a deployment: it routes by the change at once."""
        self._routes.pop(namespace_id, None)
        self._route_changes[namespace_id] = self._route_changes.get(namespace_id, 0) + 1

    async def _change(self, namespace_id: str, name: str, change: Callable[[_Loaded], object]) -> object:
        """Read, change, write conditionally on the version read; a concurrent change makes it try again.
        `change` raises to refuse, and answers what the caller returns (None: nothing to write)."""
        for _ in range(WRITE_ATTEMPTS):
            loaded = await self._existing(namespace_id, name)
            result = await _maybe_await(change(loaded))
            if isinstance(result, _NoWrite):
                return result.answer
            try:
                await self._write(namespace_id, name, loaded)
            except ConditionFailedError:
                continue
            return result
        raise Unavailable(f"Worker Deployment '{name}' changed concurrently; try again")

    async def describe(self, namespace_id: str, name: str) -> rr.DescribeWorkerDeploymentResponse:
        loaded = await self._existing(namespace_id, name)
        assert loaded.state is not None
        return rr.DescribeWorkerDeploymentResponse(
            conflict_token=conflict_token(loaded.state.token_ns),
            worker_deployment_info=deployment_info(loaded.state),
        )

    async def list(
        self, namespace_id: str, request: rr.ListWorkerDeploymentsRequest
    ) -> rr.ListWorkerDeploymentsResponse:
        if request.page_size < 0:
            raise InvalidArgument("page_size cannot be negative")
        states = [
            DeploymentState.decode(blob)
            for _, blob, _ in await self.store.list_worker_deployments(namespace_id)
        ]
        states.sort(key=lambda s: (-s.create_ns, s.name))
        start = 0
        if request.next_page_token:
            try:
                start = int(json.loads(request.next_page_token)["offset"])
            except (ValueError, KeyError, TypeError):
                raise InvalidArgument("invalid next_page_token") from None
        end = len(states) if request.page_size <= 0 else start + request.page_size
        resp = rr.ListWorkerDeploymentsResponse()
        for state in states[start:end]:
            summary = resp.worker_deployments.add(
                name=state.name, create_time=_ts(state.create_ns), routing_config=routing_config(state)
            )
            ordered = _ordered_versions(state)
            if ordered:
                summary.latest_version_summary.CopyFrom(version_summary(state, ordered[0]))
            if state.current in state.versions:
                summary.current_version_summary.CopyFrom(
                    version_summary(state, state.versions[state.current])
                )
            if state.ramping and state.ramping in state.versions:
                summary.ramping_version_summary.CopyFrom(
                    version_summary(state, state.versions[state.ramping])
                )
        if end < len(states):
            resp.next_page_token = json.dumps({"offset": end}).encode()
        return resp

    async def describe_version(
        self, namespace_id: str, deployment: str, build_id: str
    ) -> tuple[DeploymentState, VersionState]:
        loaded = await self._load(namespace_id, deployment)
        state = loaded.state
        if state is None or build_id not in state.versions:
            raise NotFound("Worker Deployment Version not found")
        return state, state.versions[build_id]

    # ---- routing (matching) -------------------------------------------------------------------------
    async def routing(self, namespace_id: str, name: str, task_type: int) -> QueueRouting | None:
        """How unpinned tasks of the queue are routed; None when no deployment routes it (unversioned)."""
        cached = self._routes.get(namespace_id)
        if cached is None or time.monotonic() - cached[0] >= ROUTING_REFRESH_S:
            changes = self._route_changes.get(namespace_id, 0)
            cached = (time.monotonic(), await self._read_routes(namespace_id))
            if self._route_changes.get(namespace_id, 0) == changes:
                self._routes[namespace_id] = cached
        return cached[1].get((name, int(task_type)))

    async def _read_routes(self, namespace_id: str) -> dict[tuple[str, int], QueueRouting]:
        routes: dict[tuple[str, int], tuple[int, QueueRouting]] = {}
        for _, blob, _ in await self.store.list_worker_deployments(namespace_id):
            state = DeploymentState.decode(blob)
            changed = max(
                state.current_changed_ns, state.ramping_changed_ns, state.ramp_percentage_changed_ns
            )
            queues: set[tuple[str, int]] = set()
            for build_id in (state.current, state.ramping):
                if build_id and build_id in state.versions:
                    queues.update((q[0], int(q[1])) for q in state.versions[build_id].task_queues)
            for queue in queues:
                current = state.current if queue in _queues(state, state.current) else ""
                ramping = state.ramping
                if ramping and queue not in _queues(state, ramping):
                    ramping = None
                route = QueueRouting(state.name, current, ramping, state.ramp_percentage)
                # A queue in two deployments follows the one changed last (as the reference).
                if queue not in routes or routes[queue][0] < changed:
                    routes[queue] = (changed, route)
        return {queue: route for queue, (_, route) in routes.items()}

    async def queue_versioning(self, namespace_id: str, name: str, task_type: int):
        """(routing, the deployment state) for DescribeTaskQueue's versioning_info; (None, None) if none."""
        route = await self.routing(namespace_id, name, task_type)
        if route is None:
            return None, None
        return route, (await self._load(namespace_id, route.deployment)).state

    async def versions_polling(self, namespace_id: str, name: str, task_type: int) -> list[tuple[str, str]]:
        """(deployment, build id) of every version that records polls of the queue."""
        found = []
        for _, blob, _ in await self.store.list_worker_deployments(namespace_id):
            state = DeploymentState.decode(blob)
            for v in state.versions.values():
                if [name, int(task_type)] in v.task_queues:
                    found.append((state.name, v.build_id))
        return found

    # ---- drainage ------------------------------------------------------------------------------------
    async def draining(self, namespace_id: str) -> list[tuple[str, str, int]]:
        """(deployment, build id, when its next drainage check is due, ns) of every draining version."""
        found = []
        for _, blob, _ in await self.store.list_worker_deployments(namespace_id):
            state = DeploymentState.decode(blob)
            for v in state.versions.values():
                if v.drainage_status == Drainage.VERSION_DRAINAGE_STATUS_DRAINING:
                    found.append((state.name, v.build_id, drainage_due_ns(v)))
        return found

    async def record_drainage(
        self, namespace_id: str, deployment: str, build_id: str, checked_ns: int, pinned_open: int
    ) -> None:
        """A drainage check at `checked_ns` found `pinned_open` running workflows pinned to the version: none
        makes it DRAINED (the reference's refreshDrainageInfo). A version that meanwhile became current or
        ramping again, or was checked by another member, keeps its state."""

        def change(loaded: _Loaded):
            state = loaded.state
            assert state is not None
            v = state.versions.get(build_id)
            if v is None or v.drainage_status != Drainage.VERSION_DRAINAGE_STATUS_DRAINING:
                return _NoWrite(None)
            if v.drainage_checked_ns >= checked_ns:
                return _NoWrite(None)
            v.drainage_checked_ns = checked_ns
            if pinned_open == 0:
                v.drainage_status = Drainage.VERSION_DRAINAGE_STATUS_DRAINED
                v.drainage_changed_ns = checked_ns
                v.status = Status.WORKER_DEPLOYMENT_VERSION_STATUS_DRAINED
            return None

        try:
            await self._change(namespace_id, deployment, change)
        except NotFound:
            return  # deleted meanwhile

    # ---- versions come from polls -------------------------------------------------------------------
    async def register(
        self, namespace_id: str, deployment: str, build_id: str, name: str, task_type: int
    ) -> None:
        """A versioned worker polls `name`: the deployment, version and task queue exist from now on."""
        key = (namespace_id, deployment, build_id, name, int(task_type))
        seen = self._registered.get(key)
        if seen is not None and time.monotonic() - seen < REGISTERED_REFRESH_S:
            return
        removed: str | None = None
        for _ in range(WRITE_ATTEMPTS):
            loaded = await self._load(namespace_id, deployment)
            now = _now_ns()
            if loaded.state is None:
                await self._refuse_another_deployment(namespace_id)
                loaded.state = DeploymentState(name=deployment, create_ns=now, token_ns=now)
            state = loaded.state
            version = state.versions.get(build_id)
            entry = [name, int(task_type)]
            if version is not None and entry in version.task_queues:
                break
            if version is None:
                removed = await self._make_room(namespace_id, state, build_id)
                version = state.versions[build_id] = VersionState(build_id=build_id, create_ns=now)
            queues = {q[0] for q in version.task_queues}
            limit = LIMITS.max_task_queues_in_deployment_version
            if name not in queues and len(queues) >= limit:
                raise limit_reached(
                    f"cannot add task queue {name} since maximum number of task queues ({limit}) have been "
                    "registered in deployment"
                )
            version.task_queues.append(entry)
            try:
                await self._write(namespace_id, deployment, loaded)
            except ConditionFailedError:
                continue
            break
        else:
            raise Unavailable(f"Worker Deployment '{deployment}' changed concurrently; try again")
        if removed is not None:
            self._forget_registered(namespace_id, deployment, removed)
        self._registered[key] = time.monotonic()

    async def _refuse_another_deployment(self, namespace_id: str) -> None:
        """A new deployment past `matching.maxDeployments` of the namespace is refused."""
        limit = LIMITS.max_deployments
        if len(await self.store.list_worker_deployments(namespace_id)) >= limit:
            raise limit_reached(f"reached maximum deployments in namespace ({limit})")

    async def _make_room(self, namespace_id: str, state: DeploymentState, build_id: str) -> str | None:
        """Before a new version joins a deployment at `matching.maxVersionsInDeployment`, its oldest version
        that may be deleted is (not current or ramping, not draining, without pollers), as the reference
        does; none such refuses the new version. Answers the build id removed from `state`, if any."""
        limit = LIMITS.max_versions_in_deployment
        if len(state.versions) < limit:
            return None
        for v in sorted(state.versions.values(), key=lambda v: v.create_ns):
            if v.build_id in (state.current, state.ramping):
                continue
            if v.drainage_status == Drainage.VERSION_DRAINAGE_STATUS_DRAINING:
                continue
            if await self._has_pollers(namespace_id, state.name, v):
                continue
            del state.versions[v.build_id]
            return v.build_id
        raise limit_reached(
            f"cannot add version {version_string(state.name, build_id)} since maximum number of versions "
            f"({limit}) have been registered in the deployment"
        )

    async def _has_pollers(self, namespace_id: str, deployment: str, v: VersionState) -> bool:
        if self.pollers is None:
            return False
        for queue, task_type in v.task_queues:
            if await self.pollers(namespace_id, versioned_queue(queue, deployment, v.build_id), task_type):
                return True
        return False

    def _forget_registered(self, namespace_id: str, deployment: str, build_id: str) -> None:
        self._registered = {
            k: t for k, t in self._registered.items() if k[:3] != (namespace_id, deployment, build_id)
        }

    async def create(self, namespace_id: str, name: str, identity: str, request_id: str) -> bytes:
        """CreateWorkerDeployment: a deployment before any worker polls; the same request again is answered
        as the first time, any other for an existing deployment is refused."""
        for _ in range(WRITE_ATTEMPTS):
            loaded = await self._load(namespace_id, name)
            if loaded.state is not None:
                if request_id and loaded.state.request_id == request_id:
                    return conflict_token(loaded.state.token_ns)
                suffix = (
                    " (auto-created from worker polls)" if loaded.state.request_id == AUTO_CREATED else ""
                )
                raise AlreadyExists(ALREADY_EXISTS.format(name) + suffix)
            await self._refuse_another_deployment(namespace_id)
            now = _now_ns()
            loaded.state = DeploymentState(
                name=name, create_ns=now, token_ns=now, last_modifier=identity, request_id=request_id
            )
            try:
                await self._write(namespace_id, name, loaded)
            except ConditionFailedError:
                continue
            return conflict_token(now)
        raise Unavailable(f"Worker Deployment '{name}' changed concurrently; try again")

    # ---- changes --------------------------------------------------------------------------------------
    def _check_token_and_manager(self, state: DeploymentState, token: bytes, identity: str) -> None:
        if token and token != conflict_token(state.token_ns):
            raise FailedPrecondition("conflict token mismatch")
        if state.manager and state.manager != identity:
            raise FailedPrecondition(MANAGER_MISMATCH.format(state.manager, identity))

    async def set_current(
        self, namespace_id: str, request: rr.SetWorkerDeploymentCurrentVersionRequest, build_id: str
    ) -> rr.SetWorkerDeploymentCurrentVersionResponse:
        name = request.deployment_name

        async def change(loaded: _Loaded):
            state = loaded.state
            assert state is not None
            if build_id and build_id not in state.versions and not request.allow_no_pollers:
                raise NotFound(VERSION_NOT_FOUND.format(build_id, name))
            previous = state.current
            resp = rr.SetWorkerDeploymentCurrentVersionResponse(
                previous_version=version_string(name, previous)
            )
            if previous:
                resp.previous_deployment_version.CopyFrom(
                    WorkerDeploymentVersion(deployment_name=name, build_id=previous)
                )
            if build_id == previous and request.identity == state.last_modifier:
                resp.conflict_token = conflict_token(state.token_ns)
                return _NoWrite(resp)
            self._check_token_and_manager(state, request.conflict_token, request.identity)
            if not request.ignore_missing_task_queues and previous and build_id and build_id != previous:
                await self._refuse_missing_queues(namespace_id, state, previous, build_id, "current")
            now = _now_ns()
            if build_id not in state.versions and build_id:
                await self._make_room(namespace_id, state, build_id)
                state.versions[build_id] = VersionState(build_id=build_id, create_ns=now)
            if previous and previous != build_id and previous in state.versions:
                _deactivate(state.versions[previous], now)
            if state.ramping is not None and state.ramping == build_id:
                state.ramping, state.ramp_percentage = None, 0.0
                state.ramping_changed_ns = state.ramp_percentage_changed_ns = now
            if build_id:
                v = state.versions[build_id]
                v.status = Status.WORKER_DEPLOYMENT_VERSION_STATUS_CURRENT
                v.current_since_ns = v.last_current_ns = v.routing_update_ns = now
                v.ramping_since_ns, v.ramp_percentage = 0, 0.0
                v.first_activation_ns = v.first_activation_ns or now
                v.drainage_status, v.drainage_changed_ns, v.drainage_checked_ns = 0, now, now
            state.current = build_id
            state.current_changed_ns = now
            state.revision += 1
            state.last_modifier = request.identity
            state.token_ns = now
            resp.conflict_token = conflict_token(now)
            return resp

        resp = await self._change(namespace_id, name, change)
        self._wake_drainage()
        return resp

    def _wake_drainage(self) -> None:
        if self.drainage_started is not None:
            self.drainage_started()

    async def set_ramping(
        self, namespace_id: str, request: rr.SetWorkerDeploymentRampingVersionRequest, build_id: str
    ) -> rr.SetWorkerDeploymentRampingVersionResponse:
        name = request.deployment_name
        percentage = request.percentage
        if not 0 <= percentage <= 100:
            raise InvalidArgument("Percentage must be between 0 and 100 (inclusive)")
        unset = not build_id and percentage == 0

        async def change(loaded: _Loaded):
            state = loaded.state
            assert state is not None
            previous = state.ramping
            resp = rr.SetWorkerDeploymentRampingVersionResponse(
                previous_version=version_string(name, previous) if previous is not None else "",
                previous_percentage=state.ramp_percentage if previous is not None else 0.0,
            )
            if previous:
                resp.previous_deployment_version.CopyFrom(
                    WorkerDeploymentVersion(deployment_name=name, build_id=previous)
                )
            target = None if unset else build_id
            if (
                target == previous
                and (unset or percentage == state.ramp_percentage)
                and request.identity == state.last_modifier
            ):
                resp.conflict_token = conflict_token(state.token_ns)
                return _NoWrite(resp)
            self._check_token_and_manager(state, request.conflict_token, request.identity)
            if target is not None and target == state.current:
                raise FailedPrecondition(
                    f"requested ramping version {version_string(name, target)} is already current"
                )
            if target and target not in state.versions and not request.allow_no_pollers:
                raise NotFound(VERSION_NOT_FOUND.format(target, name))
            if target and target != previous and state.current and not request.ignore_missing_task_queues:
                await self._refuse_missing_queues(namespace_id, state, state.current, target, "ramping")
            now = _now_ns()
            if target and target not in state.versions:
                await self._make_room(namespace_id, state, target)
                state.versions[target] = VersionState(build_id=target, create_ns=now)
            if previous and previous != target and previous in state.versions:
                _deactivate(state.versions[previous], now)
            if target:
                v = state.versions[target]
                v.status = Status.WORKER_DEPLOYMENT_VERSION_STATUS_RAMPING
                if previous != target:
                    v.ramping_since_ns = now
                v.ramp_percentage = percentage
                v.routing_update_ns = now
                v.first_activation_ns = v.first_activation_ns or now
                v.drainage_status = 0  # no longer draining; the reference reports no new drainage info
            if target != previous:
                state.ramping_changed_ns = now
            state.ramp_percentage_changed_ns = now
            state.ramping = target
            state.ramp_percentage = 0.0 if unset else percentage
            state.revision += 1
            state.last_modifier = request.identity
            state.token_ns = now
            resp.conflict_token = conflict_token(now)
            return resp

        resp = await self._change(namespace_id, name, change)
        self._wake_drainage()
        return resp

    async def _refuse_missing_queues(
        self, namespace_id: str, state: DeploymentState, current: str, proposed: str, role: str
    ) -> None:
        """Refuse a version that lacks a task queue of the current version that still has pollers: those
        would become unversioned (the reference's ErrCurrent/RampingVersionDoesNotHaveAllTaskQueues)."""
        if current not in state.versions or proposed not in state.versions:
            return
        have = {tuple(q) for q in state.versions[proposed].task_queues}
        for queue, task_type in state.versions[current].task_queues:
            if (queue, task_type) in have or self.pollers is None:
                continue
            if await self.pollers(namespace_id, versioned_queue(queue, state.name, current), task_type):
                raise FailedPrecondition(
                    f"proposed {role} version '{error_version(state.name, proposed)}' is missing active task "
                    f"queues from the current version; these would become unversioned if it is set as the "
                    f"{role} version"
                )

    async def set_manager(
        self, namespace_id: str, request: rr.SetWorkerDeploymentManagerRequest
    ) -> rr.SetWorkerDeploymentManagerResponse:
        manager = request.identity if request.self else request.manager_identity

        def change(loaded: _Loaded):
            state = loaded.state
            assert state is not None
            self._check_token_and_manager(state, request.conflict_token, request.identity)
            resp = rr.SetWorkerDeploymentManagerResponse(previous_manager_identity=state.manager)
            now = _now_ns()
            state.manager = manager
            state.last_modifier = request.identity
            state.token_ns = now
            resp.conflict_token = conflict_token(now)
            return resp

        return await self._change(namespace_id, request.deployment_name, change)

    async def delete_version(
        self, namespace_id: str, deployment: str, build_id: str, skip_drainage: bool, identity: str
    ) -> None:
        if (await self._load(namespace_id, deployment)).state is None:
            # The reference names its deployment workflow here.
            raise NotFound(f"workflow not found for ID: temporal-sys-worker-deployment:{deployment}")

        async def change(loaded: _Loaded):
            state = loaded.state
            assert state is not None
            v = state.versions.get(build_id)
            if v is None:
                raise NotFound(VERSION_NOT_FOUND.format(build_id, deployment))
            label = error_version(deployment, build_id)
            if build_id in (state.current, state.ramping):
                raise FailedPrecondition(
                    f"version '{label}' cannot be deleted since it is current or ramping"
                )
            if state.manager and state.manager != identity:
                raise FailedPrecondition(MANAGER_MISMATCH.format(state.manager, identity))
            if not skip_drainage and v.drainage_status == Drainage.VERSION_DRAINAGE_STATUS_DRAINING:
                raise FailedPrecondition(f"version '{label}' cannot be deleted since it is draining")
            if await self._has_pollers(namespace_id, deployment, v):
                raise FailedPrecondition(f"version '{label}' cannot be deleted since it has active pollers")
            del state.versions[build_id]
            state.last_modifier = identity
            return None

        await self._change(namespace_id, deployment, change)
        self._forget_registered(namespace_id, deployment, build_id)

    async def delete_deployment(self, namespace_id: str, name: str, identity: str) -> None:
        for _ in range(WRITE_ATTEMPTS):
            loaded = await self._load(namespace_id, name)
            if loaded.state is None:
                return  # as the reference: deleting a deployment that is not there succeeds
            if loaded.state.versions:
                raise FailedPrecondition("deployment has versions, can't be deleted")
            try:
                await self.store.delete_worker_deployment(namespace_id, name, loaded.version)
            except ConditionFailedError:
                continue
            self._forget_routes(namespace_id)
            self._registered = {k: t for k, t in self._registered.items() if k[:2] != (namespace_id, name)}
            return
        raise Unavailable(f"Worker Deployment '{name}' changed concurrently; try again")

    async def update_metadata(
        self,
        namespace_id: str,
        deployment: str,
        build_id: str,
        upserts: dict[str, Payload],
        removals: list[str],
    ) -> dict[str, Payload]:
        if not upserts and not removals:
            raise InvalidArgument("At least one of remove_entries or upsert_entries must be provided")

        def change(loaded: _Loaded):
            state = loaded.state
            assert state is not None
            v = state.versions.get(build_id)
            if v is None:
                raise NotFound(VERSION_NOT_FOUND.format(build_id, deployment))
            for key, payload in upserts.items():
                v.metadata[key] = base64.b64encode(payload.SerializeToString()).decode()
            for key in removals:
                v.metadata.pop(key, None)
            result = {}
            for key, blob in v.metadata.items():
                payload = Payload()
                payload.ParseFromString(base64.b64decode(blob))
                result[key] = payload
            return result

        try:
            return await self._change(namespace_id, deployment, change)
        except NotFound as e:
            if e.message.startswith("no Worker Deployment"):
                raise NotFound(VERSION_NOT_FOUND.format(build_id, deployment)) from None
            raise


@dataclass
class _NoWrite:
    """A change that changes nothing: answer this without writing."""

    answer: object


def _queues(state: DeploymentState, build_id: str | None) -> set[tuple[str, int]]:
    if not build_id or build_id not in state.versions:
        return set()
    return {(q[0], int(q[1])) for q in state.versions[build_id].task_queues}


def drainage_due_ns(v: VersionState) -> int:
    """When a draining version is next checked: the visibility grace period after it started draining, then
    every refresh interval (matching.wv.VersionDrainageStatusVisibilityGracePeriod / RefreshInterval)."""
    first = v.drainage_checked_ns <= v.drainage_changed_ns
    wait_ms = LIMITS.version_drainage_grace_ms if first else LIMITS.version_drainage_refresh_ms
    return max(v.drainage_checked_ns, v.drainage_changed_ns) + wait_ms * 1_000_000


def _deactivate(v: VersionState, now: int) -> None:
    """A version that stops being current or ramping drains: pinned workflows may still run on it."""
    v.status = Status.WORKER_DEPLOYMENT_VERSION_STATUS_DRAINING
    v.current_since_ns = v.ramping_since_ns = 0
    v.ramp_percentage = 0.0
    v.routing_update_ns = v.last_deactivation_ns = now
    v.drainage_status = Drainage.VERSION_DRAINAGE_STATUS_DRAINING
    v.drainage_changed_ns = v.drainage_checked_ns = now


async def _maybe_await(value):
    if hasattr(value, "__await__"):
        return await value
    return value


WORKFLOW = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
