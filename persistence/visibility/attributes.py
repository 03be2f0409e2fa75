"""Which search attributes exist and what type each has: the catalogue queries and validation share.

Three kinds, named as the reference names them:
- system attributes are columns of the visibility record (WorkflowId, StartTime, ...); users cannot set
  them, and queries read them from the record;
- predefined attributes (TemporalChangeVersion, BuildIds, ...) live in the run's search attributes like
  custom ones, but their names and types are fixed by the server;
- custom attributes are registered per namespace through the OperatorService (their types come from the
  registry, passed in by the caller).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from temporalio.api.enums.v1 import IndexedValueType


class ValueType(enum.IntEnum):
    """temporal.api.enums.v1.IndexedValueType, as the registry stores it."""

    TEXT = IndexedValueType.INDEXED_VALUE_TYPE_TEXT
    KEYWORD = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    INT = IndexedValueType.INDEXED_VALUE_TYPE_INT
    DOUBLE = IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE
    BOOL = IndexedValueType.INDEXED_VALUE_TYPE_BOOL
    DATETIME = IndexedValueType.INDEXED_VALUE_TYPE_DATETIME
    KEYWORD_LIST = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST

    @property
    def display_name(self) -> str:
        """The name the reference prints and SDKs put in a payload's "type" metadata (e.g. KeywordList)."""
        return _DISPLAY_NAMES[self]

    @classmethod
    def from_display_name(cls, name: str) -> ValueType | None:
        return _BY_DISPLAY_NAME.get(name)


_DISPLAY_NAMES = {
    ValueType.TEXT: "Text",
    ValueType.KEYWORD: "Keyword",
    ValueType.INT: "Int",
    ValueType.DOUBLE: "Double",
    ValueType.BOOL: "Bool",
    ValueType.DATETIME: "Datetime",
    ValueType.KEYWORD_LIST: "KeywordList",
}
_BY_DISPLAY_NAME = {name: value_type for value_type, name in _DISPLAY_NAMES.items()}


class Kind(enum.Enum):
    SYSTEM = "system"
    PREDEFINED = "predefined"
    CUSTOM = "custom"


@dataclass(frozen=True)
class Attribute:
    """A resolved attribute: its canonical name, type and where its value lives."""

    name: str
    type: ValueType
    kind: Kind

    @property
    def in_search_attributes(self) -> bool:
        """True when the value is read from the run's search attributes rather than a record column."""
        return self.kind is not Kind.SYSTEM


# System attributes with a VisibilityRecord column behind them. ExecutionStatus is a Keyword to users
# (they write 'Running') but is compared as the WorkflowExecutionStatus number, as the reference does.
WORKFLOW_ID = "WorkflowId"
RUN_ID = "RunId"
WORKFLOW_TYPE = "WorkflowType"
TASK_QUEUE = "TaskQueue"
EXECUTION_STATUS = "ExecutionStatus"
START_TIME = "StartTime"
EXECUTION_TIME = "ExecutionTime"
CLOSE_TIME = "CloseTime"
HISTORY_LENGTH = "HistoryLength"
EXECUTION_DURATION = "ExecutionDuration"
STATE_TRANSITION_COUNT = "StateTransitionCount"
HISTORY_SIZE_BYTES = "HistorySizeBytes"
PARENT_WORKFLOW_ID = "ParentWorkflowId"
PARENT_RUN_ID = "ParentRunId"
ROOT_WORKFLOW_ID = "RootWorkflowId"
ROOT_RUN_ID = "RootRunId"

QUERYABLE_SYSTEM: dict[str, ValueType] = {
    WORKFLOW_ID: ValueType.KEYWORD,
    RUN_ID: ValueType.KEYWORD,
    WORKFLOW_TYPE: ValueType.KEYWORD,
    TASK_QUEUE: ValueType.KEYWORD,
    EXECUTION_STATUS: ValueType.KEYWORD,
    START_TIME: ValueType.DATETIME,
    EXECUTION_TIME: ValueType.DATETIME,
    CLOSE_TIME: ValueType.DATETIME,
    HISTORY_LENGTH: ValueType.INT,
    EXECUTION_DURATION: ValueType.INT,
    STATE_TRANSITION_COUNT: ValueType.INT,
    HISTORY_SIZE_BYTES: ValueType.INT,
    PARENT_WORKFLOW_ID: ValueType.KEYWORD,
    PARENT_RUN_ID: ValueType.KEYWORD,
    ROOT_WORKFLOW_ID: ValueType.KEYWORD,
    ROOT_RUN_ID: ValueType.KEYWORD,
}

# System attributes the reference has but a VisibilityRecord does not carry: listed by
# ListSearchAttributes (clients expect them) but a query naming them is rejected rather than answered
# wrongly. None left.
UNSUPPORTED_SYSTEM: dict[str, ValueType] = {}

SYSTEM: dict[str, ValueType] = {**QUERYABLE_SYSTEM, **UNSUPPORTED_SYSTEM}

# Predefined attributes a workflow may set (the reference's whitelist): e.g. the SDKs upsert
# TemporalChangeVersion when `workflow.patched` is used.
SETTABLE_PREDEFINED: dict[str, ValueType] = {
    "TemporalChangeVersion": ValueType.KEYWORD_LIST,
    "BinaryChecksums": ValueType.KEYWORD_LIST,
    "BuildIds": ValueType.KEYWORD_LIST,
    "BatcherNamespace": ValueType.KEYWORD,
    "BatcherUser": ValueType.KEYWORD,
    "TemporalScheduledStartTime": ValueType.DATETIME,
    "TemporalScheduledById": ValueType.KEYWORD,
    "TemporalSchedulePaused": ValueType.BOOL,
    "TemporalNamespaceDivision": ValueType.KEYWORD,
    "TemporalPauseInfo": ValueType.KEYWORD_LIST,
    "TemporalReportedProblems": ValueType.KEYWORD_LIST,
}

# Every predefined attribute (queryable; the ones not in SETTABLE_PREDEFINED are written by the server).
PREDEFINED: dict[str, ValueType] = {
    **SETTABLE_PREDEFINED,
    "TemporalWorkerDeploymentVersion": ValueType.KEYWORD,
    "TemporalWorkflowVersioningBehavior": ValueType.KEYWORD,
    "TemporalWorkerDeployment": ValueType.KEYWORD,
    "TemporalUsedWorkerDeploymentVersions": ValueType.KEYWORD_LIST,
    "TemporalExternalPayloadCount": ValueType.INT,
    "TemporalExternalPayloadSizeBytes": ValueType.INT,
}

# Field names of the reference's visibility documents: never usable as custom attribute names.
RESERVED_FIELDS = frozenset({"NamespaceId", "MemoEncoding", "Memo", "VisibilityTaskKey"})
RESERVED_PREFIX = "Temporal"


def is_reserved(name: str) -> bool:
    """Names a custom search attribute may not take (the reference's sadefs.IsReserved)."""
    return name in SYSTEM or name in PREDEFINED or name in RESERVED_FIELDS or name.startswith(RESERVED_PREFIX)


def lookup(name: str, custom: Mapping[str, int]) -> Attribute | None:
    """Resolve a name as the reference does: custom first, then system and predefined, then the same
    name with the "Temporal" prefix added or removed (so `ChangeVersion` finds TemporalChangeVersion).
    """
    if name not in SYSTEM and name not in PREDEFINED and name in custom:
        return Attribute(name, ValueType(custom[name]), Kind.CUSTOM)
    for candidate in (name, _toggle_prefix(name)):
        if candidate in SYSTEM:
            return Attribute(candidate, SYSTEM[candidate], Kind.SYSTEM)
        if candidate in PREDEFINED:
            return Attribute(candidate, PREDEFINED[candidate], Kind.PREDEFINED)
    return None


def _toggle_prefix(name: str) -> str:
    if name.startswith(RESERVED_PREFIX):
        return name[len(RESERVED_PREFIX) :]
    return RESERVED_PREFIX + name


def search_attribute_types(custom: Mapping[str, int]) -> dict[str, ValueType]:
    """Types of everything a run's search attributes may hold in a namespace: predefined and custom."""
    types = {name: ValueType(t) for name, t in custom.items() if name not in SYSTEM}
    types.update(PREDEFINED)
    return types
