"""Sealed task tokens: only what this cluster's secret sealed, with well-typed fields, is opened."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from hourglass.cluster.errors import InvalidArgument
from hourglass.cluster.history.tokens import TaskToken
from hourglass.cluster.security.task_tokens import FORMAT, TaskTokenCodec, new_secret

SECRET = bytes(range(32))
TOKEN = TaskToken("ns-id", "wf", "run", 5, 2, activity_id="a1")
UNREADABLE = "Error deserializing task token."


def sealed(body: bytes, secret: bytes = SECRET) -> bytes:
    """A token in the documented wire form, sealed by hand: FORMAT || HMAC-SHA256(FORMAT || body) || body."""
    return FORMAT + hmac.new(secret, FORMAT + body, hashlib.sha256).digest() + body


def refused_with(data: bytes) -> str:
    with pytest.raises(InvalidArgument) as info:
        TaskTokenCodec(SECRET).decode(data)
    return info.value.message


def test_a_sealed_token_opens_to_the_same_token() -> None:
    codec = TaskTokenCodec(SECRET)
    assert codec.decode(codec.encode(TOKEN)) == TOKEN
    assert codec.encode(TOKEN) == sealed(TOKEN.to_json())


def test_every_node_with_the_cluster_secret_opens_it() -> None:
    assert TaskTokenCodec(bytes(SECRET)).decode(TaskTokenCodec(SECRET).encode(TOKEN)) == TOKEN


def test_a_token_of_another_cluster_is_refused() -> None:
    assert refused_with(TaskTokenCodec(new_secret()).encode(TOKEN)) == UNREADABLE


def test_every_flipped_bit_and_every_truncation_is_refused() -> None:
    token = TaskTokenCodec(SECRET).encode(TOKEN)
    for i in range(len(token)):
        for bit in (0x01, 0x80):
            flipped = token[:i] + bytes([token[i] ^ bit]) + token[i + 1 :]
            assert refused_with(flipped) == UNREADABLE, (i, bit)
        assert refused_with(token[:i]) == (UNREADABLE if i else "Task token not set on request."), i


def test_the_unsigned_json_form_is_refused() -> None:
    assert refused_with(TOKEN.to_json()) == UNREADABLE


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b"null",
        b'{"namespace_id": "ns-id"}',  # required fields missing
        json.dumps({**vars(TOKEN), "attempt": "2"}).encode(),
        json.dumps({**vars(TOKEN), "attempt": True}).encode(),
        json.dumps({**vars(TOKEN), "scheduled_event_id": 5.0}).encode(),
        json.dumps({**vars(TOKEN), "workflow_id": None}).encode(),
        json.dumps({**vars(TOKEN), "run_id": ["run"]}).encode(),
        json.dumps({**vars(TOKEN), "extra": 1}).encode(),
    ],
)
def test_a_sealed_token_with_the_wrong_shape_is_refused_not_an_internal_error(body: bytes) -> None:
    assert refused_with(sealed(body)) == UNREADABLE


def test_a_short_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        TaskTokenCodec(b"short")
