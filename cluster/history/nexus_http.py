"""The Nexus RPC HTTP protocol, both ways, as the reference 1.32 speaks it (common/nexus/nexusrpc).

A start is `POST {endpoint url}/{service}/{operation}?callback={url}` with the input as the body (its
`Content-*` headers say what it is), the request id, links and request timeout as headers and the callback's
headers as `Nexus-Callback-*`; the answer is 200 with a synchronous result, 201 with `{"token": ...,
"state": "running"}` for an asynchronous start, 424 with a failure and `Nexus-Operation-State` for an
unsuccessful operation, or a handler error's status. A cancel is `POST .../{operation}/cancel` with the
`Nexus-Operation-Token` header (202). A completion is a POST to the callback URL with the operation's state
in `Nexus-Operation-State`, the result (or the failure, as JSON) as the body.

Payloads travel as the reference's PayloadSerializer writes them (json/plain as `application/json`,
anything else as `application/x-temporal-payload`, the whole Payload message); Temporal failures as Nexus
failures whose `details` are the failure's protobuf JSON (metadata type `temporal.api.failure.v1.Failure`).
This module converts between those and the `nexus.v1.Request` / worker answers the rest of Hourglass uses.
"""

from __future__ import annotations

import json
import time
from email.message import Message as _MimeMessage
from typing import Any
from urllib.parse import quote

import httpx
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure
from temporalio.api.nexus.v1 import Link, Request

from hourglass.cluster.history.nexus_dispatch import NON_RETRYABLE, Outcome

TEMPORAL_FAILURE_TYPE = "temporal.api.failure.v1.Failure"
HANDLER_ERROR_TYPE = "nexus.HandlerError"
OPERATION_ERROR_TYPE = "nexus.OperationError"
STATE_HEADER = "nexus-operation-state"
TOKEN_HEADER = "nexus-operation-token"
REQUEST_ID_HEADER = "nexus-request-id"
LINK_HEADER = "nexus-link"
RETRYABLE_HEADER = "nexus-request-retryable"
START_TIME_HEADER = "nexus-operation-start-time"
CLOSE_TIME_HEADER = "nexus-operation-close-time"
CALLBACK_HEADER_PREFIX = "nexus-callback-"
USER_AGENT = "temporalio/server"
STATUS_OPERATION_UNSUCCESSFUL = 424
STATUS_UPSTREAM_TIMEOUT = 520

# A handler error's type and its HTTP status (nexusrpc server.go WriteFailure), both ways.
HANDLER_ERROR_STATUS = {
    "BAD_REQUEST": 400,
    "REQUEST_TIMEOUT": 408,
    "CONFLICT": 409,
    "UNAUTHENTICATED": 401,
    "UNAUTHORIZED": 403,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL": 500,
    "NOT_IMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "UPSTREAM_TIMEOUT": STATUS_UPSTREAM_TIMEOUT,
}
STATUS_HANDLER_ERROR = {status: kind for kind, status in HANDLER_ERROR_STATUS.items()}


# ---- payloads -----------------------------------------------------------------------------------------
def payload_content(payload: Payload | None) -> tuple[dict[str, str], bytes]:
    """A payload as Nexus content: its `Content-*` headers (without the prefix) and bytes."""
    if payload is None:
        return {}, b""
    metadata = dict(payload.metadata)
    encoding = metadata.get("encoding", b"").decode(errors="replace")
    message_type = metadata.get("messageType", b"").decode(errors="replace")
    if not metadata:
        return _whole(payload)
    if encoding == "unknown/nexus-content":
        return {k: v.decode(errors="replace") for k, v in metadata.items() if k != "encoding"}, payload.data
    if encoding == "json/plain" and len(metadata) == 1:
        return {"type": "application/json"}, payload.data
    if encoding == "binary/null" and len(metadata) == 1:
        return {}, payload.data
    if encoding == "binary/plain" and len(metadata) == 1:
        return {"type": "application/octet-stream"}, payload.data
    if encoding == "json/protobuf" and len(metadata) == 2 and message_type:
        return {"type": f'application/json; format=protobuf; message-type="{message_type}"'}, payload.data
    if encoding == "binary/protobuf" and len(metadata) == 2 and message_type:
        return {"type": f'application/x-protobuf; message-type="{message_type}"'}, payload.data
    return _whole(payload)


def _whole(payload: Payload) -> tuple[dict[str, str], bytes]:
    return {"type": "application/x-temporal-payload"}, payload.SerializeToString()


def content_payload(headers: dict[str, str], data: bytes) -> Payload:
    """Nexus content (`Content-*` headers without the prefix, lower-case) as the payload it carries."""
    h = {k: v for k, v in headers.items() if k not in ("encoding", "length")}
    payload = Payload(data=data)
    content_type = h.get("type", "")
    if len(h) > 1 or (not content_type and (h or data)):
        return _unknown(payload, h)
    if not content_type:
        payload.metadata["encoding"] = b"binary/null"
        return payload
    media_type, params = _media_type(content_type)
    if media_type == "application/x-temporal-payload":
        whole = Payload()
        whole.ParseFromString(data)
        return whole
    if media_type == "application/json" and not params:
        payload.metadata["encoding"] = b"json/plain"
    elif (
        media_type == "application/json" and params.get("format") == "protobuf" and params.get("message-type")
    ):
        payload.metadata["encoding"] = b"json/protobuf"
        payload.metadata["messageType"] = params["message-type"].encode()
    elif media_type == "application/x-protobuf" and len(params) == 1 and params.get("message-type"):
        payload.metadata["encoding"] = b"binary/protobuf"
        payload.metadata["messageType"] = params["message-type"].encode()
    elif media_type == "application/octet-stream" and not params:
        payload.metadata["encoding"] = b"binary/plain"
    else:
        return _unknown(payload, h)
    return payload


def _unknown(payload: Payload, headers: dict[str, str]) -> Payload:
    for key, value in headers.items():
        payload.metadata[key] = value.encode()
    payload.metadata["encoding"] = b"unknown/nexus-content"
    return payload


def _media_type(value: str) -> tuple[str, dict[str, str]]:
    message = _MimeMessage()
    message["content-type"] = value
    params = {k.lower(): v for k, v in message.get_params()[1:]}
    return message.get_content_type(), params


def content_headers(headers: Any) -> dict[str, str]:
    """The `Content-*` headers of an HTTP message, prefix stripped and lower-cased."""
    return {k.lower()[len("content-") :]: v for k, v in headers.items() if k.lower().startswith("content-")}


# ---- failures ------------------------------------------------------------------------------------------
def nexus_failure(failure: Failure) -> dict[str, Any]:
    """A Temporal failure as the reference's Nexus failure (TemporalFailureToNexusFailure)."""
    out: dict[str, Any] = {"message": failure.message}
    if failure.stack_trace:
        out["stackTrace"] = failure.stack_trace
    if failure.WhichOneof("failure_info") == "nexus_handler_failure_info":
        info = failure.nexus_handler_failure_info
        details: dict[str, Any] = {"type": info.type}
        if info.retry_behavior in (1, 2):
            details["retryableOverride"] = info.retry_behavior == 1
        out["metadata"] = {"type": HANDLER_ERROR_TYPE}
        out["details"] = details
    else:
        bare = Failure()
        bare.CopyFrom(failure)
        bare.message = ""
        bare.stack_trace = ""
        out["metadata"] = {"type": TEMPORAL_FAILURE_TYPE}
        out["details"] = json_format.MessageToDict(bare)
    if failure.HasField("cause"):
        out["cause"] = nexus_failure(failure.cause)
    return out


def temporal_failure(failure: dict[str, Any]) -> Failure:
    """A Nexus failure (JSON) as a Temporal failure (NexusFailureToTemporalFailure)."""
    if not isinstance(failure, dict):
        raise ValueError("a failure must be a JSON object")
    out = Failure()
    metadata = failure.get("metadata") or {}
    kind = metadata.get("type") if isinstance(metadata, dict) else None
    details = failure.get("details")
    if kind == TEMPORAL_FAILURE_TYPE and isinstance(details, dict):
        json_format.ParseDict(details, out, ignore_unknown_fields=True)
    elif kind == OPERATION_ERROR_TYPE:
        state = details.get("state") if isinstance(details, dict) else ""
        if state == "canceled":
            out.canceled_failure_info.SetInParent()
        else:
            out.application_failure_info.CopyFrom(
                ApplicationFailureInfo(type="OperationError", non_retryable=True)
            )
    elif kind == HANDLER_ERROR_TYPE and isinstance(details, dict):
        out.nexus_handler_failure_info.type = str(details.get("type", ""))
        override = details.get("retryableOverride")
        if override is not None:
            out.nexus_handler_failure_info.retry_behavior = 1 if override else 2
    elif metadata or details is not None:
        out.application_failure_info.SetInParent()
        out.application_failure_info.type = "NexusFailure"
    out.message = str(failure.get("message", ""))
    out.stack_trace = str(failure.get("stackTrace", ""))
    cause = failure.get("cause")
    if isinstance(cause, dict):
        out.cause.CopyFrom(temporal_failure(cause))
    return out


def handler_error_body(kind: str, message: str, retryable: bool | None = None) -> dict[str, Any]:
    details: dict[str, Any] = {"type": kind}
    if retryable is not None:
        details["retryableOverride"] = retryable
    return {"message": message, "metadata": {"type": HANDLER_ERROR_TYPE}, "details": details}


# ---- headers -------------------------------------------------------------------------------------------
def format_link(link: Link) -> str:
    return f'<{link.url}>; type="{link.type}"'


def parse_links(values: list[str]) -> list[Link]:
    """`Nexus-Link` headers (`<url>; type="..."`, comma separated); ValueError on a malformed one."""
    links = []
    for value in ",".join(values).split(","):
        value = value.strip()
        if not value:
            continue
        url_part, _, params = value.partition(";")
        url_part = url_part.strip()
        if not (url_part.startswith("<") and url_part.endswith(">")) or len(url_part) < 3:
            raise ValueError(f"invalid link header: {value}")
        link = Link(url=url_part[1:-1])
        for param in params.split(";"):
            key, _, val = param.strip().partition("=")
            if key.strip() == "type":
                link.type = val.strip().strip('"')
        links.append(link)
    return links


def http_date(ms: int) -> str:
    """Go's http.TimeFormat."""
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(ms / 1000))


def rfc3339(ms: int) -> str:
    """nexusrpc's marshalTimestamp: UTC, trailing zero groups of the fraction dropped."""
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000))
    fraction = ms % 1000
    return f"{base}.{fraction:03d}Z" if fraction else f"{base}Z"


# ---- the caller's side: a start or cancel to an external endpoint --------------------------------------
def request_for_http(request: Request, url: str) -> tuple[str, dict[str, str], bytes]:
    """A Nexus request (as a worker target would get it) as the HTTP call to an external endpoint."""
    headers = {k: v for k, v in request.header.items()}
    headers.setdefault("user-agent", USER_AGENT)
    base = url.rstrip("/")
    if request.HasField("cancel_operation"):
        cancel = request.cancel_operation
        token = cancel.operation_token or cancel.operation_id
        headers[TOKEN_HEADER] = token
        path = f"{base}/{quote(cancel.service, safe='')}/{quote(cancel.operation, safe='')}/cancel"
        return path, headers, b""
    start = request.start_operation
    path = f"{base}/{quote(start.service, safe='')}/{quote(start.operation, safe='')}"
    if start.callback:
        path += "?callback=" + quote(start.callback, safe="")
    for key, value in start.callback_header.items():
        headers[CALLBACK_HEADER_PREFIX + key.lower()] = value
    if start.request_id:
        headers[REQUEST_ID_HEADER] = start.request_id
    if start.links:
        headers[LINK_HEADER] = ", ".join(format_link(link) for link in start.links)
    content, data = payload_content(start.payload if start.HasField("payload") else None)
    for key, value in content.items():
        headers["content-" + key] = value
    return path, headers, data


async def call(client: httpx.AsyncClient, url: str, request: Request, timeout: float) -> Outcome:
    """Send a start or cancel to an external endpoint and read its answer as the worker's would be read."""
    path, headers, body = request_for_http(request, url)
    # In milliseconds, as the reference's HTTP client writes it.
    headers["request-timeout"] = f"{max(int(timeout * 1000), 1)}ms"
    try:
        response = await client.post(path, headers=headers, content=body, timeout=timeout)
    except httpx.TimeoutException:
        return Outcome(retry="upstream timeout: the handler did not answer in time")
    except httpx.HTTPError as e:
        return Outcome(retry=f"request to the endpoint failed: {e}")
    return read_answer(response, request.HasField("cancel_operation"))


def read_answer(response: httpx.Response, cancel: bool) -> Outcome:
    status = response.status_code
    if cancel and status in (200, 202, 204):
        return Outcome()
    if not cancel and status == 200:
        return Outcome(
            result=content_payload(content_headers(response.headers), response.content), synchronous=True
        )
    if not cancel and status == 201:
        try:
            info = response.json()
            token = info.get("token") or info.get("id") or ""
        except (ValueError, AttributeError):
            token = ""
        if not token:
            return Outcome(retry="the handler's asynchronous start has no operation token")
        return Outcome(operation_token=str(token))
    body = _failure_body(response)
    if status == STATUS_OPERATION_UNSUCCESSFUL and not cancel:
        state = response.headers.get(STATE_HEADER, "failed")
        failure = temporal_failure(body) if body else Failure(message="operation failed")
        if not failure.WhichOneof("failure_info"):
            if state == "canceled":
                failure.canceled_failure_info.SetInParent()
            else:
                failure.application_failure_info.CopyFrom(
                    ApplicationFailureInfo(type="OperationError", non_retryable=True)
                )
        return Outcome(failure=failure, canceled=state == "canceled")
    # A handler error: retried unless the handler (or its type) says it is not retryable.
    kind = STATUS_HANDLER_ERROR.get(status, "INTERNAL" if status >= 500 else "BAD_REQUEST")
    message = str(body.get("message", "")) if body else response.reason_phrase
    failure = Failure(message=message)
    failure.nexus_handler_failure_info.type = kind
    flag = response.headers.get(RETRYABLE_HEADER, "").lower()
    retryable = flag == "true" or (flag != "false" and kind not in NON_RETRYABLE)
    if flag:
        failure.nexus_handler_failure_info.retry_behavior = 1 if flag == "true" else 2
    if retryable:
        return Outcome(retry=f"handler error ({kind}): {message}")
    return Outcome(failure=failure)


def _failure_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = json.loads(response.content or b"null")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# ---- the handler's side: a completion to the caller's callback URL -------------------------------------
def completion_request(
    callback_headers: dict[str, str],
    result: Payload | None,
    failure: Failure | None,
    canceled: bool,
    operation_token: str,
    start_time_ms: int,
    close_time_ms: int,
    links: list[Link],
) -> tuple[dict[str, str], bytes]:
    """The headers and body of a completion POST (CompletionHTTPClient.CompleteOperation)."""
    headers: dict[str, str] = {}
    if failure is not None:
        body = json.dumps(nexus_failure(failure), separators=(",", ":")).encode()
        headers[STATE_HEADER] = "canceled" if canceled else "failed"
        headers["content-type"] = "application/json"
    else:
        content, body = payload_content(result)
        for key, value in content.items():
            headers["content-" + key] = value
        headers[STATE_HEADER] = "succeeded"
    lower = {k.lower() for k in callback_headers}
    headers.update(callback_headers)
    if "user-agent" not in lower:
        headers["user-agent"] = USER_AGENT
    if TOKEN_HEADER not in lower and operation_token:
        headers[TOKEN_HEADER] = operation_token
    if START_TIME_HEADER not in lower and start_time_ms:
        headers[START_TIME_HEADER] = http_date(start_time_ms)
    if CLOSE_TIME_HEADER not in lower and close_time_ms:
        headers[CLOSE_TIME_HEADER] = rfc3339(close_time_ms)
    if LINK_HEADER not in lower and links:
        headers[LINK_HEADER] = ", ".join(format_link(link) for link in links)
    return headers, body


def completion_error(response: httpx.Response) -> tuple[str, bool]:
    """Why a completion POST was refused, and whether trying again may help (isRetryableCallError)."""
    body = _failure_body(response)
    status = response.status_code
    message = str(body.get("message", "")) if body else response.reason_phrase
    flag = response.headers.get(RETRYABLE_HEADER, "").lower()
    kind = STATUS_HANDLER_ERROR.get(status, "INTERNAL" if status >= 500 else "BAD_REQUEST")
    retryable = flag == "true" or (flag != "false" and kind not in NON_RETRYABLE)
    return f"handler error ({kind}): {message}", retryable
