"""Schedules through the official SDK: create / describe / list / update / pause / trigger / backfill /
delete, specs that fire on time, overlap policies, and (Hourglass only) a schedule that keeps its pace
across kill -9. Intervals are a few seconds so the suite stays quick.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.api.common.v1 import SearchAttributes
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleBackfill,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from .helpers import new_id, run_worker
from .servers import ServerProcess
from .workflows import GreetSomeone, WaitForSignal

SCHEDULED_ID = re.compile(r"^(.*)-(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$")


def interval_schedule(
    workflow_id: str,
    task_queue: str,
    every_s: float,
    *,
    workflow=WaitForSignal.run,
    args: tuple = (),
    overlap: ScheduleOverlapPolicy = ScheduleOverlapPolicy.SKIP,
    paused: bool = False,
    note: str | None = None,
) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(workflow, args=list(args), id=workflow_id, task_queue=task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=every_s))]),
        policy=SchedulePolicy(overlap=overlap),
        state=ScheduleState(paused=paused, note=note),
    )


async def wait_until(predicate, timeout_s: float = 15.0, step_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while True:
        value = await predicate()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(step_s)


async def scheduled_runs(client: Client, schedule_id: str) -> list:
    return [w async for w in client.list_workflows(f"TemporalScheduledById = '{schedule_id}'")]


async def test_create_describe_list_count_delete(client: Client) -> None:
    sid, wid = new_id("sched"), new_id("wf")
    handle = await client.create_schedule(
        sid,
        interval_schedule(wid, "tq-nobody", 3600, paused=True, note="created paused"),
        memo={"owner": "team-a"},
    )
    desc = await handle.describe()
    assert desc.id == sid
    assert desc.schedule.state.paused and desc.schedule.state.note == "created paused"
    assert desc.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    assert desc.schedule.policy.catchup_window == timedelta(days=365)
    assert desc.schedule.spec.intervals == [ScheduleIntervalSpec(every=timedelta(hours=1))]
    assert isinstance(desc.schedule.action, ScheduleActionStartWorkflow)
    assert desc.schedule.action.workflow == "WaitForSignal" and desc.schedule.action.id == wid
    assert await desc.memo_value("owner") == "team-a"
    assert desc.info.num_actions == 0 and desc.info.recent_actions == []
    # Future action times are on the hour (interval 1h, no offset) and ten of them.
    assert len(desc.info.next_action_times) == 10
    assert all(t.minute == 0 and t.second == 0 for t in desc.info.next_action_times)

    listed = await wait_until(lambda: _listed_ids(client, sid))
    assert sid in listed
    entry = [e async for e in await client.list_schedules(f"ScheduleId = '{sid}'")]
    assert [e.id for e in entry] == [sid]
    assert entry[0].schedule.state.paused and entry[0].schedule.action.workflow == "WaitForSignal"
    count = await client.workflow_service.count_schedules(
        rr.CountSchedulesRequest(namespace="default", query=f"ScheduleId = '{sid}'")
    )
    assert count.count == 1

    await handle.delete()
    with pytest.raises(RPCError) as gone:
        await handle.describe()
    # (The reference says "schedule not found" here, from its closed scheduler workflow; Hourglass keeps
    # nothing of a deleted schedule and answers as for an id never used.)
    assert gone.value.status == RPCStatusCode.NOT_FOUND


async def _listed_ids(client: Client, sid: str) -> set[str]:
    return {e.id async for e in await client.list_schedules(f"ScheduleId = '{sid}'")}


async def test_duplicate_ids_and_bad_specs_are_refused(client: Client) -> None:
    sid = new_id("sched")
    handle = await client.create_schedule(sid, interval_schedule(new_id("wf"), "tq", 3600, paused=True))
    with pytest.raises(ScheduleAlreadyRunningError):
        await client.create_schedule(sid, interval_schedule(new_id("wf"), "tq", 3600, paused=True))
    bad = {
        "interval is too small": ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=timedelta(milliseconds=500))]
        ),
        "CronString does not have 5-7 fields": ScheduleSpec(cron_expressions=["* *"]),
        "unknown time zone Nowhere/Bad": ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=timedelta(seconds=5))], time_zone_name="Nowhere/Bad"
        ),
    }
    for message, spec in bad.items():
        with pytest.raises(RPCError) as refused:
            await client.create_schedule(
                new_id("bad"),
                Schedule(action=ScheduleActionStartWorkflow("W", id="w", task_queue="tq"), spec=spec),
            )
        assert refused.value.status == RPCStatusCode.INVALID_ARGUMENT
        assert refused.value.message == f"Invalid schedule spec: {message}"
    missing = new_id("missing")
    with pytest.raises(RPCError) as unknown:
        await client.get_schedule_handle(missing).pause()
    assert unknown.value.status == RPCStatusCode.NOT_FOUND
    assert unknown.value.message == f"workflow not found for ID: temporal-sys-scheduler:{missing}"
    await handle.delete()


async def test_interval_schedule_fires_workflows_on_time(client: Client) -> None:
    sid, wid = new_id("sched"), new_id("greet")
    async with run_worker(client) as tq:
        handle = await client.create_schedule(
            sid, interval_schedule(wid, tq, 2, workflow=GreetSomeone.run, args=("schedule",))
        )
        desc = await wait_until(lambda: _described_with(handle, lambda d: d.info.num_actions >= 2), 12)
        await handle.delete()
    assert desc.info.num_actions >= 2
    for action in desc.info.recent_actions:
        # Each action is taken within a second of its scheduled time, on an even second (every 2 s).
        assert action.scheduled_at.second % 2 == 0
        assert timedelta(0) <= action.started_at - action.scheduled_at < timedelta(seconds=1)
    runs = await scheduled_runs(client, sid)
    assert len(runs) >= 2
    for run in runs:
        match = SCHEDULED_ID.match(run.id)
        assert match and match.group(1) == wid, run.id
        nominal = datetime.strptime(match.group(2), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert run.search_attributes["TemporalScheduledById"] == [sid]
        assert run.search_attributes["TemporalScheduledStartTime"] == [nominal]
        assert run.workflow_type == "GreetSomeone"
    started = client.get_workflow_handle(desc.info.recent_actions[0].action.workflow_id)
    assert await started.result() == "Hello, schedule!"
    first = (await started.fetch_history()).events[0].workflow_execution_started_event_attributes
    assert first.identity == f"temporal-scheduler-default-{sid}"


async def _described_with(handle, predicate):
    desc = await handle.describe()
    return desc if predicate(desc) else None


@pytest.mark.parametrize(
    "overlap", [ScheduleOverlapPolicy.SKIP, ScheduleOverlapPolicy.BUFFER_ONE, ScheduleOverlapPolicy.ALLOW_ALL]
)
async def test_overlap_policies(client: Client, overlap: ScheduleOverlapPolicy) -> None:
    """Nobody polls the task queue, so every started workflow keeps running and later times overlap."""
    sid = new_id("sched")
    handle = await client.create_schedule(
        sid, interval_schedule(new_id("wf"), new_id("tq"), 1, overlap=overlap)
    )
    await asyncio.sleep(4.5)
    desc = await handle.describe()
    raw = await client.workflow_service.describe_schedule(
        rr.DescribeScheduleRequest(namespace="default", schedule_id=sid)
    )
    if overlap == ScheduleOverlapPolicy.ALLOW_ALL:
        assert desc.info.num_actions >= 3
        assert desc.info.running_actions == []  # overlapping runs are not tracked
        assert desc.info.num_actions_skipped_overlap == 0
    else:
        assert desc.info.num_actions == 1
        assert len(desc.info.running_actions) == 1
        if overlap == ScheduleOverlapPolicy.SKIP:
            assert desc.info.num_actions_skipped_overlap >= 3
            assert raw.info.buffer_size == 0
        else:
            assert raw.info.buffer_size == 1
            # Closing the running workflow lets the buffered start go at once.
            running = client.get_workflow_handle(desc.info.running_actions[0].workflow_id)
            await running.terminate("make room")
            after = await wait_until(lambda: _described_with(handle, lambda d: d.info.num_actions >= 2), 5)
            assert after is not None
    await handle.delete()


async def test_pause_unpause_trigger_backfill_update(client: Client) -> None:
    sid, wid = new_id("sched"), new_id("wf")
    handle = await client.create_schedule(sid, interval_schedule(wid, new_id("tq"), 3600, paused=True))
    await handle.unpause(note="going")
    desc = await handle.describe()
    assert not desc.schedule.state.paused and desc.schedule.state.note == "going"
    await handle.pause(note="holding")
    desc = await handle.describe()
    assert desc.schedule.state.paused and desc.schedule.state.note == "holding"

    # A trigger runs even while paused.
    await handle.trigger()
    desc = await wait_until(lambda: _described_with(handle, lambda d: d.info.num_actions == 1))
    triggered = desc.info.recent_actions[0].action.workflow_id
    assert SCHEDULED_ID.match(triggered).group(1) == wid

    # A backfill of three whole hours takes the three hourly times, start inclusive.
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    await handle.backfill(
        ScheduleBackfill(
            start_at=hour, end_at=hour + timedelta(hours=2), overlap=ScheduleOverlapPolicy.ALLOW_ALL
        )
    )
    desc = await wait_until(lambda: _described_with(handle, lambda d: d.info.num_actions == 4))
    backfilled = sorted(a.action.workflow_id for a in desc.info.recent_actions[1:])
    assert backfilled == [
        f"{wid}-{(hour + timedelta(hours=h)).strftime('%Y-%m-%dT%H:%M:%SZ')}" for h in range(3)
    ]
    assert desc.schedule.state.paused  # manual actions do not unpause

    def change(update: ScheduleUpdateInput) -> ScheduleUpdate:
        schedule = update.description.schedule
        schedule.spec = ScheduleSpec(
            calendars=[ScheduleCalendarSpec(hour=[ScheduleRange(3)], minute=[ScheduleRange(30)])]
        )
        schedule.state.note = "updated"
        return ScheduleUpdate(schedule=schedule)

    await handle.update(change)
    desc = await handle.describe()
    assert desc.schedule.state.note == "updated"
    assert desc.info.last_updated_at is not None
    assert desc.info.next_action_times
    assert all((t.hour, t.minute, t.second) == (3, 30, 0) for t in desc.info.next_action_times)
    matching = await client.workflow_service.list_schedule_matching_times(
        rr.ListScheduleMatchingTimesRequest(
            namespace="default",
            schedule_id=sid,
            start_time=_ts(datetime(2030, 1, 1, tzinfo=UTC)),
            end_time=_ts(datetime(2030, 1, 4, tzinfo=UTC)),
        )
    )
    assert [t.ToDatetime(UTC) for t in matching.start_time] == [
        datetime(2030, 1, d, 3, 30, tzinfo=UTC) for d in (1, 2, 3)
    ]
    await handle.delete()


def _ts(when: datetime):
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp()
    ts.FromDatetime(when)
    return ts


async def test_schedule_keeps_its_pace_across_kill9(restartable_server: ServerProcess) -> None:
    srv = restartable_server
    client = await Client.connect(srv.address)
    sid, wid = new_id("sched"), new_id("wf")
    handle = await client.create_schedule(
        sid, interval_schedule(wid, new_id("tq"), 1, overlap=ScheduleOverlapPolicy.ALLOW_ALL)
    )
    await asyncio.sleep(2.5)
    before = (await handle.describe()).info.num_actions
    assert before >= 1

    await srv.restart()  # kill -9, same port, same database file
    client = await Client.connect(srv.address)
    handle = client.get_schedule_handle(sid)
    await asyncio.sleep(3)
    desc = await handle.describe()
    await handle.delete()
    assert desc.info.num_actions >= before + 2  # it kept firing, and caught up the restart's gap
    runs = await wait_until(lambda: _runs_at_least(client, sid, desc.info.num_actions))
    nominal = sorted(SCHEDULED_ID.match(r.id).group(2) for r in runs)
    assert len(nominal) == len(set(nominal)) >= desc.info.num_actions  # never twice for one time
    seconds = [datetime.strptime(n, "%Y-%m-%dT%H:%M:%SZ") for n in nominal]
    assert all(b - a == timedelta(seconds=1) for a, b in zip(seconds, seconds[1:], strict=False))  # no gap


async def _runs_at_least(client: Client, sid: str, n: int):
    runs = await scheduled_runs(client, sid)
    return runs if len(runs) >= n else None


async def test_untyped_search_attributes_of_the_action_are_described_typed(client: Client) -> None:
    """Search attributes a client gives a schedule's workflows without their type come back typed from
    describe (the server knows each registered attribute's type), as on the reference."""
    keyword = SearchAttributeKey.for_keyword("CompatScheduleKeyword")
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace="default", search_attributes={keyword.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD}
        )
    )
    action = ScheduleActionStartWorkflow(WaitForSignal.run, id=new_id(), task_queue=new_id("tq"))
    action.untyped_search_attributes = {keyword.name: ["untyped value"]}
    handle = await client.create_schedule(
        new_id("schedule"), Schedule(action=action, spec=ScheduleSpec(), state=ScheduleState(paused=True))
    )
    try:
        described = (await handle.describe()).schedule.action
        assert isinstance(described, ScheduleActionStartWorkflow)
        assert described.typed_search_attributes[keyword] == "untyped value"
    finally:
        await handle.delete()


async def test_specs_are_described_in_canonical_form(client: Client) -> None:
    """Cron strings and calendars come back as structured calendars with every range spelled out (end
    at least start, step at least 1; every year as no range), in describe and in list, as on the
    reference: the Go SDK and the Web UI read them so (Hourglass showed the cron strings and `Step 0`)."""
    schedule_id = new_id("schedule")
    handle = await client.create_schedule(
        schedule_id,
        Schedule(
            action=ScheduleActionStartWorkflow(WaitForSignal.run, id=new_id(), task_queue=new_id("tq")),
            spec=ScheduleSpec(
                cron_expressions=["0 12 * * MON"],
                calendars=[
                    ScheduleCalendarSpec(
                        hour=[ScheduleRange(3)], minute=[ScheduleRange(11)], day_of_week=[ScheduleRange(5)]
                    )
                ],
            ),
            state=ScheduleState(paused=True),
        ),
    )
    try:
        request = rr.DescribeScheduleRequest(namespace="default", schedule_id=schedule_id)
        spec = (await client.workflow_service.describe_schedule(request)).schedule.spec
        assert list(spec.cron_string) == [] and list(spec.calendar) == []

        def ranges(field) -> list[tuple[int, int, int]]:
            return [(r.start, r.end, r.step) for r in field]

        by_hour = {ranges(c.hour)[0]: c for c in spec.structured_calendar}
        assert set(by_hour) == {(12, 12, 1), (3, 3, 1)}
        cron, calendar = by_hour[(12, 12, 1)], by_hour[(3, 3, 1)]
        assert ranges(cron.second) == [(0, 0, 1)] and ranges(cron.minute) == [(0, 0, 1)]
        assert ranges(cron.day_of_month) == [(1, 31, 1)] and ranges(cron.month) == [(1, 12, 1)]
        assert ranges(cron.day_of_week) == [(1, 1, 1)] and ranges(cron.year) == []
        assert ranges(calendar.minute) == [(11, 11, 1)] and ranges(calendar.day_of_week) == [(5, 5, 1)]
        for _ in range(50):  # the reference's visibility catches up within a second or two
            listed = [s async for s in await client.list_schedules(f"ScheduleId = '{schedule_id}'")]
            if listed:
                break
            await asyncio.sleep(0.2)
        in_list = listed[0].schedule.spec
        assert sorted(c.hour[0].start for c in in_list.calendars) == [3, 12]
        assert all(c.hour[0].step == 1 and c.hour[0].end == c.hour[0].start for c in in_list.calendars)
        assert in_list.cron_expressions == []
    finally:
        await handle.delete()


async def test_emptied_search_attributes_are_described_as_none(client: Client) -> None:
    keyword = SearchAttributeKey.for_keyword("CompatScheduleKeyword")
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace="default", search_attributes={keyword.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD}
        )
    )
    schedule_id = new_id("schedule")
    handle = await client.create_schedule(
        schedule_id,
        Schedule(
            action=ScheduleActionStartWorkflow(WaitForSignal.run, id=new_id(), task_queue=new_id("tq")),
            spec=ScheduleSpec(),
            state=ScheduleState(paused=True),
        ),
        search_attributes=TypedSearchAttributes([SearchAttributePair(keyword, "on")]),
    )
    try:
        request = rr.DescribeScheduleRequest(namespace="default", schedule_id=schedule_id)
        described = await client.workflow_service.describe_schedule(request)
        assert described.HasField("search_attributes")
        update = rr.UpdateScheduleRequest(
            namespace="default",
            schedule_id=schedule_id,
            schedule=described.schedule,
            search_attributes=SearchAttributes(),
            request_id=new_id("update"),
        )
        await client.workflow_service.update_schedule(update)
        for _ in range(50):  # the reference applies an update in its scheduler workflow, a moment later
            described = await client.workflow_service.describe_schedule(request)
            if not described.HasField("search_attributes"):
                break
            await asyncio.sleep(0.2)
        assert not described.HasField("search_attributes")
    finally:
        await handle.delete()
