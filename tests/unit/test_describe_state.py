"""Describe built from a run's state: what the reference shows, for runs stored before these fields existed
too, and the build ids and reset points a completed workflow task records."""

from __future__ import annotations

import json

from hourglass.cluster.frontend.describe import describe
from hourglass.cluster.history import worker_builds
from hourglass.cluster.history.mutable_state import ChildInfo, MutableState

from .states import minimal_state

NEW_INFO_FIELDS = (
    "auto_reset_points",
    "most_recent_worker_version_stamp",
    "priority",
    "last_reset_time_ms",
    "original_start_time_ms",
    "reset_run_id",
    "start_request_id",
)


def test_a_run_stored_by_older_code_still_describes() -> None:
    blob = json.loads(minimal_state().serialize())
    for name in NEW_INFO_FIELDS:
        del blob["info"][name]  # the old code wrote no such keys
    old = MutableState.deserialize(json.dumps(blob).encode())
    resp = describe(old)
    info = resp.workflow_execution_info
    assert info.HasField("memo") and info.HasField("search_attributes")
    assert not info.HasField("priority")  # as the reference, for a run started with none
    assert not info.auto_reset_points.points
    ext = resp.workflow_extended_info
    assert ext.original_start_time.ToMilliseconds() == 1
    assert not ext.HasField("last_reset_time")
    assert list(ext.request_id_infos) == ["req"]


def test_one_reset_point_per_build_and_build_ids_in_order() -> None:
    ms = minimal_state()
    assert worker_builds.record_completed_task(ms, "a", 4, 1000)
    assert not worker_builds.record_completed_task(ms, "a", 8, 2000)  # same build: nothing new
    assert worker_builds.record_completed_task(ms, "b", 12, 3000)
    points = ms.info.auto_reset_points.points
    assert [(p.build_id, p.first_workflow_task_completed_id) for p in points] == [("a", 4), ("b", 12)]
    assert worker_builds.build_ids(ms) == ["unversioned", "unversioned:a", "unversioned:b"]
    assert ms.info.most_recent_worker_version_stamp.build_id == "b"


def test_reset_points_are_capped_and_build_ids_fit_the_value_limit() -> None:
    ms = minimal_state()
    for n in range(40):
        worker_builds.record_completed_task(ms, f"build-{n:02}-" + "x" * 80, 4 + n, 1000 + n)
    points = ms.info.auto_reset_points.points
    assert len(points) == worker_builds.MAX_RESET_POINTS
    assert points[-1].build_id.startswith("build-39-")
    values = worker_builds.build_ids(ms)
    assert values[0] == "unversioned" and values[-1].startswith("unversioned:build-39-")
    assert len(ms.info.search_attributes.indexed_fields["BuildIds"].data) <= 2048


def test_a_worker_without_build_id_is_unversioned_and_a_pending_child_is_not_resettable() -> None:
    ms = minimal_state()
    ms.children[5] = ChildInfo(5, 1, "default", "kid", "Kid", 1)
    worker_builds.record_completed_task(ms, "", 4, 1000)
    (point,) = ms.info.auto_reset_points.points
    assert not point.resettable
    assert worker_builds.build_ids(ms) == ["unversioned"]
    assert ms.info.most_recent_worker_version_stamp is None
