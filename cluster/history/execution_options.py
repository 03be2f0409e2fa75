"""UpdateWorkflowExecutionOptions as the reference 1.32 does it: the request's checks and messages, the
update mask merged into the run's options (versioning override, priority), and one
WORKFLOW_EXECUTION_OPTIONS_UPDATED event whenever the merged options differ from the stored ones (a
repeated or empty-mask call writes nothing), answering the merged options."""

from __future__ import annotations

import uuid

from google.protobuf.field_mask_pb2 import FieldMask
from temporalio.api.common.v1 import Payload, SearchAttributes
from temporalio.api.enums.v1 import EventType, VersioningBehavior
from temporalio.api.history.v1 import WorkflowExecutionOptionsUpdatedEventAttributes
from temporalio.api.workflow.v1 import VersioningOverride, WorkflowExecutionOptions

from hourglass.cluster.errors import FailedPrecondition, InvalidArgument, NotFound
from hourglass.cluster.history.mutable_state import MutableState
from hourglass.cluster.history.tasks import TransferKind
from hourglass.cluster.history.transition import Transition

_OPTIONS = WorkflowExecutionOptions.DESCRIPTOR
_AUTO_UPGRADE = VersioningBehavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE
_PINNED = VersioningBehavior.VERSIONING_BEHAVIOR_PINNED
BEHAVIOR_ATTRIBUTE = "TemporalWorkflowVersioningBehavior"
_AUTO_UPGRADE_KEYWORD = Payload(
    metadata={"encoding": b"json/plain", "type": b"Keyword"}, data=b'"AutoUpgrade"'
)


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


def with_deprecated_fields(override: VersioningOverride) -> VersioningOverride:
    """Describe's `versioning_info.versioning_override`: both spellings of auto-upgrade set."""
    out = VersioningOverride()
    out.CopyFrom(override)
    if out.auto_upgrade or out.behavior == _AUTO_UPGRADE:
        out.auto_upgrade, out.behavior = True, _AUTO_UPGRADE
    return out


def update(
    ms: MutableState, tr: Transition, options: WorkflowExecutionOptions, mask: FieldMask, identity: str
) -> WorkflowExecutionOptions:
    """Merge `options` into the run along `mask`; write the event when anything changed."""
    if not ms.running:
        raise NotFound("workflow execution already completed")
    before = current_options(ms)
    after = WorkflowExecutionOptions()
    after.CopyFrom(before)
    if mask.paths:
        mask.MergeMessage(options, after, replace_message_field=True, replace_repeated_field=True)
    if after.HasField("versioning_override") and _names(mask, "versioning_override"):
        _check_pinned(ms, after.versioning_override)
    if after == before and after.HasField("priority") == before.HasField("priority"):
        return after
    # Stored (and answered from now on) with the deprecated `behavior: AUTO_UPGRADE` spelled
    # `auto_upgrade`, as the reference does; this answer is the merged request as given.
    # An unset override stays as an empty one: the reference's describe keeps an empty versioning_info.
    ms.info.versioning_override = _stored(after.versioning_override)
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


def _index_behavior(ms: MutableState, tr: Transition) -> None:
    """TemporalWorkflowVersioningBehavior, as the reference indexes it: "AutoUpgrade" while an
    auto-upgrade override is set (a pinned one cannot be set here), absent otherwise; lists see it."""
    fields = ms.info.search_attributes.indexed_fields if ms.info.search_attributes is not None else None
    if has_override(ms) and with_deprecated_fields(ms.info.versioning_override).auto_upgrade:
        if ms.info.search_attributes is None:
            ms.info.search_attributes = SearchAttributes()
        ms.info.search_attributes.indexed_fields[BEHAVIOR_ATTRIBUTE].CopyFrom(_AUTO_UPGRADE_KEYWORD)
    elif fields is not None and BEHAVIOR_ATTRIBUTE in fields:
        del fields[BEHAVIOR_ATTRIBUTE]
    tr.transfer(TransferKind.VISIBILITY)


def _stored(override: VersioningOverride) -> VersioningOverride:
    if override.behavior == _AUTO_UPGRADE and not override.HasField("pinned"):
        return VersioningOverride(auto_upgrade=True)
    return override


def _check_pinned(ms: MutableState, override: VersioningOverride) -> None:
    """A pinned override names a deployment version the run's task queue has; Hourglass has no worker
    deployments, so no version is ever present (the reference's answer for an unknown version)."""
    if not (override.HasField("pinned") or override.behavior == _PINNED):
        return
    version = override.pinned.version
    name, build = version.deployment_name, version.build_id
    if not (name or build):
        behavior = "AutoUpgrade" if has_override(ms) else "Unspecified"
        raise FailedPrecondition(
            "must specify a specific pinned override version because workflow with id "
            f"{ms.info.workflow_id} has behavior {behavior} and is not yet pinned to any version"
        )
    raise FailedPrecondition(
        f"Pinned version '{name}:{build}' is not present in task queue '{ms.info.task_queue}' of type 'Workflow'"
    )
