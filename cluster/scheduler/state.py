"""A schedule's durable state and its JSON codec (protos embedded as base64 wire bytes, never pickle).

What the reference keeps in its scheduler workflow (schedule, info, internal state) is one record here:
it is read and written as a whole, conditional on its version, in the shard that owns the schedule.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass, field

from temporalio.api.common.v1 import Memo, Payloads, SearchAttributes
from temporalio.api.failure.v1 import Failure
from temporalio.api.schedule.v1 import Schedule, ScheduleInfo


def encode_conflict_token(value: int) -> bytes:
    """The conflict token clients get and send back: the counter as 8 big-endian bytes."""
    return struct.pack(">q", value)


@dataclass
class BufferedStart:
    """An action waiting to be taken: its nominal (matching) time, when it is due, and how it overlaps."""

    nominal_ms: int
    actual_ms: int
    overlap_policy: int  # 0: the schedule's policy at the time it is started
    manual: bool  # trigger or backfill: not subject to pause, remaining actions or the catchup window
    # Deterministic per start, so a start retried after a crash never starts a second workflow.
    request_id: str = ""

    def to_json(self) -> dict:
        return self.__dict__.copy()


@dataclass
class Backfill:
    """A backfill still being turned into buffered starts (a few per pass, as on the reference)."""

    start_ms: int  # exclusive
    end_ms: int  # inclusive
    overlap_policy: int

    def to_json(self) -> dict:
        return self.__dict__.copy()


_PROTOS = {
    "schedule": Schedule,
    "info": ScheduleInfo,
    "memo": Memo,
    "search_attributes": SearchAttributes,
    "last_completion_result": Payloads,
    "continued_failure": Failure,
}


@dataclass
class ScheduleState:
    namespace: str
    namespace_id: str
    schedule_id: str
    schedule: Schedule
    info: ScheduleInfo
    memo: Memo | None = None
    search_attributes: SearchAttributes | None = None
    conflict_token: int = 1
    # Nominal times up to here have been turned into buffered starts (or skipped).
    last_processed_ms: int = 0
    buffered: list[BufferedStart] = field(default_factory=list)
    backfills: list[Backfill] = field(default_factory=list)
    last_completion_result: Payloads | None = None
    continued_failure: Failure | None = None
    # Counter for request ids of manual starts (two triggers in one second are two starts).
    manual_seq: int = 0
    # Request id of the CreateSchedule that made it: a retried create is not a conflict.
    create_request_id: str = ""
    # Optimistic-concurrency version of the stored row (not serialized; it is the row's own column).
    version: int = 0

    def serialize(self) -> bytes:
        doc: dict = {
            "namespace": self.namespace,
            "namespace_id": self.namespace_id,
            "schedule_id": self.schedule_id,
            "conflict_token": self.conflict_token,
            "last_processed_ms": self.last_processed_ms,
            "buffered": [b.to_json() for b in self.buffered],
            "backfills": [b.to_json() for b in self.backfills],
            "manual_seq": self.manual_seq,
            "create_request_id": self.create_request_id,
        }
        for name in _PROTOS:
            value = getattr(self, name)
            if value is not None:
                doc[name] = base64.b64encode(value.SerializeToString()).decode()
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def deserialize(cls, data: bytes, version: int) -> ScheduleState:
        doc = json.loads(data)
        protos = {}
        for name, proto in _PROTOS.items():
            encoded = doc.get(name)
            protos[name] = None if encoded is None else proto.FromString(base64.b64decode(encoded))
        return cls(
            namespace=doc["namespace"],
            namespace_id=doc["namespace_id"],
            schedule_id=doc["schedule_id"],
            schedule=protos["schedule"] or Schedule(),
            info=protos["info"] or ScheduleInfo(),
            memo=protos["memo"],
            search_attributes=protos["search_attributes"],
            conflict_token=doc.get("conflict_token", 1),
            last_processed_ms=doc.get("last_processed_ms", 0),
            buffered=[BufferedStart(**b) for b in doc.get("buffered", [])],
            backfills=[Backfill(**b) for b in doc.get("backfills", [])],
            last_completion_result=protos["last_completion_result"],
            continued_failure=protos["continued_failure"],
            manual_seq=doc.get("manual_seq", 0),
            create_request_id=doc.get("create_request_id", ""),
            version=version,
        )

    def clone(self) -> ScheduleState:
        return ScheduleState.deserialize(self.serialize(), self.version)
