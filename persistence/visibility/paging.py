"""Opaque next-page tokens for visibility listings: keyset paging on the query's full sort order.

A token holds the sort values of the last row of the page; the next page is every matching row that
sorts strictly after them. Unlike offsets, this neither skips nor repeats rows when runs start or
close between two pages (a run whose sort values change may move across the boundary, as on the
reference).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

_VERSION = 1
# Sort values are stored as signed 64-bit integers: a larger one cannot come from a page this store made.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class PageTokenError(ValueError):
    """A next-page token this query did not produce (corrupt, or from a query with another order)."""


def encode_page_token(last_sort_values: Sequence[Any]) -> bytes:
    return json.dumps({"v": _VERSION, "after": list(last_sort_values)}, separators=(",", ":")).encode()


def decode_page_token(token: bytes, key_count: int) -> tuple[Any, ...] | None:
    """The sort values to resume after, or None for the first page. Raises PageTokenError."""
    if not token:
        return None
    try:
        data = json.loads(token)
        after = data["after"]
        valid = data.get("v") == _VERSION and isinstance(after, list) and len(after) == key_count
    except (ValueError, TypeError, KeyError, AttributeError):
        valid = False
    if not valid or not all(_sort_value(v) for v in after):
        raise PageTokenError("invalid next page token")
    return tuple(after)


def _sort_value(value: Any) -> bool:
    """A value a page of ours could end on: a string, a float, or an integer of the stores' range."""
    if isinstance(value, int):
        return _INT64_MIN <= value <= _INT64_MAX
    return value is None or isinstance(value, str | float)
