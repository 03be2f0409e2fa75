"""Serialize dataclass trees (with embedded protobuf messages) to JSON bytes and back.

Mutable state is stored as an opaque blob. JSON keeps it inspectable and version-tolerant (unknown keys
are ignored, missing keys take defaults), and protobuf fields travel as base64 of their wire form, which
protobuf itself keeps compatible across versions. No pickle: a database row must never execute code.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import functools
import json
import types
import typing
from collections.abc import Callable
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


def _identity(value: Any) -> Any:
    return value


def _optional(inner: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else inner(value)


def _dataclass_fields(tp: type, compile_field: Callable[[Any], Callable[[Any], Any]]) -> list:
    hints = typing.get_type_hints(tp)
    return [(f.name, compile_field(hints[f.name])) for f in dataclasses.fields(tp)]


@functools.cache
def _decoder(tp: Any) -> Callable[[Any], Any]:
    """A function turning the JSON form of a `tp` back into one, built once per type.

    Resolving type hints on every value made reading a state three times slower than writing it.
    """
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)][:1]
        return _decoder(inner)
    if origin is list:
        item = _decoder(typing.get_args(tp)[0])
        return _optional(list if item is _identity else lambda value: [item(v) for v in value])
    if origin is dict:
        key, item = (_decoder(a) for a in typing.get_args(tp))
        return _optional(lambda value: {key(k): item(v) for k, v in value})
    if isinstance(tp, type) and issubclass(tp, Message):

        def message(value: Any) -> Message:
            msg = tp()
            msg.ParseFromString(base64.b64decode(value))
            return msg

        return _optional(message)
    if tp is bytes:
        return _optional(base64.b64decode)
    if dataclasses.is_dataclass(tp):
        fields = _dataclass_fields(tp, _decoder)
        return _optional(
            lambda value: tp(**{name: dec(value[name]) for name, dec in fields if name in value})
        )
    return _identity


def from_jsonable(tp: Any, value: Any) -> Any:
    return _decoder(tp)(value)


@functools.cache
def _copier(tp: Any) -> Callable[[Any], Any]:
    """A function making an independent copy of a `tp` (messages and containers copied, scalars shared).

    Readers get a copy of a run's state because transitions change the cached one in place; a JSON round
    trip did that at four times the cost.
    """
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _optional(_copier(args[0]))
        return copy.deepcopy
    if origin is list:
        item = _copier(typing.get_args(tp)[0])
        return _optional(list.copy if item is _identity else lambda value: [item(v) for v in value])
    if origin is dict:
        item = _copier(typing.get_args(tp)[1])
        return _optional(
            dict.copy if item is _identity else lambda value: {k: item(v) for k, v in value.items()}
        )
    if isinstance(tp, type) and issubclass(tp, Message):

        def message(value: Message) -> Message:
            msg = tp()
            msg.CopyFrom(value)
            return msg

        return _optional(message)
    if tp in _PLAIN or tp is bytes:
        return _identity
    if dataclasses.is_dataclass(tp):
        fields = _dataclass_fields(tp, _copier)

        def instance(value: Any) -> Any:
            new = object.__new__(type(value))
            attrs = dict(value.__dict__)  # attributes that are not fields (caches) are shared as they are
            for name, cp in fields:
                attrs[name] = cp(attrs[name])
            new.__dict__.update(attrs)
            return new

        return _optional(instance)
    return copy.deepcopy


def deep_copy(value: T) -> T:
    """An independent copy of a dataclass tree of the kinds this module serializes."""
    return _copier(type(value))(value)


def dumps(obj: Any) -> bytes:
    return json.dumps(to_jsonable(obj), separators=(",", ":")).encode()


def loads(cls: type[T], data: bytes) -> T:
    return _decoder(cls)(json.loads(data))
