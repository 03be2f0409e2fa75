"""Pages of history: how many events one response carries, and the token that resumes a history read.

A run's history can grow far past what one gRPC message may carry (clients refuse messages over 4 MiB by
default), so every response that carries history carries one page of it: the first page in a workflow
task, the rest through GetWorkflowExecutionHistory with the page's `next_page_token`, as on the reference.

A page ends, as the reference's, after whole chunks of `page_size` batches once it holds `page_size`
events; it also ends before the event that would take it past its byte budget, even inside a batch (one
transition may write several megabytes). A page always holds at least one event, so a single event over
the budget still goes out, alone in its page (the reference sends it too).

The token says where the next page starts (event id and the batch holding it), where the history the
reader asked for ends, and carries the events of the started workflow task that history has not written
(transient or speculative): they come last, as on the reference, whose token carries them too.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError
from temporalio.api.history.v1 import History, HistoryEvent

from hourglass.cluster.errors import InvalidArgument
from hourglass.cluster.history.history_wire import frame_event

# What a client accepts by default (gRPC's default receive limit): every page fits in it.
RESPONSE_LIMIT_BYTES = 4 * 1024 * 1024
# The rest of a history response around its events: the token and a few small fields.
RESPONSE_OVERHEAD_BYTES = 16 * 1024
# The reference's hard cap on a GetWorkflowExecutionHistory page (primitives.GetHistoryMaxPageSize),
# also the default of its page size settings.
MAX_PAGE_SIZE = 256

INVALID_TOKEN = "Invalid NextPageToken."
RUN_ID_MISMATCH = "RunId in the request does not match the NextPageToken."
_MAX_ID = 2**63 - 1


def framed_size(event: HistoryEvent) -> int:
    """Bytes the event adds to a serialized History (field tag, length prefix, body)."""
    n = event.ByteSize()
    return n + 1 + _varint_size(n)


def _varint_size(n: int) -> int:
    size = 1
    while n >= 0x80:
        n >>= 7
        size += 1
    return size


def history_budget(limit: int, other_bytes: int) -> int:
    """Bytes left for a page's events in a response of at most `limit` whose other fields take
    `other_bytes` (at least 1: a page holds one event whatever its size)."""
    return max(limit - other_bytes - RESPONSE_OVERHEAD_BYTES, 1)


@dataclass
class Page:
    """Events taken into one page so far, within `page_size` (count, reference semantics) and bytes."""

    page_size: int
    max_bytes: int
    events: list[HistoryEvent] = field(default_factory=list)
    size: int = 0
    full: bool = False  # the byte budget refused an event: the page ends before it
    # Serialized mode: the page keeps each event's bytes as a History frames them (`framed`), not messages,
    # so stored batches go to the wire without being parsed (history_wire.py).
    serialized: bool = False
    framed: list[bytes | memoryview] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.framed) if self.serialized else len(self.events)

    def offer(self, event: HistoryEvent) -> bool:
        """Take the event if it fits (or the page is empty); False once the page is full by bytes."""
        if self.serialized:
            return self.offer_framed(frame_event(event.SerializeToString()))
        if self.full:
            return False
        n = framed_size(event)
        if self.events and self.size + n > self.max_bytes:
            self.full = True
            return False
        self.events.append(event)
        self.size += n
        return True

    def take(self, event: HistoryEvent | bytes | memoryview) -> bool:
        """`offer` for a message, `offer_framed` for framed bytes."""
        return self.offer(event) if isinstance(event, HistoryEvent) else self.offer_framed(event)

    def offer_framed(self, framed: bytes | memoryview) -> bool:
        """`offer` for an event already serialized and framed (serialized mode only)."""
        if self.full:
            return False
        n = len(framed)
        if self.framed and self.size + n > self.max_bytes:
            self.full = True
            return False
        self.framed.append(framed)
        self.size += n
        return True

    def enough_after(self, batches_read: int) -> bool:
        """After `batches_read` whole batches: has the page its count (the reference reads batches in
        chunks of page_size and stops after the chunk that brings it to page_size events)?"""
        return batches_read % self.page_size == 0 and len(self) >= self.page_size


def split_pages(events: Iterable[HistoryEvent], max_bytes: int) -> list[list[HistoryEvent]]:
    """Events cut into consecutive pages of at most `max_bytes` each (an event over it: alone)."""
    pages: list[list[HistoryEvent]] = []
    page = Page(page_size=1 << 62, max_bytes=max_bytes)
    for event in events:
        if not page.offer(event):
            pages.append(page.events)
            page = Page(page_size=1 << 62, max_bytes=max_bytes)
            page.offer(event)
    if page.events:
        pages.append(page.events)
    return pages


@dataclass
class HistoryCursor:
    """Where a history read resumes: a page token's content.

    `end_event_id` 0 means "up to the run's end when the page is read" (long polls); `node_id` 0 means the
    batch holding `next_event_id` is not known (the reader looks for it). `transient` events follow the
    stored ones (their ids start at end_event_id).
    """

    run_id: str
    next_event_id: int = 1
    end_event_id: int = 0
    node_id: int = 0
    transient: list[HistoryEvent] = field(default_factory=list)

    def encode(self) -> bytes:
        body: dict = {"run_id": self.run_id, "next_event_id": self.next_event_id}
        if self.end_event_id:
            body["end_event_id"] = self.end_event_id
        if self.node_id:
            body["node_id"] = self.node_id
        if self.transient:
            raw = History(events=self.transient).SerializeToString()
            body["transient"] = base64.b64encode(raw).decode()
        return json.dumps(body, separators=(",", ":")).encode()

    @staticmethod
    def decode(token: bytes) -> HistoryCursor:
        """The cursor a token holds; INVALID_ARGUMENT "Invalid NextPageToken." for anything else."""
        try:
            body = json.loads(token)
        except (ValueError, UnicodeDecodeError):
            raise InvalidArgument(INVALID_TOKEN) from None
        if not isinstance(body, dict):
            raise InvalidArgument(INVALID_TOKEN)
        run_id = body.get("run_id")
        if not isinstance(run_id, str) or not run_id:
            raise InvalidArgument(INVALID_TOKEN)
        cursor = HistoryCursor(
            run_id=run_id,
            next_event_id=_id_field(body, "next_event_id", minimum=1, default=None),
            end_event_id=_id_field(body, "end_event_id", minimum=0, default=0),
            node_id=_id_field(body, "node_id", minimum=0, default=0),
        )
        transient = body.get("transient", "")
        if transient:
            if not isinstance(transient, str):
                raise InvalidArgument(INVALID_TOKEN)
            try:
                cursor.transient = list(History.FromString(base64.b64decode(transient, validate=True)).events)
            except (binascii.Error, ValueError, DecodeError):
                raise InvalidArgument(INVALID_TOKEN) from None
        return cursor


def _id_field(body: dict, name: str, *, minimum: int, default: int | None) -> int:
    value = body.get(name, default)
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(INVALID_TOKEN)
    if not minimum <= value <= _MAX_ID:
        raise InvalidArgument(INVALID_TOKEN)
    return value


def effective_page_size(requested: int, default: int) -> int:
    """The reference's GetWorkflowExecutionHistory page size: 0 or negative takes the configured default;
    more than its hard cap (256) is cut to it."""
    size = requested if requested > 0 else default
    return max(1, min(size, MAX_PAGE_SIZE))
