"""Hypothesis strategies for any Temporal API request, built from the protobuf descriptors themselves.

Nothing here lists a method or a field by hand except `KNOWN_VALUES`: values that exist on the server under
test (the `default` namespace, a started workflow's id, a real task token...), mixed into fields of those
names so that random requests get past "namespace not found" and reach the deep code. Every other field
gets random and edge values of its type: empty, huge and negative numbers, 2^63, NaN, invalid enum numbers,
long strings up to a bound, nested messages up to `MAX_DEPTH`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st
from temporalio.api.operatorservice.v1 import service_pb2 as operator_service
from temporalio.api.workflowservice.v1 import service_pb2 as workflow_service

# Nested messages deeper than this stay unset (Failure.cause, Struct/Value and friends are recursive).
MAX_DEPTH = 4
# The longest string/bytes a request carries: past the reference's 1000-char id limits and 2 MiB blob limit,
# under the 4 MiB gRPC message limit.
LONG_STRING = 70_000
HUGE_BLOB = 2 * 1024 * 1024 + 100

SERVICES: tuple[ServiceDescriptor, ...] = (
    workflow_service.DESCRIPTOR.services_by_name["WorkflowService"],
    operator_service.DESCRIPTOR.services_by_name["OperatorService"],
)

_T = FieldDescriptor
_INT_RANGES = {
    _T.TYPE_INT32: (-(2**31), 2**31 - 1),
    _T.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _T.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _T.TYPE_INT64: (-(2**63), 2**63 - 1),
    _T.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _T.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _T.TYPE_UINT32: (0, 2**32 - 1),
    _T.TYPE_FIXED32: (0, 2**32 - 1),
    _T.TYPE_UINT64: (0, 2**64 - 1),
    _T.TYPE_FIXED64: (0, 2**64 - 1),
}
_EDGE_INTS = (
    0,
    1,
    -1,
    2,
    1000,
    2**31 - 1,
    -(2**31),
    2**32 - 1,
    2**53 + 1,
    2**62,
    2**63 - 1,
    -(2**63),
    2**64 - 1,
)
_EDGE_FLOATS = (0.0, -0.0, 1.0, -1.0, math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, 1e-9)
_EDGE_STRINGS = (
    "",
    " ",
    "default",
    "a" * 1001,  # past the reference's id length limit
    "x" * 4096,
    "y" * LONG_STRING,
    "é☃𝄞 ünïcode",
    "\x00",
    "/_sys/fuzz",
    "' OR 1=1 --",
    "%s%n{0}${x}",
    "00000000-0000-0000-0000-000000000000",
)
_EDGE_BYTES = (b"", b"\x00", b"\xff" * 16, b'"json"', b"{}", b"x" * 5000)
# Not a number any enum of the API uses.
_BAD_ENUMS = (-1, 99, 1000, 2**31 - 1, -(2**31))


def all_methods() -> list[MethodDescriptor]:
    """Every RPC of the public services, in descriptor order."""
    return [method for service in SERVICES for method in service.methods]


def method_path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def message_class(descriptor: Descriptor) -> type[Message]:
    return GetMessageClass(descriptor)


class RequestStrategies:
    """Builds (and caches) a strategy per message type; `known` maps a field name to values worth mixing in."""

    def __init__(self, known: Mapping[str, Sequence[Any]], overrides: Mapping[str, Mapping[str, Any]] = {}):
        self.known = known
        # Per top-level request type: field name -> values replacing `known` (e.g. never the `default`
        # namespace for the RPCs that could deprecate it, so the liveness checks keep their namespace).
        self.overrides = overrides
        self._cache: dict[tuple[str, int, str], st.SearchStrategy] = {}

    def request(self, method: MethodDescriptor) -> st.SearchStrategy[Message]:
        desc = method.input_type
        return self.message(desc, 0, desc.full_name)

    def message(self, desc: Descriptor, depth: int, root: str) -> st.SearchStrategy[Message]:
        key = (desc.full_name, depth, root)
        if key not in self._cache:
            # Deferred: recursive types refer to themselves while being built.
            self._cache[key] = st.deferred(lambda: self._build_message(desc, depth, root))
        return self._cache[key]

    def _known_for(self, field: FieldDescriptor, root: str) -> Sequence[Any]:
        values = self.overrides.get(root, {}).get(field.name)
        if values is None:
            values = self.known.get(field.name, ())
        return [v for v in values if _fits(field, v)]

    def _build_message(self, desc: Descriptor, depth: int, root: str) -> st.SearchStrategy[Message]:
        cls = message_class(desc)
        fields = [f for f in desc.fields if depth + 1 < MAX_DEPTH or f.type != _T.TYPE_MESSAGE]
        plans = [(f, self._field(f, depth, root), bool(self._known_for(f, root))) for f in fields]
        # How likely an ordinary field is set: most at the top, fewer deeper down (sizes stay bounded).
        ordinary_odds = (3, 4, 6, 8)[min(depth, 3)]

        @st.composite
        def build(draw: st.DrawFn) -> Message:
            msg = cls()
            for field, strategy, known in plans:
                # Fields with known values are set 9 times in 10, so requests reach past the first checks;
                # an ordinary field once in `ordinary_odds + 1`. Hypothesis shrinks rolls towards 0, so
                # a minimal failing request keeps its known values and drops ordinary fields.
                if known:
                    wanted = draw(st.integers(0, 9)) != 9
                else:
                    wanted = draw(st.integers(0, ordinary_odds)) == ordinary_odds
                if wanted:
                    _assign(msg, field, draw(strategy))
            return msg

        return build()

    def _field(self, field: FieldDescriptor, depth: int, root: str) -> st.SearchStrategy:
        if _is_map(field):
            key_field = field.message_type.fields_by_name["key"]
            value_field = field.message_type.fields_by_name["value"]
            return st.dictionaries(
                self._single(key_field, depth + 1, root),
                self._single(value_field, depth + 1, root),
                max_size=3,
            )
        single = self._single(field, depth, root)
        if field.is_repeated:
            return st.lists(single, max_size=3)
        return single

    def _single(self, field: FieldDescriptor, depth: int, root: str) -> st.SearchStrategy:
        known = self._known_for(field, root)
        if field.type == _T.TYPE_MESSAGE:
            base = self.message(field.message_type, depth + 1, root)
        else:
            base = scalar(field)
        if not known:
            return base
        # Known values are drawn 7 times in 8: most requests get past "namespace not found". A known value
        # may be a strategy itself (fresh workflow ids, so that starts do not all hit "already started").
        pick = st.sampled_from(known).flatmap(lambda v: v if isinstance(v, st.SearchStrategy) else st.just(v))
        return st.integers(0, 7).flatmap(lambda roll: pick if roll != 7 else base)


def scalar(field: FieldDescriptor) -> st.SearchStrategy:
    """Random and edge values of a non-message field's type."""
    t = field.type
    if t in _INT_RANGES:
        lo, hi = _INT_RANGES[t]
        return st.one_of(
            st.sampled_from([v for v in _EDGE_INTS if lo <= v <= hi]),
            st.integers(max(lo, -1000), min(hi, 10**6)),
            st.integers(lo, hi),
        )
    if t == _T.TYPE_BOOL:
        return st.booleans()
    if t in (_T.TYPE_DOUBLE, _T.TYPE_FLOAT):
        width = 64 if t == _T.TYPE_DOUBLE else 32
        return st.one_of(st.sampled_from(_EDGE_FLOATS), st.floats(width=width))
    if t == _T.TYPE_ENUM:
        return st.one_of(
            st.sampled_from([v.number for v in field.enum_type.values]), st.sampled_from(_BAD_ENUMS)
        )
    if t == _T.TYPE_STRING:
        return st.one_of(st.sampled_from(_EDGE_STRINGS), st.text(max_size=40))
    if t == _T.TYPE_BYTES:
        edges = _EDGE_BYTES + ((b"z" * HUGE_BLOB,) if field.name == "data" else ())
        return st.one_of(st.sampled_from(edges), st.binary(max_size=64))
    raise TypeError(f"unsupported field type {t} of {field.full_name}")


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == _T.TYPE_MESSAGE and field.is_repeated and field.message_type.GetOptions().map_entry


def _fits(field: FieldDescriptor, value: Any) -> bool:
    """A known value is only used in a field of a matching type (a `task_queue` may be a string or a message)."""
    if _is_map(field):
        return isinstance(value, dict)
    if field.type == _T.TYPE_MESSAGE:
        return isinstance(value, Message) and value.DESCRIPTOR is field.message_type
    if field.type == _T.TYPE_STRING:
        return isinstance(value, str | st.SearchStrategy)
    if field.type == _T.TYPE_BYTES:
        return isinstance(value, bytes)
    return False


def _assign(msg: Message, field: FieldDescriptor, value: Any) -> None:
    name = field.name
    if _is_map(field):
        target = getattr(msg, name)
        value_is_message = field.message_type.fields_by_name["value"].type == _T.TYPE_MESSAGE
        for k, v in value.items():
            if value_is_message:
                target[k].CopyFrom(v)
            else:
                target[k] = v
    elif field.is_repeated:
        target = getattr(msg, name)
        if field.type == _T.TYPE_MESSAGE:
            for v in value:
                target.add().CopyFrom(v)
        else:
            target.extend(value)
    elif field.type == _T.TYPE_MESSAGE:
        getattr(msg, name).CopyFrom(value)
    else:
        setattr(msg, name, value)
