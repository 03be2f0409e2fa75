"""Serialize dataclass trees (with embedded protobuf messages) to JSON bytes and back.

Mutable state is stored as an opaque blob. JSON keeps it inspectable and version-tolerant (unknown keys
are ignored, missing keys take defaults), and protobuf fields travel as base64 of their wire form, which
protobuf itself keeps compatible across versions. No pickle: a database row must never execute code.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import types
import typing
from typing import Any, TypeVar

from google.protobuf.message import Message

T = TypeVar("T")


# Types written as they are. Serializing runs once per transition, so the common cases come first.
_PLAIN = frozenset((str, int, float, bool, type(None)))
_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}


def _field_names(cls: type) -> tuple[str, ...] | None:
    """The field names of a dataclass type (None for other types), looked up once per type."""
    try:
        return _FIELD_NAMES[cls]
    except KeyError:
        names = tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else None
        _FIELD_NAMES[cls] = names
        return names


def to_jsonable(value: Any) -> Any:
    cls = type(value)
    if cls in _PLAIN:
        return value
    names = _field_names(cls)
    if names is not None:
        return {name: to_jsonable(getattr(value, name)) for name in names}
    if isinstance(value, Message):
        return base64.b64encode(value.SerializeToString(deterministic=True)).decode()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return [[to_jsonable(k), to_jsonable(v)] for k, v in value.items()]
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_jsonable(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return from_jsonable(args[0], value)
    if origin is list:
        (item,) = typing.get_args(tp)
        return [from_jsonable(item, v) for v in value]
    if origin is dict:
        k_tp, v_tp = typing.get_args(tp)
        return {from_jsonable(k_tp, k): from_jsonable(v_tp, v) for k, v in value}
    if isinstance(tp, type) and issubclass(tp, Message):
        msg = tp()
        msg.ParseFromString(base64.b64decode(value))
        return msg
    if tp is bytes:
        return base64.b64decode(value)
    if dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                kwargs[f.name] = from_jsonable(hints[f.name], value[f.name])
        return tp(**kwargs)
    return value


def dumps(obj: Any) -> bytes:
    return json.dumps(to_jsonable(obj), separators=(",", ":")).encode()


def loads(cls: type[T], data: bytes) -> T:
    return from_jsonable(cls, json.loads(data))
