"""History on the wire without protobuf objects: stored batches split into events, responses framed.

A serialized History is its events one after another, each as field 1 (tag 0x0A, a length, the event's
bytes), so the bytes of a page are the stored bytes of its events, concatenated. Serving a page that way
copies each event once, where parsing the stored batches into messages, copying them into a History and
serializing it again costs a parse and three copies on the event loop: for 8 readers of a 3 MB history
that kept every other request waiting tens of milliseconds (loadtest/RESULTS-stall.md).
"""

from __future__ import annotations

from collections.abc import Sequence

_EVENTS_TAG = 0x0A  # History.events: field 1, length-delimited
_EVENT_ID_TAG = 0x08  # HistoryEvent.event_id: field 1, varint (encoders write fields in number order)
_HISTORY_TAG = b"\x0a"  # GetWorkflowExecutionHistoryResponse.history: field 1
_TOKEN_TAG = b"\x1a"  # GetWorkflowExecutionHistoryResponse.next_page_token: field 3


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at `pos` and the position after it; ValueError if it runs past the end."""
    value, shift = 0, 0
    while True:
        byte = data[pos]  # IndexError past the end
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def split_events(blob: bytes) -> list[tuple[int, memoryview]] | None:
    """(event id, framed bytes: tag, length and body) of each event of a serialized History, or None when
    the blob is not in the form protobuf's encoders write (the caller then parses it)."""
    view = memoryview(blob)
    out: list[tuple[int, memoryview]] = []
    pos, size = 0, len(blob)
    try:
        while pos < size:
            if blob[pos] != _EVENTS_TAG:
                return None
            length, body = _varint(blob, pos + 1)
            end = body + length
            if end > size or length < 2 or blob[body] != _EVENT_ID_TAG:
                return None
            event_id, _ = _varint(blob, body + 1)
            out.append((event_id, view[pos:end]))
            pos = end
    except (IndexError, ValueError):
        return None
    return out


def frame_event(serialized_event: bytes) -> bytes:
    """One event's bytes as a History holds them (field 1)."""
    return _HISTORY_TAG + encode_varint(len(serialized_event)) + serialized_event


def history_response(framed_events: Sequence[bytes | memoryview], next_page_token: bytes) -> bytes:
    """A serialized GetWorkflowExecutionHistoryResponse holding these events and token: one copy of them."""
    body = sum(len(chunk) for chunk in framed_events)
    parts: list[bytes | memoryview] = [_HISTORY_TAG, encode_varint(body), *framed_events]
    if next_page_token:
        parts += [_TOKEN_TAG, encode_varint(len(next_page_token)), next_page_token]
    return b"".join(parts)
