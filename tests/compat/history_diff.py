"""Turn a workflow history into a comparable form, and diff two of them readably.

Kept per event: event_id, the event type, and a whitelist of attributes that SDKs read or that a user
sees (references between events, names, payloads, failures, timeouts, retry state, attempts). Dropped:
times, identities, request ids, task tokens, run ids, task queue names (tests use unique ones), history
sizes, binary checksums, build ids / worker versions / deployments, metering and priorities. Strings
that are unique per run (workflow id, task queue) are replaced by placeholders wherever they appear.

WorkflowTaskScheduled keeps its task queue's kind (normal or sticky), not its name.

WorkflowTaskCompleted.sdk_metadata is kept (flags sorted): SDKs read the flags back on replay, so a
server must store them verbatim.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent

# event type (without EVENT_TYPE_) -> attribute fields compared.
WHITELIST: dict[str, tuple[str, ...]] = {
    "WORKFLOW_EXECUTION_STARTED": (
        "workflow_type",
        "input",
        "workflow_execution_timeout",
        "workflow_run_timeout",
        "workflow_task_timeout",
        "attempt",
        "retry_policy",
        "cron_schedule",
        "first_workflow_task_backoff",
        "initiator",
        "parent_initiated_event_id",
        "continued_failure",
        "last_completion_result",
    ),
    "WORKFLOW_EXECUTION_COMPLETED": ("result", "workflow_task_completed_event_id"),
    "WORKFLOW_EXECUTION_FAILED": ("failure", "retry_state", "workflow_task_completed_event_id"),
    "WORKFLOW_EXECUTION_TIMED_OUT": ("retry_state",),
    "WORKFLOW_EXECUTION_CANCELED": ("details", "workflow_task_completed_event_id"),
    "WORKFLOW_EXECUTION_CANCEL_REQUESTED": ("cause", "external_initiated_event_id"),
    "WORKFLOW_EXECUTION_TERMINATED": ("reason", "details"),
    "WORKFLOW_EXECUTION_SIGNALED": ("signal_name", "input"),
    "WORKFLOW_TASK_SCHEDULED": ("start_to_close_timeout", "attempt"),
    "WORKFLOW_TASK_STARTED": ("scheduled_event_id", "suggest_continue_as_new"),
    "WORKFLOW_TASK_COMPLETED": ("scheduled_event_id", "started_event_id", "sdk_metadata"),
    "WORKFLOW_TASK_TIMED_OUT": ("scheduled_event_id", "started_event_id", "timeout_type"),
    "WORKFLOW_TASK_FAILED": ("scheduled_event_id", "started_event_id", "cause", "failure"),
    "WORKFLOW_EXECUTION_PAUSED": ("reason",),
    # The new options are the event's whole point: its priority is kept.
    "WORKFLOW_EXECUTION_OPTIONS_UPDATED": ("versioning_override", "unset_versioning_override", "priority"),
    "WORKFLOW_EXECUTION_UNPAUSED": ("reason",),
    "ACTIVITY_TASK_SCHEDULED": (
        "activity_id",
        "activity_type",
        "input",
        "schedule_to_close_timeout",
        "schedule_to_start_timeout",
        "start_to_close_timeout",
        "heartbeat_timeout",
        "workflow_task_completed_event_id",
        "retry_policy",
    ),
    "ACTIVITY_TASK_STARTED": ("scheduled_event_id", "attempt", "last_failure"),
    "ACTIVITY_TASK_COMPLETED": ("result", "scheduled_event_id", "started_event_id"),
    "ACTIVITY_TASK_FAILED": ("failure", "scheduled_event_id", "started_event_id", "retry_state"),
    "ACTIVITY_TASK_TIMED_OUT": ("failure", "scheduled_event_id", "started_event_id", "retry_state"),
    "ACTIVITY_TASK_CANCEL_REQUESTED": ("scheduled_event_id", "workflow_task_completed_event_id"),
    "ACTIVITY_TASK_CANCELED": (
        "details",
        "latest_cancel_requested_event_id",
        "scheduled_event_id",
        "started_event_id",
    ),
    "TIMER_STARTED": ("timer_id", "start_to_fire_timeout", "workflow_task_completed_event_id"),
    "TIMER_FIRED": ("timer_id", "started_event_id"),
    "TIMER_CANCELED": ("timer_id", "started_event_id", "workflow_task_completed_event_id"),
    "MARKER_RECORDED": ("marker_name", "details", "workflow_task_completed_event_id", "failure"),
    "WORKFLOW_EXECUTION_CONTINUED_AS_NEW": (
        "workflow_type",
        "input",
        "workflow_run_timeout",
        "workflow_task_timeout",
        "workflow_task_completed_event_id",
        "backoff_start_interval",
        "initiator",
    ),
    "START_CHILD_WORKFLOW_EXECUTION_INITIATED": (
        "workflow_id",
        "workflow_type",
        "input",
        "workflow_execution_timeout",
        "workflow_run_timeout",
        "workflow_task_timeout",
        "parent_close_policy",
        "workflow_task_completed_event_id",
        "workflow_id_reuse_policy",
        "retry_policy",
        "cron_schedule",
    ),
    "START_CHILD_WORKFLOW_EXECUTION_FAILED": (
        "cause",
        "initiated_event_id",
        "workflow_task_completed_event_id",
    ),
    "CHILD_WORKFLOW_EXECUTION_STARTED": ("initiated_event_id", "workflow_type"),
    "CHILD_WORKFLOW_EXECUTION_COMPLETED": (
        "result",
        "initiated_event_id",
        "started_event_id",
        "workflow_type",
    ),
    "CHILD_WORKFLOW_EXECUTION_FAILED": ("failure", "initiated_event_id", "started_event_id", "retry_state"),
    "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED": (
        "signal_name",
        "input",
        "workflow_task_completed_event_id",
        "child_workflow_only",
    ),
    "EXTERNAL_WORKFLOW_EXECUTION_SIGNALED": ("initiated_event_id",),
    "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED": (
        "cause",
        "initiated_event_id",
        "workflow_task_completed_event_id",
    ),
    "REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED": (
        "workflow_task_completed_event_id",
        "child_workflow_only",
    ),
    "EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED": ("initiated_event_id",),
    "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES": ("search_attributes", "workflow_task_completed_event_id"),
    "NEXUS_OPERATION_SCHEDULED": (
        "endpoint",
        "service",
        "operation",
        "input",
        "schedule_to_close_timeout",
        "nexus_header",
        "workflow_task_completed_event_id",
    ),
    "NEXUS_OPERATION_STARTED": ("scheduled_event_id",),
    "NEXUS_OPERATION_COMPLETED": ("scheduled_event_id", "result"),
    "NEXUS_OPERATION_FAILED": ("scheduled_event_id", "failure"),
    "NEXUS_OPERATION_TIMED_OUT": ("scheduled_event_id", "failure"),
    "NEXUS_OPERATION_CANCELED": ("scheduled_event_id", "failure"),
    "NEXUS_OPERATION_CANCEL_REQUESTED": ("scheduled_event_id", "workflow_task_completed_event_id"),
    "NEXUS_OPERATION_CANCEL_REQUEST_COMPLETED": (
        "scheduled_event_id",
        "requested_event_id",
        "workflow_task_completed_event_id",
    ),
    "NEXUS_OPERATION_CANCEL_REQUEST_FAILED": (
        "scheduled_event_id",
        "requested_event_id",
        "workflow_task_completed_event_id",
        "failure",
    ),
    "WORKFLOW_EXECUTION_UPDATE_ACCEPTED": (
        "protocol_instance_id",
        "accepted_request_message_id",
        "accepted_request_sequencing_event_id",
        "accepted_request",
    ),
    "WORKFLOW_EXECUTION_UPDATE_COMPLETED": ("meta", "accepted_event_id", "outcome"),
}


class _Normalizer:
    def __init__(self, redactions: Mapping[str, str]) -> None:
        # Longest first, so that a name containing another is replaced whole.
        self._redactions = sorted(redactions.items(), key=lambda kv: -len(kv[0]))

    def text(self, value: str) -> str:
        for secret, placeholder in self._redactions:
            if secret:
                value = value.replace(secret, placeholder)
        return value

    def payloads(self, payloads: Sequence[Message]) -> list[dict[str, str]]:
        out = []
        for p in payloads:
            metadata = {k: v.decode(errors="replace") for k, v in sorted(p.metadata.items())}  # type: ignore[attr-defined]
            out.append({**metadata, "data": self.text(p.data.decode(errors="replace"))})  # type: ignore[attr-defined]
        return out

    def failure(self, f: Failure) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.text(f.message), "source": f.source}
        info = f.WhichOneof("failure_info")
        out["info"] = info
        if info == "application_failure_info":
            a = f.application_failure_info
            out.update(type=a.type, non_retryable=a.non_retryable, details=self.payloads(a.details.payloads))
        elif info == "timeout_failure_info":
            t = f.timeout_failure_info
            out.update(
                timeout_type=self.enum(t, "timeout_type"),
                last_heartbeat_details=self.payloads(t.last_heartbeat_details.payloads),
            )
        elif info == "activity_failure_info":
            a = f.activity_failure_info
            out.update(
                activity_type=a.activity_type.name,
                activity_id=a.activity_id,
                scheduled_event_id=a.scheduled_event_id,
                started_event_id=a.started_event_id,
                retry_state=self.enum(a, "retry_state"),
            )
        elif info == "canceled_failure_info":
            out.update(details=self.payloads(f.canceled_failure_info.details.payloads))
        elif info == "terminated_failure_info":
            pass
        elif info == "server_failure_info":
            out.update(non_retryable=f.server_failure_info.non_retryable)
        elif info == "nexus_operation_execution_failure_info":
            n = f.nexus_operation_execution_failure_info
            out.update(
                endpoint=self.text(n.endpoint),
                service=n.service,
                operation=n.operation,
                scheduled_event_id=n.scheduled_event_id,
            )
        elif info == "nexus_handler_failure_info":
            out.update(type=f.nexus_handler_failure_info.type)
        if f.HasField("cause"):
            out["cause"] = self.failure(f.cause)
        return out

    @staticmethod
    def enum(msg: Message, field: str) -> str:
        fd = msg.DESCRIPTOR.fields_by_name[field]
        return fd.enum_type.values_by_number[getattr(msg, field)].name

    def field(self, msg: Message, name: str) -> Any:
        fd = msg.DESCRIPTOR.fields_by_name[name]
        value = getattr(msg, name)
        if fd.type == FieldDescriptor.TYPE_ENUM:
            return self.enum(msg, name)
        if fd.type != FieldDescriptor.TYPE_MESSAGE:
            return self.text(value) if isinstance(value, str) else value
        if fd.message_type.GetOptions().map_entry:  # a map (nexus_header): no presence, compare its items
            return {self.text(str(k)): self.text(str(v)) for k, v in sorted(value.items())}
        if not msg.HasField(name):
            return None
        full_name = fd.message_type.full_name
        if full_name == "google.protobuf.Duration":
            return f"{value.ToTimedelta().total_seconds():g}s"
        if full_name == "temporal.api.common.v1.Payloads":
            return self.payloads(value.payloads)
        if full_name == "temporal.api.failure.v1.Failure":
            return self.failure(value)
        if full_name in ("temporal.api.common.v1.ActivityType", "temporal.api.common.v1.WorkflowType"):
            return value.name
        if full_name == "temporal.api.sdk.v1.WorkflowTaskCompletedMetadata":
            return {
                "core_used_flags": sorted(value.core_used_flags),
                "lang_used_flags": sorted(value.lang_used_flags),
            }
        return json.loads(self.text(json.dumps(MessageToDict(value), sort_keys=True)))

    def event(self, event: HistoryEvent) -> dict[str, Any]:
        type_name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        out: dict[str, Any] = {"event_id": event.event_id, "type": type_name}
        which = event.WhichOneof("attributes")
        if which is None:
            out["attributes"] = None
            return out
        attrs = getattr(event, which)
        fields = WHITELIST.get(type_name)
        if fields is None:
            out["attributes"] = "<not compared: no whitelist for this event type>"
            return out
        out["attributes"] = {name: self.field(attrs, name) for name in fields}
        if type_name == "WORKFLOW_TASK_SCHEDULED":
            # The name is per worker process, the kind says whether the task went to a sticky queue.
            out["attributes"]["task_queue_kind"] = self.enum(attrs.task_queue, "kind")
        return out


def normalize(history: Any, redactions: Mapping[str, str] | None = None) -> list[dict]:
    """The comparable form of a history (a proto History, the SDK's WorkflowHistory or a list of
    HistoryEvent): one dict per event (event_id, type, whitelisted attributes)."""
    events: Sequence[HistoryEvent] = getattr(history, "events", history)
    normalizer = _Normalizer(redactions or {})
    return [normalizer.event(e) for e in events]


def _flatten(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, Mapping) and value:
        out: list[tuple[str, Any]] = []
        for key, inner in sorted(value.items()):
            out.extend(_flatten(f"{prefix}.{key}", inner))
        return out
    return [(prefix, value)]


def render(normalized: Sequence[Mapping[str, Any]]) -> list[str]:
    """Lines for humans and for diffs: '<id> <TYPE>', then one indented 'path = json' line per attribute
    (nested messages such as failures flattened to dotted paths)."""
    lines = []
    for e in normalized:
        lines.append(f"{e['event_id']:>3} {e['type']}")
        attributes = e["attributes"]
        if isinstance(attributes, Mapping):
            for name, value in sorted(attributes.items()):
                for path, leaf in _flatten(name, value):
                    lines.append(f"        {path} = {json.dumps(leaf, sort_keys=True, ensure_ascii=False)}")
        elif attributes is not None:
            lines.append(f"        {attributes}")
    return lines


def diff(
    left: Sequence[Mapping[str, Any]], right: Sequence[Mapping[str, Any]], left_name: str, right_name: str
) -> str:
    """A unified diff of two normalized histories ('' when they are equal)."""
    if list(left) == list(right):
        return ""
    lines = difflib.unified_diff(
        render(left), render(right), fromfile=left_name, tofile=right_name, lineterm="", n=3
    )
    return "\n".join(lines)


def event_type_list(normalized: Sequence[Mapping[str, Any]]) -> list[str]:
    return [e["type"] for e in normalized]
