"""The generic answers of cluster/frontend/grpc_errors.py: bounded status messages/details, undecodable requests."""

from __future__ import annotations

from google.protobuf.message import DecodeError
from temporalio.api.errordetails.v1 import NamespaceNotFoundFailure
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from hourglass.cluster.frontend.grpc_errors import (
    MAX_DETAIL_BYTES,
    MAX_NON_ASCII_MESSAGE_BYTES,
    UNMARSHAL_PREFIX,
    Undecodable,
    _decoding,
    bounded_detail,
    bounded_message,
    unmarshal_message,
)


def test_short_messages_are_unchanged() -> None:
    assert bounded_message("Namespace default is not found.") == "Namespace default is not found."


def test_long_messages_are_cut_on_a_character_boundary() -> None:
    cut = bounded_message("Namespace " + "☃" * 5000 + " is not found.")
    assert len(cut.encode()) <= MAX_NON_ASCII_MESSAGE_BYTES
    assert cut.startswith("Namespace ☃☃")


def test_a_detail_echoing_a_huge_field_is_cut_not_dropped() -> None:
    detail = bounded_detail(NamespaceNotFoundFailure(namespace="y" * 70_000))
    assert isinstance(detail, NamespaceNotFoundFailure)
    assert detail.ByteSize() <= MAX_DETAIL_BYTES and detail.namespace.startswith("yyy")


def test_undecodable_requests_get_the_reference_messages() -> None:
    decode = _decoding(rr.DescribeNamespaceRequest.FromString)
    garbage = decode(b"\xff\xff\xff\xff")
    bad_utf8 = decode(b"\x0a\x02\xff\xfe")  # field 1 (namespace), 2 bytes of invalid UTF-8
    assert isinstance(garbage, Undecodable) and isinstance(bad_utf8, Undecodable)
    assert garbage.message == UNMARSHAL_PREFIX + "proto: cannot parse invalid wire-format data"
    assert bad_utf8.message == UNMARSHAL_PREFIX + "string field contains invalid UTF-8"
    assert decode(rr.DescribeNamespaceRequest(namespace="default").SerializeToString()).namespace == "default"
    assert unmarshal_message(DecodeError("Wire format was corrupt")).startswith(UNMARSHAL_PREFIX)
