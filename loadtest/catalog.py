"""Names and one-line descriptions of the built-in scenarios.

Kept free of heavy imports so that `hourglass --help` (which registers the loadtest group) stays fast;
`scenarios.py` holds the workflows themselves and checks it defines exactly these names.
"""

from __future__ import annotations

BUILTIN_SCENARIOS: dict[str, str] = {
    "one-activity": "one activity, then complete",
    "five-activities": "five activities one after the other, then complete",
    "timer": "a 1 s timer, then complete",
    "signal": "start, the load generator signals it, complete",
    "child": "a parent that runs 3 child workflows in parallel",
    "heavy-history": "33 activities one after the other (about 200 history events)",
}

DRIVERS = ("sdk", "raw")
