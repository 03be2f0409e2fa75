"""Values of search attributes: decoding payloads, one canonical Python form per type, and Text matching.

Canonical forms, shared by the evaluator, the SQLite index and query literals so all three compare alike:
Keyword and Text are str, Int is int (a float is kept as float), Double is float, Bool is bool,
Datetime is int nanoseconds since the Unix epoch (UTC), KeywordList is a non-empty list of str.
A value that does not fit its type is None: it is then treated like a missing value (SQL NULL).
"""

from __future__ import annotations

import calendar
import json
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload, SearchAttributes
from temporalio.api.enums.v1 import WorkflowExecutionStatus

from hourglass.persistence.visibility.attributes import ValueType
from hourglass.persistence.visibility.durations import go_duration_ns

NS_PER_MS = 1_000_000
NS_PER_SECOND = 1_000_000_000

_STATUS_PREFIX = "WORKFLOW_EXECUTION_STATUS_"


class InvalidValue(ValueError):
    """A payload that is not a valid value of its search attribute's type."""


# ---- payloads ----------------------------------------------------------------------------------------------
def decode_payload(payload: Payload) -> Any:
    """The JSON value inside a search attribute payload (None for binary/null). Raises InvalidValue."""
    encoding = payload.metadata.get("encoding", b"json/plain")
    if encoding == b"binary/null":
        return None
    if encoding != b"json/plain":
        raise InvalidValue(f"unsupported payload encoding {encoding.decode(errors='replace')!r}")
    try:
        return json.loads(payload.data) if payload.data else None
    except ValueError as e:
        raise InvalidValue(f"payload data is not JSON: {e}") from None


def payload_type(payload: Payload) -> ValueType | None:
    """The type an SDK wrote into the payload's "type" metadata, if any."""
    raw = payload.metadata.get("type")
    return ValueType.from_display_name(raw.decode(errors="replace")) if raw else None


def parse_search_attributes(data: bytes) -> SearchAttributes:
    """A serialized SearchAttributes; unreadable bytes read as none (visibility must not fail on them)."""
    message = SearchAttributes()
    try:
        message.ParseFromString(data)
    except DecodeError:
        return SearchAttributes()
    return message


def decode_search_attributes(data: bytes) -> dict[str, Any]:
    """Raw JSON values of a run's search attributes by name; undecodable entries are left out."""
    values: dict[str, Any] = {}
    for name, payload in parse_search_attributes(data).indexed_fields.items():
        try:
            values[name] = decode_payload(payload)
        except InvalidValue:
            continue
    return values


# ---- canonical values --------------------------------------------------------------------------------------
def canonical(value: Any, value_type: ValueType) -> Any:
    """The canonical form of a stored (JSON-decoded) value, or None if it does not fit the type.

    A one-element list stands for its element (SDKs may send scalars as lists), as the reference reads it.
    """
    if value_type is ValueType.KEYWORD_LIST:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
            return None
        return list(items)
    if isinstance(value, list):
        if len(value) != 1:
            return None
        value = value[0]
    if value_type in (ValueType.KEYWORD, ValueType.TEXT):
        return value if isinstance(value, str) else None
    if value_type is ValueType.BOOL:
        return value if isinstance(value, bool) else None
    if value_type in (ValueType.INT, ValueType.DOUBLE):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value) if value_type is ValueType.DOUBLE else value
    if value_type is ValueType.DATETIME:
        if isinstance(value, str):
            try:
                return parse_datetime_ns(value)
            except ValueError:
                return None
        return None
    return None


def strict_value(value: Any, value_type: ValueType) -> Any:
    """Validate a value a workflow sets (None unsets); returns the canonical form or raises InvalidValue.

    Stricter than `canonical`: an Int must be an integer, and only a KeywordList may hold several values.
    """
    if value is None or value == []:
        return None
    if value_type is ValueType.KEYWORD_LIST:
        if not isinstance(value, list) or not all(isinstance(i, str) for i in value):
            raise InvalidValue("expected a list of strings")
        return list(value)
    scalar = value[0] if isinstance(value, list) and len(value) == 1 else value
    if value_type is ValueType.INT and (isinstance(scalar, bool) or not isinstance(scalar, int)):
        raise InvalidValue("expected an integer")
    if value_type is ValueType.INT and not -(2**63) <= scalar < 2**63:
        raise InvalidValue("expected a signed 64-bit integer")  # as the reference; no store holds more
    result = canonical(scalar, value_type)
    if result is None:
        raise InvalidValue(f"expected a {value_type.display_name} value")
    return result


# ---- datetimes and durations -------------------------------------------------------------------------------
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


def parse_datetime_ns(text: str) -> int:
    """RFC 3339 (with up to nanosecond fractions and a zone, as Go's RFC3339Nano) to epoch nanoseconds."""
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an RFC 3339 datetime: {text!r}")
    year, month, day, hour, minute, second, fraction, zulu, sign, zone_h, zone_m = match.groups()
    seconds = calendar.timegm((int(year), int(month), int(day), int(hour), int(minute), int(second)))
    offset_s = (
        0 if zulu or sign is None else (int(zone_h) * 3600 + int(zone_m) * 60) * (1 if sign == "+" else -1)
    )
    nanos = int((fraction or "").ljust(9, "0"))
    return (seconds - offset_s) * NS_PER_SECOND + nanos


_HHMMSS = re.compile(r"(\d+):([0-5]\d):([0-5]\d)")


def parse_duration_ns(text: str) -> int:
    """ExecutionDuration literals, as the reference reads them: integer nanoseconds, a Go duration
    ("1h30m", "300ms", "-1.5h", with "d" for days) or "hh:mm:ss"."""
    text = text.strip()
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    go = go_duration_ns(text)
    if go is not None:
        return go
    match = _HHMMSS.fullmatch(text)
    if match:
        hours, minutes, seconds = (int(g) for g in match.groups())
        return ((hours * 60 + minutes) * 60 + seconds) * NS_PER_SECOND
    raise ValueError(f"not a duration: {text!r}")


# ---- workflow execution status -----------------------------------------------------------------------------
def status_name(status: int) -> str:
    """WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW -> "ContinuedAsNew" (the names queries use)."""
    full = WorkflowExecutionStatus.Name(status)  # type: ignore[arg-type]
    return "".join(part.capitalize() for part in full.removeprefix(_STATUS_PREFIX).split("_"))


_STATUS_BY_NAME: dict[str, int] = {}
for _full_name, _number in WorkflowExecutionStatus.items():
    _STATUS_BY_NAME[_full_name] = _number
    _STATUS_BY_NAME[status_name(_number)] = _number


def parse_status(value: str | int) -> int | None:
    """'Running', 'WORKFLOW_EXECUTION_STATUS_RUNNING' or 1 -> 1; None for anything else (case matters)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value in _STATUS_BY_NAME.values() else None
    return _STATUS_BY_NAME.get(value)


# ---- Text ------------------------------------------------------------------------------------------------
_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """Words of a Text value as SQLite FTS5's unicode61 tokenizer (remove_diacritics 2) sees them:
    runs of letters and digits, case-folded, accents removed. The reference's SQLite visibility indexes
    Text attributes that way."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _WORD.findall(stripped.casefold())


def text_query_tokens(text: str) -> tuple[str, ...]:
    """The terms of a Text filter: the value split on spaces (the reference's TokenizeTextQueryString)."""
    return tuple(token for token in text.split(" ") if token)


def text_matches(text: str | None, tokens: Iterable[str]) -> bool:
    """True if the text contains any of the tokens; a token of several words (e.g. "new-world") must
    appear as that phrase, consecutive words in order. A missing text contains nothing."""
    if text is None:
        return False
    haystack = words(text)
    for token in tokens:
        phrase = words(token)
        if phrase and _contains_phrase(haystack, phrase):
            return True
    return False


def _contains_phrase(haystack: list[str], phrase: list[str]) -> bool:
    n = len(phrase)
    return any(haystack[i : i + n] == phrase for i in range(len(haystack) - n + 1))
