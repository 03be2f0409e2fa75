"""A schedule's spec compiled into "the next matching time after t": intervals, calendars, cron strings,
exclusions, start/end bounds, jitter and time zones, with the reference's semantics.

Times are whole seconds (the reference's resolution) for matching; jitter adds milliseconds. Calendar
fields are matched in the spec's time zone: a nonexistent local time (spring forward) never matches, a
repeated one (fall back) matches twice, as on the reference.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

import xxhash
from temporalio.api.schedule.v1 import CalendarSpec, IntervalSpec, Range, ScheduleSpec, StructuredCalendarSpec

MIN_YEAR = 2000
MAX_YEAR = 2100
MAX_COMMENT_LEN = 200

_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_DAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
_PREDEFINED = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class SpecError(ValueError):
    """The spec cannot be compiled; the message is what the reference says after "Invalid schedule spec: "."""


# ---- canonical form -------------------------------------------------------------------------------------
def canonicalize(spec: ScheduleSpec) -> ScheduleSpec:
    """Calendars and cron strings rewritten as structured calendars / intervals, then validated."""
    out = ScheduleSpec()
    out.CopyFrom(spec)
    del out.calendar[:], out.exclude_calendar[:], out.cron_string[:]
    for cal in spec.calendar:
        out.structured_calendar.append(_structured(cal))
    for cal in spec.exclude_calendar:
        out.exclude_structured_calendar.append(_structured(cal))
    cron_tz: str | None = None
    for cron in spec.cron_string:
        structured, interval, tz = _parse_cron(cron)
        if cron_tz is not None and tz != cron_tz:
            raise SpecError("conflicting timezone names")
        cron_tz = tz
        if structured is not None:
            out.structured_calendar.append(structured)
        if interval is not None:
            out.interval.append(interval)
    if cron_tz:
        if (out.timezone_name and out.timezone_name != cron_tz) or out.timezone_data:
            raise SpecError("conflicting timezone names")
        out.timezone_name = cron_tz
    for structured in out.structured_calendar:
        _validate_structured(structured)
    for interval in out.interval:
        _validate_interval(interval)
    return out


def described(spec: ScheduleSpec) -> ScheduleSpec:
    """The spec as DescribeSchedule and ListSchedules show it, as the reference does: canonical (cron
    strings and calendars as structured calendars and intervals) with every range spelled out (end at
    least start, step at least 1). A spec that does not compile is shown as stored."""
    try:
        out = canonicalize(spec)
    except SpecError:
        out = ScheduleSpec()
        out.CopyFrom(spec)
    for cal in (*out.structured_calendar, *out.exclude_structured_calendar):
        for ranges in (
            cal.second,
            cal.minute,
            cal.hour,
            cal.day_of_month,
            cal.month,
            cal.year,
            cal.day_of_week,
        ):
            for r in ranges:
                r.end = max(r.end, r.start)
                r.step = r.step or 1
    return out


def _structured(cal: CalendarSpec) -> StructuredCalendarSpec:
    return StructuredCalendarSpec(
        comment=cal.comment,
        second=_ranges(cal.second, "0", 0, 59, "Second"),
        minute=_ranges(cal.minute, "0", 0, 59, "Minute"),
        hour=_ranges(cal.hour, "0", 0, 23, "Hour"),
        day_of_month=_ranges(cal.day_of_month, "*", 1, 31, "DayOfMonth"),
        month=_ranges(cal.month, "*", 1, 12, "Month", names=_MONTHS, name_min=3, first=1),
        # Every year is no range at all, as in the reference's canonical form (an empty field matches all).
        year=[] if cal.year.strip() in ("", "*") else _ranges(cal.year, "*", MIN_YEAR, MAX_YEAR, "Year"),
        day_of_week=_ranges(cal.day_of_week, "*", 0, 7, "DayOfWeek", names=_DAYS, name_min=2, first=0),
    )


def _ranges(
    text: str,
    default: str,
    low: int,
    high: int,
    field: str,
    names: list[str] | None = None,
    name_min: int = 0,
    first: int = 0,
) -> list[Range]:
    """`*`, `x`, `x-z`, `x-z/y`, `x/y` and comma lists of them (names allowed for months and weekdays)."""

    def value(part: str, minimum: int) -> int:
        if names is not None and len(part) >= name_min:
            for i, name in enumerate(names):
                if name.startswith(part.lower()):
                    return i + first
        try:
            v = int(part)
        except ValueError:
            raise SpecError(f"invalid {field} value {part!r}") from None
        if not minimum <= v <= high:
            raise SpecError(f"{field} is not in range [{low}-{high}]")
        return v

    text = text.strip() or default
    out = []
    for part in text.split(","):
        step, has_step = 1, False
        if "/" in part:
            pieces = part.split("/")
            if len(pieces) != 2:
                raise SpecError(f"malformed {field} expression {part!r}")
            part, has_step = pieces[0], True
            try:
                step = int(pieces[1])
            except ValueError:
                raise SpecError(f"malformed {field} expression {part!r}") from None
            if step < 1:
                raise SpecError(f"malformed {field} expression {part!r}")
        start, end = low, high
        if part != "*":
            if "-" in part:
                pieces = part.split("-")
                if len(pieces) != 2:
                    raise SpecError(f"malformed {field} expression {part!r}")
                start = value(pieces[0], low)
                end = value(pieces[1], start)
            else:
                start = value(part, low)
                if not has_step:
                    end = start
        out.append(Range(start=start, end=0 if end == start else end, step=0 if step == 1 else step))
    return out


def _parse_cron(cron: str) -> tuple[StructuredCalendarSpec | None, IntervalSpec | None, str]:
    tz = ""
    if cron.startswith("TZ=") or cron.startswith("CRON_TZ="):
        head, _, rest = cron.partition(" ")
        if not rest:
            raise SpecError("CronString has a time zone but no schedule")
        tz, cron = head.partition("=")[2], rest
    if cron.startswith("@every"):
        _, _, every = cron.partition(" ")
        iv, _, phase = every.partition("/")
        interval = IntervalSpec()
        interval.interval.FromTimedelta(_parse_duration(iv))
        if phase:
            interval.phase.FromTimedelta(_parse_duration(phase))
        return None, interval, ""
    cron = _PREDEFINED.get(cron, cron)
    fields = cron.split()
    names = {
        5: ("minute", "hour", "day_of_month", "month", "day_of_week"),
        6: ("minute", "hour", "day_of_month", "month", "day_of_week", "year"),
        7: ("second", "minute", "hour", "day_of_month", "month", "day_of_week", "year"),
    }.get(len(fields))
    if names is None:
        raise SpecError("CronString does not have 5-7 fields")
    return _structured(CalendarSpec(**dict(zip(names, fields, strict=True)))), None, tz


def _parse_duration(text: str) -> dt.timedelta:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    total, number = 0.0, ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else ch
        if unit not in units or not number:
            raise SpecError(f"invalid duration {text!r}")
        total += float(number) * units[unit]
        number = ""
        i += len(unit)
    if number or not text:
        raise SpecError(f"invalid duration {text!r}")
    return dt.timedelta(seconds=total)


def _validate_structured(cal: StructuredCalendarSpec) -> None:
    errors = []
    for field, name, low, high in (
        (cal.second, "Second", 0, 59),
        (cal.minute, "Minute", 0, 59),
        (cal.hour, "Hour", 0, 23),
        (cal.day_of_month, "DayOfMonth", 1, 31),
        (cal.month, "Month", 1, 12),
        (cal.year, "Year", MIN_YEAR, MAX_YEAR),
        (cal.day_of_week, "DayOfWeek", 0, 7),
    ):
        for r in field:
            if not low <= r.start <= high:
                errors.append(f"{name} Start is not in range [{low}-{high}]")
            if r.end != 0 and (r.end < r.start or r.end > high):
                errors.append(f"{name} End is before Start or not in range [{low}-{high}]")
            if r.step < 0:
                errors.append(f"{name} has invalid Step")
    if len(cal.comment) > MAX_COMMENT_LEN:
        errors.append("comment is too long")
    if errors:
        raise SpecError("invalid calendar spec: " + ", ".join(errors))


def _validate_interval(interval: IntervalSpec) -> None:
    every, phase = interval.interval.ToTimedelta(), interval.phase.ToTimedelta()
    if every < dt.timedelta(seconds=1):
        raise SpecError("interval is too small")
    if phase < dt.timedelta(0):
        raise SpecError("phase is negative")
    if phase >= every:
        raise SpecError("phase cannot be greater than Interval")


# ---- compiled form --------------------------------------------------------------------------------------
def _values(ranges, low: int, high: int, sunday_twice: bool = False) -> frozenset[int]:
    if not ranges:
        return frozenset(range(low, high + 1))  # an empty field matches every value (the SDKs rely on it)
    out: set[int] = set()
    for r in ranges:
        step = r.step or 1
        end = max(r.end, r.start)
        out.update(range(r.start, end + 1, step))
    if sunday_twice and 7 in out:
        out.add(0)
    return frozenset(v for v in out if low <= v <= high)


class _Calendar:
    """One structured calendar: sets of matching values per field, evaluated in the schedule's zone."""

    def __init__(self, cal: StructuredCalendarSpec, tz: dt.tzinfo) -> None:
        self.tz = tz
        self.years = _values(cal.year, MIN_YEAR, MAX_YEAR)
        self.months = _values(cal.month, 1, 12)
        self.days = _values(cal.day_of_month, 1, 31)
        self.weekdays = _values(cal.day_of_week, 0, 6, sunday_twice=True)
        self.hours = sorted(_values(cal.hour, 0, 23))
        self.minutes = sorted(_values(cal.minute, 0, 59))
        self.seconds = sorted(_values(cal.second, 0, 59))

    def matches(self, t: int) -> bool:
        local = dt.datetime.fromtimestamp(t, self.tz)
        return (
            local.year in self.years
            and local.month in self.months
            and local.day in self.days
            and (local.isoweekday() % 7) in self.weekdays
            and local.hour in self.hours
            and local.minute in self.minutes
            and local.second in self.seconds
        )

    def next(self, after: int) -> int | None:
        """The first matching time strictly after `after` (epoch seconds), or None up to MAX_YEAR."""
        start = dt.datetime.fromtimestamp(after, self.tz).date()
        day = start
        while day.year <= MAX_YEAR:
            if day.year not in self.years:
                day = dt.date(day.year + 1, 1, 1)
                continue
            if day.month not in self.months:
                day = dt.date(day.year + (day.month == 12), day.month % 12 + 1, 1)
                continue
            if day.day in self.days and (day.isoweekday() % 7) in self.weekdays:
                found = self._first_in_day(day, after)
                if found is not None:
                    return found
            day += dt.timedelta(days=1)
        return None

    def _epoch(self, day: dt.date, h: int, m: int, s: int, fold: int) -> int | None:
        local = dt.datetime(day.year, day.month, day.day, h, m, s, fold=fold, tzinfo=self.tz)
        t = int(local.timestamp())
        back = dt.datetime.fromtimestamp(t, self.tz)
        if (back.hour, back.minute, back.second, back.day) != (h, m, s, day.day):
            return None  # skipped by a daylight-saving jump
        return t

    def _first_in_day(self, day: dt.date, after: int) -> int | None:
        for h in self.hours:
            for fold in (0, 1):
                last = self._epoch(day, h, 59, 59, fold)
                if last is not None and last <= after:
                    continue
                for m in self.minutes:
                    for s in self.seconds:
                        t = self._epoch(day, h, m, s, fold)
                        if t is not None and t > after:
                            if fold == 1 and t == self._epoch(day, h, m, s, 0):
                                continue  # not a repeated hour: fold 1 is the same instant as fold 0
                            return t
        return None


def load_zone(spec: ScheduleSpec) -> dt.tzinfo:
    name = spec.timezone_name
    if not name or name == "UTC":
        return dt.UTC
    try:
        if spec.timezone_data:
            import io

            return zoneinfo.ZoneInfo.from_file(io.BytesIO(spec.timezone_data), key=name)
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise SpecError(f"unknown time zone {name}") from None


@dataclass
class NextTime:
    nominal_ms: int  # the matching time
    actual_ms: int  # with jitter: when the action is taken


class CompiledSpec:
    """Answers the next action time after a given time. Build with `compile_spec` (raises SpecError)."""

    def __init__(self, spec: ScheduleSpec, jitter_seed: str) -> None:
        self.spec = canonicalize(spec)
        tz = load_zone(self.spec)
        self.calendars = [_Calendar(c, tz) for c in self.spec.structured_calendar]
        self.excludes = [_Calendar(c, tz) for c in self.spec.exclude_structured_calendar]
        self.intervals = [
            (
                max(int(i.interval.ToTimedelta().total_seconds()), 1),
                max(int(i.phase.ToTimedelta().total_seconds()), 0),
            )
            for i in self.spec.interval
        ]
        self.start_s = self.spec.start_time.seconds if self.spec.HasField("start_time") else None
        self.end_s = self.spec.end_time.seconds if self.spec.HasField("end_time") else None
        self.end_ms = self.spec.end_time.ToMilliseconds() if self.spec.HasField("end_time") else None
        self.jitter_ms = self.spec.jitter.ToMilliseconds() if self.spec.HasField("jitter") else 0
        self.seed = jitter_seed

    def _raw_next(self, after: int) -> int | None:
        best: int | None = None
        for cal in self.calendars:
            t = cal.next(after)
            if t is not None and (best is None or t < best):
                best = t
        for every, phase in self.intervals:
            t = ((after - phase) // every + 1) * every + phase
            if best is None or t < best:
                best = t
        return best

    def next_time(self, after_ms: int) -> NextTime | None:
        """The first action strictly after `after_ms` (in jittered time), or None when there is none."""
        after = after_ms // 1000  # truncate to the second, as the reference does
        if self.start_s is not None and after < self.start_s:
            after = self.start_s - 1
        nominal: int | None = None
        while nominal is None or any(x.matches(nominal) for x in self.excludes):
            nominal = self._raw_next(after if nominal is None else nominal)
            if nominal is None or (self.end_ms is not None and nominal * 1000 > self.end_ms):
                return None
            if nominal > dt.datetime(MAX_YEAR + 1, 1, 1, tzinfo=dt.UTC).timestamp():
                return None
        max_jitter = self.jitter_ms
        following = self._raw_next(nominal)
        if following is not None:
            max_jitter = min(max_jitter, (following - nominal) * 1000)
        jitter = 0
        if max_jitter > 0:
            digest = xxhash.xxh32_intdigest(f"{nominal}-{self.seed}".encode())
            jitter = (digest * max_jitter) >> 32
        return NextTime(nominal * 1000, nominal * 1000 + jitter)

    def times_between(self, start_ms: int, end_ms: int, limit: int) -> list[NextTime]:
        """Actions with start_ms < actual time <= end_ms, at most `limit`."""
        out = []
        t = start_ms
        while len(out) < limit:
            nxt = self.next_time(t)
            if nxt is None or nxt.actual_ms > end_ms:
                break
            out.append(nxt)
            t = nxt.actual_ms
        return out


def compile_spec(spec: ScheduleSpec, jitter_seed: str) -> CompiledSpec:
    """Raises SpecError with the reference's wording."""
    return CompiledSpec(spec, jitter_seed)
