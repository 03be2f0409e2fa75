"""A run's worker versioning (Worker Deployments), as the reference 1.32 records it.

The SDK reports on each RespondWorkflowTaskCompleted the deployment version of the worker (its
`deployment_options`, or the older `deployment`) and the workflow's versioning behavior. The run remembers
the last report; with its versioning override (set at start or by UpdateWorkflowExecutionOptions) that
decides the run's effective behavior and, for a pinned run, the only version whose pollers may take its
tasks (matching sends them to that version's own queue, cluster/matching/versioning.py). Describe's
`versioning_info`, the WorkflowTaskCompleted event's fields and the Temporal* search attributes
visibility lists by are all derived here.
"""

from __future__ import annotations

import json

from temporalio.api.common.v1 import Payload, SearchAttributes
from temporalio.api.deployment.v1 import WorkerDeploymentOptions, WorkerDeploymentVersion
from temporalio.api.enums.v1 import VersioningBehavior, WorkerVersioningMode
from temporalio.api.history.v1 import WorkflowTaskCompletedEventAttributes
from temporalio.api.workflow.v1 import VersioningOverride, WorkflowExecutionVersioningInfo

from hourglass.cluster.history.mutable_state import MutableState

PINNED = VersioningBehavior.VERSIONING_BEHAVIOR_PINNED
AUTO_UPGRADE = VersioningBehavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE
_VERSIONED = WorkerVersioningMode.WORKER_VERSIONING_MODE_VERSIONED

BEHAVIOR_ATTRIBUTE = "TemporalWorkflowVersioningBehavior"
VERSION_ATTRIBUTE = "TemporalWorkerDeploymentVersion"
DEPLOYMENT_ATTRIBUTE = "TemporalWorkerDeployment"
USED_VERSIONS_ATTRIBUTE = "TemporalUsedWorkerDeploymentVersions"
_BEHAVIOR_NAMES = {PINNED: "Pinned", AUTO_UPGRADE: "AutoUpgrade"}


def version_key(version: WorkerDeploymentVersion | None) -> str:
    """ "deployment:build" (the search attributes' and routing's spelling); "" for no version."""
    if version is None or not (version.deployment_name or version.build_id):
        return ""
    return f"{version.deployment_name}:{version.build_id}"


def poller_version(options: WorkerDeploymentOptions) -> str:
    """The version key of a poller that uses worker versioning ("" for an unversioned one)."""
    if options.worker_versioning_mode != _VERSIONED:
        return ""
    return version_key(
        WorkerDeploymentVersion(deployment_name=options.deployment_name, build_id=options.build_id)
    )


def reported_version(request) -> WorkerDeploymentVersion | None:
    """The version a RespondWorkflowTaskCompleted comes from: its versioned `deployment_options`, else
    the older `deployment` (series name + build id); None for an unversioned worker."""
    options = request.deployment_options
    if options.worker_versioning_mode == _VERSIONED:
        return WorkerDeploymentVersion(deployment_name=options.deployment_name, build_id=options.build_id)
    if request.HasField("deployment") and request.deployment.series_name:
        return WorkerDeploymentVersion(
            deployment_name=request.deployment.series_name, build_id=request.deployment.build_id
        )
    return None


def record_completion(ms: MutableState, request, attrs: WorkflowTaskCompletedEventAttributes) -> None:
    """Note the worker's report in the run and on its WorkflowTaskCompleted event (the reference writes
    the behavior, the deployment name and version; nothing for an unversioned worker)."""
    version = reported_version(request)
    info = ms.info
    if version is None:
        info.versioning_behavior = 0
        info.deployment_version = None
        return
    behavior = request.versioning_behavior
    info.versioning_behavior = behavior
    info.deployment_version = version
    if behavior:
        attrs.versioning_behavior = behavior
    attrs.worker_deployment_name = version.deployment_name
    attrs.deployment_version.CopyFrom(version)
    if version_key(version) not in info.used_deployment_versions:
        info.used_deployment_versions.append(version_key(version))


def replay_completion(ms: MutableState, attrs: WorkflowTaskCompletedEventAttributes) -> None:
    """The run's versioning after a WorkflowTaskCompleted event (rebuilding a run from its history)."""
    info = ms.info
    if not attrs.HasField("deployment_version"):
        info.versioning_behavior, info.deployment_version = 0, None
        return
    info.versioning_behavior = attrs.versioning_behavior
    info.deployment_version = attrs.deployment_version
    if version_key(attrs.deployment_version) not in info.used_deployment_versions:
        info.used_deployment_versions.append(version_key(attrs.deployment_version))


def has_override(ms: MutableState) -> bool:
    return ms.info.versioning_override is not None and ms.info.versioning_override.ByteSize() > 0


def override_behavior(override: VersioningOverride) -> int:
    if override.HasField("pinned") or override.behavior == PINNED:
        return PINNED
    if override.auto_upgrade or override.behavior == AUTO_UPGRADE:
        return AUTO_UPGRADE
    return 0


def override_version(override: VersioningOverride) -> WorkerDeploymentVersion | None:
    if override.HasField("pinned") and override.pinned.HasField("version"):
        return override.pinned.version
    if override.pinned_version:
        name, _, build = override.pinned_version.partition(".")
        return WorkerDeploymentVersion(deployment_name=name, build_id=build)
    return None


def effective_behavior(ms: MutableState) -> int:
    """The override's behavior when there is one, else the last one the worker reported."""
    if has_override(ms):
        return override_behavior(ms.info.versioning_override)
    return ms.info.versioning_behavior


def effective_version(ms: MutableState) -> WorkerDeploymentVersion | None:
    """A pinned override's version, else the version of the worker that last completed a task."""
    if has_override(ms) and override_behavior(ms.info.versioning_override) == PINNED:
        return override_version(ms.info.versioning_override)
    return ms.info.deployment_version


def pinned_version(ms: MutableState) -> str:
    """The version key the run's tasks are pinned to ("" when they may go to any poller)."""
    if effective_behavior(ms) != PINNED:
        return ""
    return version_key(effective_version(ms))


def target_version_changed(ms: MutableState, target_version: str | None) -> bool:
    """Whether a pinned run's next task tells the worker its task queue now routes new work to another
    version (`target_version`: the version key matching routes the run's id to, "" for unversioned, None
    when no deployment routes the queue), so the workflow may continue as new onto it, as the reference
    sets WorkflowTaskStarted's target_worker_deployment_version_changed. Never for an auto-upgrade run
    (it moves by itself) nor for one pinned by an override (the operator chose its version)."""
    if target_version is None or not told_of_new_targets(ms):
        return False
    return target_version != pinned_version(ms)


def told_of_new_targets(ms: MutableState) -> bool:
    """A run pinned by its worker (not by an override): its tasks say when its queue moved on."""
    return effective_behavior(ms) == PINNED and not has_override(ms)


def versioning_info(ms: MutableState) -> WorkflowExecutionVersioningInfo | None:
    """Describe's versioning_info (None when the run has none): the reported behavior and version (with
    the deprecated "deployment.build" spelling) and the override with its deprecated fields."""
    info = ms.info
    if info.versioning_override is None and info.deployment_version is None:
        return None
    out = WorkflowExecutionVersioningInfo()
    if info.versioning_behavior:
        out.behavior = info.versioning_behavior  # type: ignore[assignment]
    if info.deployment_version is not None:
        out.deployment_version.CopyFrom(info.deployment_version)
        out.version = _dotted(info.deployment_version)
    if has_override(ms):
        out.versioning_override.CopyFrom(with_deprecated_fields(info.versioning_override))
    return out


def with_deprecated_fields(override: VersioningOverride) -> VersioningOverride:
    """The override as describe shows it: `behavior` and `pinned_version` (or `auto_upgrade`) filled in."""
    out = VersioningOverride()
    out.CopyFrom(override)
    behavior = override_behavior(override)
    if behavior == AUTO_UPGRADE:
        out.auto_upgrade, out.behavior = True, AUTO_UPGRADE  # type: ignore[assignment]
    elif behavior == PINNED:
        out.behavior = PINNED  # type: ignore[assignment]
        version = override_version(override)
        if version is not None:
            out.pinned.version.CopyFrom(version)
            out.pinned_version = _dotted(version)
    return out


def _dotted(version: WorkerDeploymentVersion) -> str:
    return f"{version.deployment_name}.{version.build_id}"


def index(ms: MutableState) -> bool:
    """Set the run's Temporal* versioning search attributes as the reference does (the effective behavior
    and version, the deployment, every version that completed a task); True when they changed."""
    info = ms.info
    if info.search_attributes is None:
        info.search_attributes = SearchAttributes()
    fields = info.search_attributes.indexed_fields
    before = {k: fields[k].SerializeToString(deterministic=True) for k in _ATTRIBUTES if k in fields}
    behavior = _BEHAVIOR_NAMES.get(effective_behavior(ms))
    version = effective_version(ms) if behavior else None
    wanted: dict[str, Payload] = {}
    if behavior:
        wanted[BEHAVIOR_ATTRIBUTE] = _keyword(behavior)
    if version_key(version):
        wanted[VERSION_ATTRIBUTE] = _keyword(version_key(version))
        wanted[DEPLOYMENT_ATTRIBUTE] = _keyword(version.deployment_name)  # type: ignore[union-attr]
    if info.used_deployment_versions:
        wanted[USED_VERSIONS_ATTRIBUTE] = Payload(
            metadata={"encoding": b"json/plain", "type": b"KeywordList"},
            data=json.dumps(info.used_deployment_versions, separators=(",", ":")).encode(),
        )
    for name in _ATTRIBUTES:
        if name in wanted:
            fields[name].CopyFrom(wanted[name])
        elif name in fields:
            del fields[name]
    after = {k: fields[k].SerializeToString(deterministic=True) for k in _ATTRIBUTES if k in fields}
    return before != after


_ATTRIBUTES = (BEHAVIOR_ATTRIBUTE, VERSION_ATTRIBUTE, DEPLOYMENT_ATTRIBUTE, USED_VERSIONS_ATTRIBUTE)


def _keyword(value: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain", "type": b"Keyword"}, data=json.dumps(value).encode())


def normalized(override: VersioningOverride) -> VersioningOverride:
    """The override as the reference stores it and writes it in events: `pinned` (with its version) or
    `auto_upgrade`, without the deprecated `behavior` / `pinned_version` / `deployment` spellings."""
    behavior = override_behavior(override)
    if behavior == AUTO_UPGRADE and not override.HasField("pinned"):
        return VersioningOverride(auto_upgrade=True)
    if behavior == PINNED:
        out = VersioningOverride()
        out.pinned.CopyFrom(override.pinned)
        if not out.pinned.behavior:
            out.pinned.behavior = VersioningOverride.PinnedOverrideBehavior.PINNED_OVERRIDE_BEHAVIOR_PINNED
        version = override_version(override)
        if version is not None:
            out.pinned.version.CopyFrom(version)
        return out
    return override
