"""What a run remembers of the worker builds that completed its workflow tasks, as the reference does.

Each build's first completed workflow task becomes an auto reset point (where `workflow reset
--type BadBinary`-style tools and the UI offer to go back to), the last build is the run's most recent
worker version stamp, and the predefined search attribute BuildIds lists them ("unversioned" first for
workers without versioning) so that visibility can find the runs a build touched.
"""

from __future__ import annotations

import json

from temporalio.api.common.v1 import Payload, SearchAttributes, WorkerVersionStamp
from temporalio.api.workflow.v1 import ResetPointInfo, ResetPoints

from hourglass.cluster.history.limits import LIMITS
from hourglass.cluster.history.mutable_state import MutableState
from hourglass.cluster.history.timeutil import to_timestamp

# The reference's history.maxAutoResetPoints default: the oldest points go first.
MAX_RESET_POINTS = 20
BUILD_IDS = "BuildIds"
UNVERSIONED = "unversioned"
_ASSIGNED_PREFIX = "assigned:"
_PINNED_PREFIX = "pinned:"


def record_completed_task(
    ms: MutableState, build_id: str, completed_event_id: int, now_ms: int, pinned: str = ""
) -> bool:
    """Note a workflow task completed (event `completed_event_id`) by a worker of `build_id` ("" when
    the worker sent none); `pinned` is the version key a pinned run is pinned to (its BuildIds then
    start with "pinned:<version>" instead of "unversioned"). Returns True when the run's search
    attributes changed (visibility must be updated)."""
    info = ms.info
    info.most_recent_worker_version_stamp = WorkerVersionStamp(build_id=build_id) if build_id else None
    _add_reset_point(ms, build_id, completed_event_id, now_ms)
    return _add_build_id_search_attribute(ms, build_id, pinned)


def resettable(ms: MutableState) -> bool:
    """A point is resettable unless the run has requests to other workflows in flight (the reference's
    CheckResettable: pending children, signals or cancels to send)."""
    return not (ms.children or ms.signals_requested or ms.cancels_requested)


def _add_reset_point(ms: MutableState, build_id: str, event_id: int, now_ms: int) -> None:
    info = ms.info
    points = list(info.auto_reset_points.points) if info.auto_reset_points is not None else []
    if any(p.build_id == build_id and not p.binary_checksum for p in points):
        return
    points.append(
        ResetPointInfo(
            build_id=build_id,
            run_id=info.run_id,
            first_workflow_task_completed_id=event_id,
            create_time=to_timestamp(now_ms),
            resettable=resettable(ms),
        )
    )
    info.auto_reset_points = ResetPoints(points=points[-MAX_RESET_POINTS:])


def build_ids(ms: MutableState) -> list[str]:
    """The run's BuildIds search attribute (empty when it has none or it is not a JSON list)."""
    sa = ms.info.search_attributes
    if sa is None or BUILD_IDS not in sa.indexed_fields:
        return []
    try:
        values = json.loads(sa.indexed_fields[BUILD_IDS].data or b"[]")
    except ValueError:
        return []
    return [v for v in values if isinstance(v, str)] if isinstance(values, list) else []


def _add_build_id_search_attribute(ms: MutableState, build_id: str, pinned: str = "") -> bool:
    existing = build_ids(ms)
    value = f"{UNVERSIONED}:{build_id}" if build_id else UNVERSIONED
    values = [f"{_PINNED_PREFIX}{pinned}" if pinned else UNVERSIONED]
    values += [v for v in existing if not _sentinel(v)]
    if value not in values:
        values.append(value)
    if values == existing:
        return False
    payload = _encode(values)
    # Over the per-value size limit the oldest builds go, the "unversioned" sentinel stays.
    while len(payload.data) > LIMITS.search_attributes_size_of_value and len(values) > 1:
        values.pop(1)
        payload = _encode(values)
    if ms.info.search_attributes is None:
        ms.info.search_attributes = SearchAttributes()
    ms.info.search_attributes.indexed_fields[BUILD_IDS].CopyFrom(payload)
    return True


def _sentinel(value: str) -> bool:
    """The list's first value says how the run is versioned: "unversioned", "assigned:<build>" or
    "pinned:<deployment>:<build>"; a new completion replaces it."""
    return value == UNVERSIONED or value.startswith((_ASSIGNED_PREFIX, _PINNED_PREFIX))


def _encode(values: list[str]) -> Payload:
    return Payload(
        metadata={"encoding": b"json/plain", "type": b"KeywordList"},
        data=json.dumps(values, separators=(",", ":")).encode(),
    )
