"""What the caller's history sends a Nexus handler and how it reads the answer.

The start request is the reference 1.32's: its headers (request-timeout, the request id, a link back to the
scheduled event), the operation's service, name, request id, input and links, the endpoint's name and the
capability to answer with Temporal failures. It goes to the endpoint's target: a namespace and task queue,
through matching, where the handler's worker polls it (PollNexusTaskQueue), or an external URL, over HTTP
(nexus_http.py, which reads the HTTP answer into the same Outcome). The worker's answer is one of:
a synchronous result, an asynchronous start (an operation token), an operation failure, or a handler error,
which is retried unless the handler says it is not retryable.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from temporalio.api.common.v1 import Link as ProtoLink
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.nexus.v1 import CancelOperationRequest, Endpoint, Link, Request, StartOperationRequest
from temporalio.api.workflowservice.v1 import RespondNexusTaskFailedRequest

from hourglass.cluster.errors import InvalidArgument
from hourglass.cluster.history.mutable_state import NexusOperationInfo
from hourglass.cluster.history.timeutil import to_timestamp
from hourglass.cluster.history.tokens import TaskToken
from hourglass.cluster.security.task_tokens import TaskTokenCodec
from hourglass.persistence.store import Store

log = logging.getLogger(__name__)

# How long one attempt waits for a worker to take the request and answer it (the reference's
# component.nexusoperations.RequestTimeout), shortened by what is left of the schedule-to-close timeout.
REQUEST_TIMEOUT_S = 10.0
# The retry backoff after an attempt got no answer (the reference's component.nexusoperations.retryPolicy).
RETRY_INITIAL_MS = 1000
RETRY_MAX_MS = 3_600_000


def retry_delay_ms(attempt: int) -> int:
    """The backoff after attempt `attempt` (1, 2, ...): 1 s doubling to 1 h."""
    return min(RETRY_INITIAL_MS * 2 ** min(attempt - 1, 32), RETRY_MAX_MS)


# Handler error types a caller must not retry (the Nexus specification's), unless the handler says otherwise.
NON_RETRYABLE = frozenset({"BAD_REQUEST", "UNAUTHENTICATED", "UNAUTHORIZED", "NOT_FOUND", "NOT_IMPLEMENTED"})
LINK_TYPE = "temporal.api.common.v1.Link.WorkflowEvent"
# The callback URL a caller in this cluster gives: the handler's server completes the operation itself.
SYSTEM_CALLBACK_URL = "temporal://system"
CALLBACK_TOKEN_HEADER = "temporal-callback-token"
OPERATION_TOKEN_HEADER = "nexus-operation-token"


async def endpoint_ids(store: Store, names: set[str]) -> dict[str, str]:
    """The ids of the registered endpoints among `names`."""
    if not names:
        return {}
    _, records = await store.list_nexus_endpoints()
    found = {}
    for record in records:
        name = Endpoint.FromString(record.data).spec.name
        if name in names:
            found.setdefault(name, record.id)
    return found


@dataclass
class Target:
    namespace_id: str
    task_queue: str


@dataclass
class ExternalTarget:
    """An endpoint whose handler is reached over the Nexus HTTP protocol at `url` (nexus_http.py)."""

    url: str


async def endpoint_target(store: Store, endpoint_id: str) -> Target | ExternalTarget | str:
    """Where the endpoint sends requests, or why it cannot be reached (its problem, as a message)."""
    _, records = await store.list_nexus_endpoints()
    for record in records:
        if record.id == endpoint_id:
            endpoint = Endpoint.FromString(record.data)
            if endpoint.spec.target.WhichOneof("variant") == "external":
                return ExternalTarget(endpoint.spec.target.external.url)
            worker = endpoint.spec.target.worker
            # The stored target names its namespace by id (cluster/frontend/nexus_endpoints.py).
            return Target(worker.namespace, worker.task_queue)
    return "endpoint not registered"


def event_link(namespace: str, workflow_id: str, run_id: str, event_id: int, event_type: str) -> str:
    return (
        f"temporal:///namespaces/{namespace}/workflows/{workflow_id}/{run_id}/history"
        f"?eventID={event_id}&eventType={event_type}&referenceType=EventReference"
    )


def go_duration(seconds: float) -> str:
    """A duration as Go prints it ("9.998s"), the form the request-timeout header carries."""
    text = f"{seconds:.9f}".rstrip("0").rstrip(".")
    return f"{text}s"


def callback_token(
    codec: TaskTokenCodec, namespace_id: str, workflow_id: str, run_id: str, op: NexusOperationInfo
) -> str:
    """The token a completion names the operation by: sealed by this cluster (a handler's worker cannot
    forge one for another operation), in the reference's envelope ({"v":1,"d":...})."""
    token = TaskToken(
        namespace_id, workflow_id, run_id, op.scheduled_event_id, 0, nexus_task_id=op.request_id
    )
    sealed = base64.b64encode(codec.encode(token)).decode()
    return json.dumps({"v": 1, "d": sealed}, separators=(",", ":"))


def read_callback_token(codec: TaskTokenCodec, value: str) -> TaskToken:
    """The operation a callback token names; InvalidArgument when this cluster did not seal it."""
    try:
        envelope = json.loads(value)
        sealed = base64.b64decode(envelope["d"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidArgument("invalid callback token") from None
    return codec.decode(sealed)


def header_value(headers, name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return ""


def completion_of(close_event: HistoryEvent) -> tuple[Payload | None, Failure | None, bool]:
    """What a closed handler run reports to its operation: (result, failure, canceled)."""
    which = close_event.WhichOneof("attributes")
    attrs = getattr(close_event, which)
    t = close_event.event_type
    if t == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
        payloads = attrs.result.payloads
        return (payloads[0] if payloads else None), None, False
    if t == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
        return None, attrs.failure, False
    if t == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
        failure = Failure(message="operation canceled")
        failure.canceled_failure_info.details.CopyFrom(attrs.details)
        return None, failure, True
    if t == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
        failure = Failure(message="operation terminated")
        failure.terminated_failure_info.SetInParent()
        return None, failure, False
    failure = Failure(message="operation exceeded internal timeout")
    failure.timeout_failure_info.timeout_type = TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE
    return None, failure, False


def start_request(
    op: NexusOperationInfo,
    payload: Payload | None,
    nexus_header: dict[str, str],
    namespace: str,
    workflow_id: str,
    run_id: str,
    timeout_s: float,
    now_ms: int,
    callback_token: str = "",
    callback_url: str = SYSTEM_CALLBACK_URL,
) -> Request:
    link = event_link(namespace, workflow_id, run_id, op.scheduled_event_id, "NexusOperationScheduled")
    request = Request(endpoint=op.endpoint, scheduled_time=to_timestamp(now_ms))
    request.header.update(nexus_header)
    request.header.update(
        {
            "user-agent": "temporalio/server",
            "request-timeout": go_duration(timeout_s),
            "nexus-request-id": op.request_id,
            "nexus-link": f'<{link}>; type="{LINK_TYPE}"',
        }
    )
    request.capabilities.temporal_failure_responses = True
    start = StartOperationRequest(service=op.service, operation=op.operation, request_id=op.request_id)
    if payload is not None:
        start.payload.CopyFrom(payload)
    start.links.append(Link(url=link, type=LINK_TYPE))
    if callback_token:
        start.callback = callback_url
        start.callback_header[CALLBACK_TOKEN_HEADER] = callback_token
    request.start_operation.CopyFrom(start)
    return request


def cancel_request(
    op: NexusOperationInfo, timeout_s: float, now_ms: int, nexus_header: dict[str, str] | None = None
) -> Request:
    """`nexus_header`: the workflow's headers for the operation (its scheduled event's), which the
    reference sends with the cancel request as with the start."""
    request = Request(endpoint=op.endpoint, scheduled_time=to_timestamp(now_ms))
    request.header.update(nexus_header or {})
    request.header.update({"user-agent": "temporalio/server", "request-timeout": go_duration(timeout_s)})
    request.capabilities.temporal_failure_responses = True
    request.cancel_operation.CopyFrom(
        CancelOperationRequest(
            service=op.service,
            operation=op.operation,
            operation_id=op.operation_token,
            operation_token=op.operation_token,
        )
    )
    return request


@dataclass
class Outcome:
    """The handler's answer: exactly one of `result` (sync), `operation_token` (async), `failure` (the
    operation failed, or was `canceled`), or `retry` (a retryable handler error: try again later)."""

    result: Payload | None = None
    synchronous: bool = False
    # The handler's links (to what it started), recorded on the Started / Completed event.
    links: list[ProtoLink] = field(default_factory=list)
    operation_token: str = ""
    failure: Failure | None = None
    canceled: bool = False
    retry: str = ""
    # A retryable handler error's failure (the attempt's, as describe shows it).
    retry_failure: Failure | None = None


def outcome(answer) -> Outcome:
    """Read the worker's RespondNexusTaskCompleted / RespondNexusTaskFailed request."""
    if isinstance(answer, RespondNexusTaskFailedRequest):
        return _handler_error(answer)
    if answer.response.HasField("cancel_operation"):
        return Outcome()  # the handler received the cancel request
    start = answer.response.start_operation
    which = start.WhichOneof("variant")
    if which == "sync_success":
        return Outcome(
            result=start.sync_success.payload if start.sync_success.HasField("payload") else None,
            synchronous=True,
            links=proto_links(start.sync_success.links),
        )
    if which == "async_success":
        return Outcome(
            operation_token=start.async_success.operation_token or start.async_success.operation_id,
            links=proto_links(start.async_success.links),
        )
    if which == "failure":
        return Outcome(failure=start.failure, canceled=start.failure.HasField("canceled_failure_info"))
    if which == "operation_error":
        error = start.operation_error
        canceled = error.operation_state == "canceled"
        failure = Failure(message=error.failure.message)
        if not canceled:
            failure.application_failure_info.CopyFrom(
                ApplicationFailureInfo(type="OperationError", non_retryable=True)
            )
        else:
            failure.canceled_failure_info.SetInParent()
        return Outcome(failure=failure, canceled=canceled)
    return Outcome(retry="the handler answered with no start operation response")


def _handler_error(answer: RespondNexusTaskFailedRequest) -> Outcome:
    if answer.HasField("failure"):
        failure = answer.failure
        info = failure.nexus_handler_failure_info
        error_type, behavior = info.type, info.retry_behavior
    else:
        error = answer.error
        failure = Failure(message=error.failure.message)
        failure.nexus_handler_failure_info.type = error.error_type
        failure.nexus_handler_failure_info.retry_behavior = error.retry_behavior
        error_type, behavior = error.error_type, error.retry_behavior
    # NEXUS_HANDLER_ERROR_RETRY_BEHAVIOR_RETRYABLE = 1, _NON_RETRYABLE = 2.
    retryable = behavior == 1 or (behavior != 2 and error_type not in NON_RETRYABLE)
    if retryable:
        return Outcome(retry=f"handler error ({error_type}): {failure.message}", retry_failure=failure)
    return Outcome(failure=failure)


def proto_links(links) -> list[ProtoLink]:
    """A handler's Nexus links (URL and type) as the Temporal links the reference records on the caller's
    events (common/nexus ConvertNexusLinksToProtoLinks): workflow-event links; others, or malformed ones,
    are skipped with a warning, since links never decide an outcome."""
    out = []
    for link in links:
        try:
            out.append(workflow_event_link(link.url, link.type))
        except ValueError as e:
            log.warning("Nexus link %r of type %r skipped: %s", link.url, link.type, e)
    return out


def workflow_event_link(url: str, link_type: str) -> ProtoLink:
    """Parse a `temporal:///namespaces/NS/workflows/WID/RID/history?...` link (ValueError when it is not one)."""
    if link_type != LINK_TYPE:
        raise ValueError("not a workflow event link")
    parts = urlsplit(url)
    path = parts.path.split("/")
    if parts.scheme != "temporal" or len(path) != 7 or path[1] != "namespaces" or path[3] != "workflows":
        raise ValueError("malformed URL path")
    if path[6] != "history" or not all(path[i] for i in (2, 4, 5)):
        raise ValueError("malformed URL path")
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    link = ProtoLink()
    ev = link.workflow_event
    ev.namespace, ev.workflow_id, ev.run_id = (unquote(path[i]) for i in (2, 4, 5))
    try:
        event_type = EventType.Value(query.get("eventType", ""))
    except ValueError:
        # The SDKs spell it as Go's String() does ("WorkflowExecutionStarted") or as the enum's name.
        event_type = EventType.Value("EVENT_TYPE_" + _snake(query.get("eventType", "")).upper())
    reference = query.get("referenceType")
    if reference == "EventReference":
        ev.event_ref.event_type = event_type
        if query.get("eventID"):
            ev.event_ref.event_id = int(query["eventID"])
    elif reference == "RequestIdReference":
        ev.request_id_ref.event_type = event_type
        ev.request_id_ref.request_id = query.get("requestID", "")
    else:
        raise ValueError(f"unknown reference type {reference!r}")
    return link


def _snake(name: str) -> str:
    return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(name))
