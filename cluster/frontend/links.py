"""The `link` a start, signal or update answer carries (temporal.api.common.v1.Link), as the reference
builds it: Nexus callers and the Web UI follow it to the event the request wrote."""

from __future__ import annotations

from temporalio.api.common.v1 import Link
from temporalio.api.enums.v1 import EventType


def started_event_link(namespace: str, workflow_id: str, run_id: str) -> Link:
    """The run's WorkflowExecutionStarted event (event id 1)."""
    link = Link()
    ev = link.workflow_event
    ev.namespace, ev.workflow_id, ev.run_id = namespace, workflow_id, run_id
    ev.event_ref.event_id = 1
    ev.event_ref.event_type = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    return link


def request_id_link(namespace: str, workflow_id: str, run_id: str, request_id: str, event_type: int) -> Link:
    """The event written for the request with `request_id` (maybe empty, as the reference echoes it)."""
    link = Link()
    ev = link.workflow_event
    ev.namespace, ev.workflow_id, ev.run_id = namespace, workflow_id, run_id
    ev.request_id_ref.request_id = request_id
    ev.request_id_ref.event_type = event_type  # type: ignore[assignment]
    return link


def dedup_callback_links(request) -> None:
    """Drop the start request's links that its Nexus completion callbacks already carry, as the reference's
    frontend does (dedupLinksFromCallbacks): a Nexus handler's start sends its caller's link both ways, and
    the run keeps it once, on the callback."""
    if not request.links:
        return
    on_callbacks = [link for cb in request.completion_callbacks if cb.HasField("nexus") for link in cb.links]
    kept = [link for link in request.links if link not in on_callbacks]
    del request.links[:]
    request.links.extend(kept)
