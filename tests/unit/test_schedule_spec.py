"""Next action times of schedule specs: what a user sees as a schedule's future action times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from temporalio.api.schedule.v1 import CalendarSpec, IntervalSpec, ScheduleSpec

from hourglass.cluster.scheduler.spec import SpecError, compile_spec


def ms(*args: int, tz=UTC) -> int:
    return int(datetime(*args, tzinfo=tz).timestamp() * 1000)


def times(spec: ScheduleSpec, start_ms: int, n: int) -> list[datetime]:
    compiled = compile_spec(spec, "seed")
    out, t = [], start_ms
    for _ in range(n):
        nxt = compiled.next_time(t)
        if nxt is None:
            break
        out.append(datetime.fromtimestamp(nxt.actual_ms / 1000, UTC))
        t = nxt.actual_ms
    return out


def test_interval_with_phase() -> None:
    spec = ScheduleSpec(interval=[IntervalSpec(interval={"seconds": 3600}, phase={"seconds": 900})])
    assert times(spec, ms(2030, 1, 1, 10, 20), 2) == [
        datetime(2030, 1, 1, 11, 15, tzinfo=UTC),
        datetime(2030, 1, 1, 12, 15, tzinfo=UTC),
    ]


def test_cron_string_in_a_time_zone_across_daylight_saving() -> None:
    # 02:30 every day in New York: skipped on the spring-forward day (2030-03-10 has no 02:30).
    spec = ScheduleSpec(cron_string=["CRON_TZ=America/New_York 30 2 * * *"])
    got = times(spec, ms(2030, 3, 8, 12), 3)
    assert got == [
        datetime(2030, 3, 9, 7, 30, tzinfo=UTC),  # EST
        datetime(2030, 3, 11, 6, 30, tzinfo=UTC),  # EDT; the 10th is skipped
        datetime(2030, 3, 12, 6, 30, tzinfo=UTC),
    ]


def test_calendar_names_exclusions_and_end_time() -> None:
    spec = ScheduleSpec(
        calendar=[CalendarSpec(hour="9", day_of_week="mon-fri")],
        exclude_calendar=[CalendarSpec(hour="*", minute="*", second="*", day_of_week="wed")],
        end_time={"seconds": ms(2030, 1, 11) // 1000},
    )
    # 2030-01-07 is a Monday.
    got = times(spec, ms(2030, 1, 6), 10)
    assert [d.day for d in got] == [7, 8, 10]
    assert all(d.hour == 9 for d in got)


def test_start_time_and_predefined_cron() -> None:
    spec = ScheduleSpec(cron_string=["@hourly"], start_time={"seconds": ms(2030, 1, 1, 5) // 1000})
    assert times(spec, ms(2029, 1, 1), 1) == [datetime(2030, 1, 1, 5, tzinfo=UTC)]


def test_jitter_stays_below_the_interval_and_is_deterministic() -> None:
    spec = ScheduleSpec(interval=[IntervalSpec(interval={"seconds": 10})], jitter={"seconds": 60})
    compiled = compile_spec(spec, "seed")
    t = ms(2030, 1, 1)
    for _ in range(20):
        nxt = compiled.next_time(t)
        assert 0 <= nxt.actual_ms - nxt.nominal_ms < 10_000
        assert compile_spec(spec, "seed").next_time(t) == nxt
        t = nxt.actual_ms


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ScheduleSpec(interval=[IntervalSpec(interval={"nanos": 1000})]), "interval is too small"),
        (
            ScheduleSpec(interval=[IntervalSpec(interval={"seconds": 5}, phase={"seconds": 5})]),
            "phase cannot be greater than Interval",
        ),
        (ScheduleSpec(cron_string=["1 2 3"]), "CronString does not have 5-7 fields"),
        (ScheduleSpec(calendar=[CalendarSpec(hour="25")]), "Hour is not in range [0-23]"),
        (ScheduleSpec(timezone_name="Nowhere/Bad"), "unknown time zone Nowhere/Bad"),
    ],
)
def test_invalid_specs(spec: ScheduleSpec, message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        compile_spec(spec, "seed")
