"""Python values and errors <-> the internal envelope (proto/hourglass/internal/v1/internal.proto).

Role operations forwarded between nodes take and return plain values, Temporal API messages and a few
Hourglass records; each is encoded with its type so the other side rebuilds exactly the same value.
Errors travel as data too and are raised again as the same class, so callers' `except NotFound:` and the
frontend's status mapping work whether the operation ran here or on another node.
"""

from __future__ import annotations

import dataclasses
import json

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message

from hourglass.cluster import errors
from hourglass.cluster.history.engine import StartResult, TaskGone, UpdateResult
from hourglass.cluster.history.mutable_state import MutableState, ParentInfo
from hourglass.cluster.history.queries import QueryAnswer
from hourglass.cluster.history.tokens import TaskToken
from hourglass.cluster.rpc import internal_pb2 as pb

# Errors that are answers, not faults: not logged as failures on the serving side.
KNOWN_ERRORS = (errors.ServiceError, TaskGone)
_JSON_RECORDS = {"TaskToken": TaskToken, "ParentInfo": ParentInfo}
# Records holding Temporal messages: sent field by field as values.
_FIELD_RECORDS = {"UpdateResult": UpdateResult, "StartResult": StartResult, "QueryAnswer": QueryAnswer}
_STATUS_BY_NUMBER = {status.value[0]: status for status in grpc.StatusCode}


def _message_class(type_name: str) -> type[Message]:
    return message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(type_name))


def encode(value: object) -> pb.Value:
    if value is None:
        return pb.Value(none=True)
    if isinstance(value, bool):
        return pb.Value(bool_value=value)
    if isinstance(value, int):
        return pb.Value(int_value=value)
    if isinstance(value, float):
        return pb.Value(float_value=value)
    if isinstance(value, str):
        return pb.Value(string_value=value)
    if isinstance(value, bytes):
        return pb.Value(bytes_value=value)
    if isinstance(value, Message):
        return pb.Value(
            message=pb.TypedBytes(type=value.DESCRIPTOR.full_name, data=value.SerializeToString())
        )
    if isinstance(value, list):
        return pb.Value(list=pb.ValueList(items=[encode(v) for v in value]))
    if isinstance(value, tuple):
        return pb.Value(tuple=pb.ValueList(items=[encode(v) for v in value]))
    if isinstance(value, MutableState):
        envelope = json.dumps(
            {"version": value.db_record_version, "state": value.serialize().decode()}
        ).encode()
        return pb.Value(record=pb.TypedBytes(type="MutableState", data=envelope))
    name = type(value).__name__
    if _FIELD_RECORDS.get(name) is type(value):
        items = [encode(getattr(value, f.name)) for f in dataclasses.fields(value)]
        return pb.Value(record=pb.TypedBytes(type=name, data=pb.ValueList(items=items).SerializeToString()))
    if _JSON_RECORDS.get(name) is type(value):
        return pb.Value(record=pb.TypedBytes(type=name, data=json.dumps(dataclasses.asdict(value)).encode()))
    raise TypeError(f"cannot send a {type(value).__name__} to another node")


def decode(value: pb.Value) -> object:
    kind = value.WhichOneof("kind")
    if kind in (None, "none"):
        return None
    if kind == "message":
        return _message_class(value.message.type).FromString(value.message.data)
    if kind == "list":
        return [decode(v) for v in value.list.items]
    if kind == "tuple":
        return tuple(decode(v) for v in value.tuple.items)
    if kind == "record":
        r = value.record
        if r.type == "MutableState":
            envelope = json.loads(r.data)
            ms = MutableState.deserialize(envelope["state"].encode())
            ms.db_record_version = envelope["version"]
            return ms
        if r.type in _FIELD_RECORDS:
            return _FIELD_RECORDS[r.type](*(decode(v) for v in pb.ValueList.FromString(r.data).items))
        return _JSON_RECORDS[r.type](**json.loads(r.data))
    return getattr(value, kind)


def encode_error(e: BaseException) -> pb.Error:
    if isinstance(e, TaskGone):
        return pb.Error(kind="TaskGone", message=str(e) or "task gone")
    if isinstance(e, errors.ServiceError):
        err = pb.Error(kind=type(e).__name__, code=e.code.value[0], message=e.message)
        if e.detail is not None:
            err.detail.CopyFrom(
                pb.TypedBytes(type=e.detail.DESCRIPTOR.full_name, data=e.detail.SerializeToString())
            )
        return err
    return pb.Error(
        kind="Internal", code=13, message=f"internal error on the owning node: {type(e).__name__}"
    )


def decode_error(err: pb.Error) -> BaseException:
    if err.kind == "TaskGone":
        return TaskGone(err.message)
    cls = getattr(errors, err.kind, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.ServiceError)):
        cls = errors.Internal
    e = cls.__new__(cls)
    detail = None
    if err.HasField("detail") and err.detail.type:
        detail = _message_class(err.detail.type).FromString(err.detail.data)
    errors.ServiceError.__init__(e, err.message, detail)
    if err.code and err.code != e.code.value[0]:
        e.code = _STATUS_BY_NUMBER.get(err.code, e.code)  # errors whose status varies (MultiOperationFailed)
    return e
