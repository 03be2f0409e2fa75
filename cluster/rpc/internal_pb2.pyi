from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Value(_message.Message):
    __slots__ = ("none", "bool_value", "int_value", "float_value", "string_value", "bytes_value", "message", "list", "tuple", "record")
    NONE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    BYTES_VALUE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LIST_FIELD_NUMBER: _ClassVar[int]
    TUPLE_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    none: bool
    bool_value: bool
    int_value: int
    float_value: float
    string_value: str
    bytes_value: bytes
    message: TypedBytes
    list: ValueList
    tuple: ValueList
    record: TypedBytes
    def __init__(self, none: _Optional[bool] = ..., bool_value: _Optional[bool] = ..., int_value: _Optional[int] = ..., float_value: _Optional[float] = ..., string_value: _Optional[str] = ..., bytes_value: _Optional[bytes] = ..., message: _Optional[_Union[TypedBytes, _Mapping]] = ..., list: _Optional[_Union[ValueList, _Mapping]] = ..., tuple: _Optional[_Union[ValueList, _Mapping]] = ..., record: _Optional[_Union[TypedBytes, _Mapping]] = ...) -> None: ...

class TypedBytes(_message.Message):
    __slots__ = ("type", "data")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    type: str
    data: bytes
    def __init__(self, type: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class ValueList(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Value]
    def __init__(self, items: _Optional[_Iterable[_Union[Value, _Mapping]]] = ...) -> None: ...

class Call(_message.Message):
    __slots__ = ("method", "args")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    method: str
    args: _containers.RepeatedCompositeFieldContainer[Value]
    def __init__(self, method: _Optional[str] = ..., args: _Optional[_Iterable[_Union[Value, _Mapping]]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("kind", "code", "message", "detail")
    KIND_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    kind: str
    code: int
    message: str
    detail: TypedBytes
    def __init__(self, kind: _Optional[str] = ..., code: _Optional[int] = ..., message: _Optional[str] = ..., detail: _Optional[_Union[TypedBytes, _Mapping]] = ...) -> None: ...

class Reply(_message.Message):
    __slots__ = ("value", "error")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    value: Value
    error: Error
    def __init__(self, value: _Optional[_Union[Value, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class Member(_message.Message):
    __slots__ = ("id", "state", "incarnation", "roles", "rpc_address", "frontend_address", "shard_count", "partition_count", "loop_lag_max_seconds", "loop_lag_p99_seconds", "draining")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    RPC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    FRONTEND_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SHARD_COUNT_FIELD_NUMBER: _ClassVar[int]
    PARTITION_COUNT_FIELD_NUMBER: _ClassVar[int]
    LOOP_LAG_MAX_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LOOP_LAG_P99_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: str
    incarnation: int
    roles: _containers.RepeatedScalarFieldContainer[str]
    rpc_address: str
    frontend_address: str
    shard_count: int
    partition_count: int
    loop_lag_max_seconds: float
    loop_lag_p99_seconds: float
    draining: bool
    def __init__(self, id: _Optional[str] = ..., state: _Optional[str] = ..., incarnation: _Optional[int] = ..., roles: _Optional[_Iterable[str]] = ..., rpc_address: _Optional[str] = ..., frontend_address: _Optional[str] = ..., shard_count: _Optional[int] = ..., partition_count: _Optional[int] = ..., loop_lag_max_seconds: _Optional[float] = ..., loop_lag_p99_seconds: _Optional[float] = ..., draining: _Optional[bool] = ...) -> None: ...

class ShardOwner(_message.Message):
    __slots__ = ("shard_id", "member_id", "transitions_per_second")
    SHARD_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSITIONS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    shard_id: int
    member_id: str
    transitions_per_second: float
    def __init__(self, shard_id: _Optional[int] = ..., member_id: _Optional[str] = ..., transitions_per_second: _Optional[float] = ...) -> None: ...

class TaskQueuePartition(_message.Message):
    __slots__ = ("namespace", "namespace_id", "task_queue", "task_type", "partition", "sticky", "backlog", "member_id")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_QUEUE_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    STICKY_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    namespace_id: str
    task_queue: str
    task_type: int
    partition: int
    sticky: bool
    backlog: int
    member_id: str
    def __init__(self, namespace: _Optional[str] = ..., namespace_id: _Optional[str] = ..., task_queue: _Optional[str] = ..., task_type: _Optional[int] = ..., partition: _Optional[int] = ..., sticky: _Optional[bool] = ..., backlog: _Optional[int] = ..., member_id: _Optional[str] = ...) -> None: ...

class ShardRate(_message.Message):
    __slots__ = ("shard_id", "transitions_per_second")
    SHARD_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSITIONS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    shard_id: int
    transitions_per_second: float
    def __init__(self, shard_id: _Optional[int] = ..., transitions_per_second: _Optional[float] = ...) -> None: ...

class ClusterStatusRequest(_message.Message):
    __slots__ = ("shards", "partitions")
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    shards: bool
    partitions: bool
    def __init__(self, shards: _Optional[bool] = ..., partitions: _Optional[bool] = ...) -> None: ...

class ClusterStatusResponse(_message.Message):
    __slots__ = ("answered_by", "members", "shards", "history_shard_count", "quorum", "partitions", "schema_version", "store_kind")
    ANSWERED_BY_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_SHARD_COUNT_FIELD_NUMBER: _ClassVar[int]
    QUORUM_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    STORE_KIND_FIELD_NUMBER: _ClassVar[int]
    answered_by: str
    members: _containers.RepeatedCompositeFieldContainer[Member]
    shards: _containers.RepeatedCompositeFieldContainer[ShardOwner]
    history_shard_count: int
    quorum: bool
    partitions: _containers.RepeatedCompositeFieldContainer[TaskQueuePartition]
    schema_version: int
    store_kind: str
    def __init__(self, answered_by: _Optional[str] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., shards: _Optional[_Iterable[_Union[ShardOwner, _Mapping]]] = ..., history_shard_count: _Optional[int] = ..., quorum: _Optional[bool] = ..., partitions: _Optional[_Iterable[_Union[TaskQueuePartition, _Mapping]]] = ..., schema_version: _Optional[int] = ..., store_kind: _Optional[str] = ...) -> None: ...

class LocalOwnershipRequest(_message.Message):
    __slots__ = ("partitions",)
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    partitions: bool
    def __init__(self, partitions: _Optional[bool] = ...) -> None: ...

class LocalOwnershipResponse(_message.Message):
    __slots__ = ("member_id", "shard_ids", "partition_count", "quorum", "loop_lag_max_seconds", "loop_lag_p99_seconds", "shard_rates", "partitions")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    SHARD_IDS_FIELD_NUMBER: _ClassVar[int]
    PARTITION_COUNT_FIELD_NUMBER: _ClassVar[int]
    QUORUM_FIELD_NUMBER: _ClassVar[int]
    LOOP_LAG_MAX_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LOOP_LAG_P99_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SHARD_RATES_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    shard_ids: _containers.RepeatedScalarFieldContainer[int]
    partition_count: int
    quorum: bool
    loop_lag_max_seconds: float
    loop_lag_p99_seconds: float
    shard_rates: _containers.RepeatedCompositeFieldContainer[ShardRate]
    partitions: _containers.RepeatedCompositeFieldContainer[TaskQueuePartition]
    def __init__(self, member_id: _Optional[str] = ..., shard_ids: _Optional[_Iterable[int]] = ..., partition_count: _Optional[int] = ..., quorum: _Optional[bool] = ..., loop_lag_max_seconds: _Optional[float] = ..., loop_lag_p99_seconds: _Optional[float] = ..., shard_rates: _Optional[_Iterable[_Union[ShardRate, _Mapping]]] = ..., partitions: _Optional[_Iterable[_Union[TaskQueuePartition, _Mapping]]] = ...) -> None: ...

class SetGossipBlockedRequest(_message.Message):
    __slots__ = ("blocked",)
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    blocked: bool
    def __init__(self, blocked: _Optional[bool] = ...) -> None: ...

class SetGossipBlockedResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DrainRequest(_message.Message):
    __slots__ = ("member", "timeout_seconds")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    member: str
    timeout_seconds: float
    def __init__(self, member: _Optional[str] = ..., timeout_seconds: _Optional[float] = ...) -> None: ...

class DrainResponse(_message.Message):
    __slots__ = ("member_id", "released_shard_ids", "seconds")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    RELEASED_SHARD_IDS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    released_shard_ids: _containers.RepeatedScalarFieldContainer[int]
    seconds: float
    def __init__(self, member_id: _Optional[str] = ..., released_shard_ids: _Optional[_Iterable[int]] = ..., seconds: _Optional[float] = ...) -> None: ...

class UndrainRequest(_message.Message):
    __slots__ = ("member", "timeout_seconds")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    member: str
    timeout_seconds: float
    def __init__(self, member: _Optional[str] = ..., timeout_seconds: _Optional[float] = ...) -> None: ...

class UndrainResponse(_message.Message):
    __slots__ = ("member_id", "shard_ids", "seconds")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    SHARD_IDS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    shard_ids: _containers.RepeatedScalarFieldContainer[int]
    seconds: float
    def __init__(self, member_id: _Optional[str] = ..., shard_ids: _Optional[_Iterable[int]] = ..., seconds: _Optional[float] = ...) -> None: ...
