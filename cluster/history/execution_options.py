"""UpdateWorkflowExecutionOptions as the reference 1.32 does it: the request's checks and messages, the
update mask merged into the run's options (versioning override, priority), and one
WORKFLOW_EXECUTION_OPTIONS_UPDATED event whenever the merged options differ from the stored ones (a
repeated or empty-mask call writes nothing), answering the merged options."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from google.protobuf.field_mask_pb2 import FieldMask
from temporalio.api.enums.v1 import EventType, VersioningBehavior
from temporalio.api.history.v1 import WorkflowExecutionOptionsUpdatedEventAttributes
from temporalio.api.workflow.v1 import VersioningOverride, WorkflowExecutionOptions

from hourglass.cluster.errors import FailedPrecondition, InvalidArgument, NotFound
from hourglass.cluster.history import workflow_versioning
from hourglass.cluster.history.mutable_state import MutableState
from hourglass.cluster.history.tasks import TransferKind
from hourglass.cluster.history.transition import Transition

_OPTIONS = WorkflowExecutionOptions.DESCRIPTOR
_AUTO_UPGRADE = VersioningBehavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE
_PINNED = VersioningBehavior.VERSIONING_BEHAVIOR_PINNED


def check_request(request) -> None:
    """The frontend's checks, before the run is looked up (the reference's order and messages)."""
    if not request.HasField("update_mask"):
        raise InvalidArgument("UpdateMask is required")
    if not request.HasField("workflow_execution_options"):
        raise InvalidArgument("WorkflowExecutionOptions is required")
    if not request.workflow_execution.workflow_id:
        raise InvalidArgument("WorkflowId is not set on request.")
    if request.workflow_execution.run_id:
        try:
            uuid.UUID(request.workflow_execution.run_id)
        except ValueError:
            raise InvalidArgument("RunId is not valid UUID.") from None
    for path in request.update_mask.paths:
        if not FieldMask(paths=[path]).IsValidForDescriptor(_OPTIONS):
            # The reference passes Go's protobuf error through (with its non-breaking space).
            raise InvalidArgument(
                f'error parsing UpdateMask: proto:\u00a0invalid path "{path}" for message '
                f'"{_OPTIONS.full_name}"'
            )
    options = request.workflow_execution_options
    if options.priority.priority_key < 0:
        raise InvalidArgument("priority key can't be negative")
    if _names(request.update_mask, "versioning_override") and options.HasField("versioning_override"):
        override = options.versioning_override
        if not (override.behavior or override.auto_upgrade or override.HasField("pinned")):
            raise InvalidArgument("override behavior is required")


def _names(mask: FieldMask, field: str) -> bool:
    return any(p == field or p.startswith(field + ".") for p in mask.paths)


def current_options(ms: MutableState) -> WorkflowExecutionOptions:
    """The run's options as the answer and describe show them: the override with its deprecated
    `behavior` (or `auto_upgrade`) filled in as the reference does."""
    out = WorkflowExecutionOptions()
    if has_override(ms):
        out.versioning_override.CopyFrom(ms.info.versioning_override)
    if ms.info.priority is not None:
        out.priority.CopyFrom(ms.info.priority)
    return out


def has_override(ms: MutableState) -> bool:
    return ms.info.versioning_override is not None and ms.info.versioning_override.ByteSize() > 0


def pinned_request(options: WorkflowExecutionOptions, mask: FieldMask) -> bool:
    """Whether the request sets a pinned override (its version must then be present in the queue)."""
    return _names(mask, "versioning_override") and (
        workflow_versioning.override_behavior(options.versioning_override) == _PINNED
    )


def update(
    ms: MutableState,
    tr: Transition,
    options: WorkflowExecutionOptions,
    mask: FieldMask,
    identity: str,
    present: Collection[str] = (),
) -> WorkflowExecutionOptions:
    """Merge `options` into the run along `mask`; write the event when anything changed. `present`: the
    versions the run's task queue has (a pinned override may name one of those)."""
    if not ms.running:
        raise NotFound("workflow execution already completed")
    before = current_options(ms)
    after = WorkflowExecutionOptions()
    after.CopyFrom(before)
    if mask.paths:
        mask.MergeMessage(options, after, replace_message_field=True, replace_repeated_field=True)
    if after.HasField("versioning_override") and _names(mask, "versioning_override"):
        _check_pinned(ms, after.versioning_override, present)
        after.versioning_override.CopyFrom(_with_current_pin(ms, after.versioning_override))
    if after == before and after.HasField("priority") == before.HasField("priority"):
        return after
    # Stored (and answered from now on) with the deprecated `behavior: AUTO_UPGRADE` spelled
    # `auto_upgrade`, as the reference does; this answer is the merged request as given.
    # An unset override stays as an empty one: the reference's describe keeps an empty versioning_info.
    pinned_before = workflow_versioning.pinned_version(ms)
    ms.info.versioning_override = workflow_versioning.normalized(after.versioning_override)
    if workflow_versioning.pinned_version(ms) != pinned_before:
        _redispatch(ms, tr)
    ms.info.priority = after.priority if after.HasField("priority") else None
    _index_behavior(ms, tr)
    attrs = WorkflowExecutionOptionsUpdatedEventAttributes(identity=identity)
    if has_override(ms):
        attrs.versioning_override.CopyFrom(ms.info.versioning_override)
    else:
        attrs.unset_versioning_override = True
    if ms.info.priority is not None:
        attrs.priority.CopyFrom(ms.info.priority)
    event = tr.add_event(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED, attrs)
    event.worker_may_ignore = True
    return after


def _redispatch(ms: MutableState, tr: Transition) -> None:
    """The run's pin moved: its sticky worker (of the old version) is dropped, and its tasks waiting for
    a poller are dispatched again to the new version (the old dispatches are refused when polled)."""
    ms.clear_sticky()
    wt = ms.workflow_task
    if wt is not None and not wt.started and not wt.speculative:
        tr.transfer(TransferKind.WORKFLOW_TASK, scheduled_event_id=wt.scheduled_event_id)
    for ai in ms.activities.values():
        if ai.task_queue == ms.info.task_queue and not (ai.started or ai.waiting_retry or ai.paused):
            tr.transfer(
                TransferKind.ACTIVITY_TASK, scheduled_event_id=ai.scheduled_event_id, attempt=ai.attempt
            )


def _index_behavior(ms: MutableState, tr: Transition) -> None:
    """The Temporal* versioning search attributes follow the override (workflow_versioning.index)."""
    workflow_versioning.index(ms)
    tr.transfer(TransferKind.VISIBILITY)


def _check_pinned(ms: MutableState, override: VersioningOverride, present: Collection[str]) -> None:
    """A pinned override names a deployment version the run's task queue has (its workers polled the
    queue or completed the run's tasks), or none when the run is already pinned (it stays on its
    version); otherwise the reference's messages."""
    if workflow_versioning.override_behavior(override) != _PINNED:
        return
    version = workflow_versioning.override_version(override)
    if version is None or not (version.deployment_name or version.build_id):
        if _current_pin(ms) is not None:
            return
        behavior = {_PINNED: "Pinned", _AUTO_UPGRADE: "AutoUpgrade"}.get(
            workflow_versioning.effective_behavior(ms), "Unspecified"
        )
        raise FailedPrecondition(
            "must specify a specific pinned override version because workflow with id "
            f"{ms.info.workflow_id} has behavior {behavior} and is not yet pinned to any version"
        )
    key = workflow_versioning.version_key(version)
    if key in present or key in ms.info.used_deployment_versions:
        return
    raise FailedPrecondition(
        f"Pinned version '{version.deployment_name}:{version.build_id}' is not present in task queue "
        f"'{ms.info.task_queue}' of type 'Workflow'"
    )


def _current_pin(ms: MutableState):
    """The version a pinned run is on now (None when it is not pinned to one)."""
    if workflow_versioning.effective_behavior(ms) != _PINNED:
        return None
    version = workflow_versioning.effective_version(ms)
    return version if workflow_versioning.version_key(version) else None


def _with_current_pin(ms: MutableState, override: VersioningOverride) -> VersioningOverride:
    """A pinned override without a version pins the run to the version it is on."""
    if workflow_versioning.override_behavior(override) != _PINNED:
        return override
    if workflow_versioning.override_version(override) is not None:
        return override
    out = VersioningOverride()
    out.CopyFrom(override)
    out.pinned.version.CopyFrom(_current_pin(ms))
    return out
