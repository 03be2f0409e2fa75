"""The Nexus HTTP wire format (cluster/history/nexus_http.py) against the reference's rules: its
PayloadSerializer (common/nexus/payload_serializer.go), its Temporal <-> Nexus failure conversion
(common/nexus/failure.go) and the headers of a completion (nexusrpc CompleteOperationOptions)."""

from __future__ import annotations

import json

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure
from temporalio.api.nexus.v1 import Link, Request, StartOperationRequest

from hourglass.cluster.history import nexus_http
from hourglass.cluster.history.nexus_executors import fill_template


def payload(encoding: bytes | None, data: bytes, **extra: bytes) -> Payload:
    p = Payload(data=data)
    if encoding is not None:
        p.metadata["encoding"] = encoding
    for key, value in extra.items():
        p.metadata[key] = value
    return p


@pytest.mark.parametrize(
    ("p", "content_type"),
    [
        (payload(b"json/plain", b'"x"'), "application/json"),
        (payload(b"binary/plain", b"\x00\x01"), "application/octet-stream"),
        (
            payload(b"json/protobuf", b"{}", messageType=b"pkg.Msg"),
            'application/json; format=protobuf; message-type="pkg.Msg"',
        ),
        (
            payload(b"binary/protobuf", b"\x08\x01", messageType=b"pkg.Msg"),
            'application/x-protobuf; message-type="pkg.Msg"',
        ),
        (payload(b"binary/null", b""), None),
    ],
)
def test_payloads_travel_as_the_reference_writes_them_and_come_back_equal(
    p: Payload, content_type: str | None
) -> None:
    headers, data = nexus_http.payload_content(p)
    assert headers.get("type") == content_type
    assert data == p.data
    assert nexus_http.content_payload(headers, data) == p


def test_other_payloads_travel_whole() -> None:
    """Metadata the content type cannot say (a codec's, say) keeps the whole Payload message."""
    p = payload(b"json/plain", b'"x"', encrypted=b"yes")
    headers, data = nexus_http.payload_content(p)
    assert headers == {"type": "application/x-temporal-payload"}
    assert Payload.FromString(data) == p
    assert nexus_http.content_payload(headers, data) == p


def test_unknown_content_is_kept_as_nexus_content() -> None:
    p = nexus_http.content_payload({"type": "text/plain", "length": "2"}, b"hi")
    assert dict(p.metadata) == {"type": b"text/plain", "encoding": b"unknown/nexus-content"}
    assert nexus_http.payload_content(p) == ({"type": "text/plain"}, b"hi")


def test_a_temporal_failure_round_trips_through_a_nexus_failure() -> None:
    cause = Failure(message="inner", application_failure_info=ApplicationFailureInfo(type="Refused"))
    failure = Failure(
        message="cannot greet",
        stack_trace="at x",
        cause=cause,
        application_failure_info=ApplicationFailureInfo(non_retryable=True),
    )
    wire = nexus_http.nexus_failure(failure)
    assert wire["message"] == "cannot greet"
    assert wire["stackTrace"] == "at x"
    assert wire["metadata"] == {"type": "temporal.api.failure.v1.Failure"}
    assert "message" not in wire["details"] and "stackTrace" not in wire["details"]
    assert wire["cause"]["message"] == "inner"
    assert nexus_http.temporal_failure(json.loads(json.dumps(wire))) == failure


def test_a_nexus_operation_error_becomes_the_references_failures() -> None:
    failed = nexus_http.temporal_failure(
        {"message": "m", "metadata": {"type": "nexus.OperationError"}, "details": {"state": "failed"}}
    )
    assert failed.application_failure_info == ApplicationFailureInfo(
        type="OperationError", non_retryable=True
    )
    canceled = nexus_http.temporal_failure(
        {"message": "m", "metadata": {"type": "nexus.OperationError"}, "details": {"state": "canceled"}}
    )
    assert canceled.HasField("canceled_failure_info")


def test_a_start_to_an_external_endpoint() -> None:
    request = Request()
    request.header["nexus-request-id"] = "r1"
    start = StartOperationRequest(
        service="my service",
        operation="op/1",
        request_id="r1",
        callback="http://caller/namespaces/ns/nexus/callback",
    )
    start.callback_header["temporal-callback-token"] = "tok"
    start.payload.CopyFrom(payload(b"json/plain", b'"in"'))
    start.links.append(Link(url="temporal:///x", type="t"))
    request.start_operation.CopyFrom(start)
    url, headers, body = nexus_http.request_for_http(request, "http://handler/prefix/")
    assert (
        url
        == "http://handler/prefix/my%20service/op%2F1?callback=http%3A%2F%2Fcaller%2Fnamespaces%2Fns%2Fnexus%2Fcallback"
    )
    assert headers["nexus-callback-temporal-callback-token"] == "tok"
    assert headers["content-type"] == "application/json"
    assert headers["nexus-link"] == '<temporal:///x>; type="t"'
    assert body == b'"in"'


def test_a_completion_carries_the_callback_headers_and_the_outcome() -> None:
    headers, body = nexus_http.completion_request(
        {"temporal-callback-token": "tok", "nexus-operation-token": "op"},
        payload(b"json/plain", b'"done"'),
        None,
        False,
        "",
        1_700_000_000_000,
        1_700_000_001_500,
        [Link(url="temporal:///started", type="t")],
    )
    assert headers["nexus-operation-state"] == "succeeded"
    assert headers["temporal-callback-token"] == "tok"
    assert headers["nexus-operation-token"] == "op"
    assert headers["content-type"] == "application/json"
    assert headers["nexus-operation-start-time"] == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert headers["nexus-operation-close-time"] == "2023-11-14T22:13:21.500Z"
    assert body == b'"done"'
    headers, body = nexus_http.completion_request({}, None, Failure(message="no"), True, "", 0, 0, [])
    assert headers["nexus-operation-state"] == "canceled"
    assert json.loads(body)["message"] == "no"


def test_the_callback_url_template() -> None:
    template = "https://nexus.example.com/namespaces/{{.NamespaceName}}/{{ .NamespaceID }}/nexus/callback"
    assert (
        fill_template(template, "orders", "id-1")
        == "https://nexus.example.com/namespaces/orders/id-1/nexus/callback"
    )
    assert fill_template("unset", "orders", "id-1") == ""
