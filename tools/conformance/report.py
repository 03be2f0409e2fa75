"""conformance/RESULTS.md: the totals per server and, test by test, where the two servers differ.

Differences are grouped: passing on the reference but not on Hourglass (the work list), the same for
features listed out of scope in out_of_scope.toml (with the reason), and the reverse direction. Modules
that cannot be imported and tests that cannot run on this machine (`[[not_runnable]]` in the same file:
they need the internet or a cloud account) are listed with their reason, never silently dropped.
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from outcomes import (
    CRASHED,
    ERROR,
    FAILED,
    NOT_COLLECTED,
    NOT_RUN,
    PASSED,
    PASSING,
    SKIPPED,
    TIMEOUT,
    XFAILED,
    Outcome,
)

STATUS_ORDER = (PASSED, XFAILED, FAILED, TIMEOUT, ERROR, CRASHED, SKIPPED, NOT_RUN, NOT_COLLECTED)


@dataclass
class OutOfScope:
    """A feature Hourglass does not serve yet, and the test names (fnmatch patterns) that need it."""

    feature: str
    reason: str
    tests: list[str]
    messages: list[str] = field(default_factory=list)  # or: what a server answered contains one of these

    def matches(self, nodeid: str, *outcomes: Outcome) -> bool:
        name = nodeid.split("::", 1)[-1]
        if any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(nodeid, p) for p in self.tests):
            return True
        return any(m in o.message for m in self.messages for o in outcomes)


def load_out_of_scope(path: Path, table: str = "feature") -> list[OutOfScope]:
    """`[[feature]]` tables (Hourglass does not serve it), `[[not_runnable]]` ones (this machine cannot)
    or `[[difference]]` ones (a difference analysed: the bug, what each server gave)."""
    if not path.exists():
        return []
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [
        OutOfScope(f["feature"], f["reason"], list(f.get("tests", [])), list(f.get("messages", [])))
        for f in data.get(table, [])
    ]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def render(
    results: dict[str, dict[str, Outcome]],
    meta: dict[str, str],
    out_of_scope: list[OutOfScope],
    not_runnable: list[OutOfScope] | None = None,
    explained: list[OutOfScope] | None = None,
    reference: str = "reference",
    hourglass: str = "hourglass",
) -> str:
    """The Markdown table. `results[target][nodeid]`; `meta` holds the lines of the header."""
    ref, hg = results.get(reference, {}), results.get(hourglass, {})
    nodeids = sorted(set(ref) | set(hg))
    missing = Outcome(NOT_RUN)
    lines = [
        "# The official Python SDK's own tests: reference vs Hourglass",
        "",
        "Written by `make conformance SDK_TESTS=DIR` (tools/conformance/); CI does not run it.",
        "",
    ]
    lines += [f"- {key}: {value}" for key, value in meta.items()]
    lines += ["", f"| outcome | {reference} | {hourglass} |", "|---|---:|---:|"]
    counts = {
        t: Counter(results.get(t, {}).get(n, missing).status for n in nodeids) for t in (reference, hourglass)
    }
    for status in STATUS_ORDER:
        if counts[reference][status] or counts[hourglass][status]:
            lines.append(f"| {status} | {counts[reference][status]} | {counts[hourglass][status]} |")
    passing = {t: sum(counts[t][s] for s in PASSING) for t in (reference, hourglass)}
    lines.append(f"| **passing** | **{passing[reference]}** | **{passing[hourglass]}** |")
    lines.append(f"| total | {len(nodeids)} | {len(nodeids)} |")

    regressions, excused, better, both_fail, uncollected, unrunnable, unreached = [], [], [], [], [], [], []
    for nodeid in nodeids:
        r, h = ref.get(nodeid, missing), hg.get(nodeid, missing)
        here = next((s for s in not_runnable or () if s.matches(nodeid, r, h)), None)
        if NOT_COLLECTED in (r.status, h.status):
            uncollected.append((nodeid, r, h, None))
        elif NOT_RUN in (r.status, h.status):
            unreached.append((nodeid, r, h, None))  # a pass's deadline came first: nothing to compare
        elif here and not (r.status in PASSING and h.status in PASSING):
            unrunnable.append((nodeid, r, h, here))
        elif r.status in PASSING and h.status not in PASSING:
            scope = next((s for s in out_of_scope if s.matches(nodeid, h)), None)
            (excused if scope else regressions).append((nodeid, r, h, scope))
        elif h.status in PASSING and r.status not in PASSING and r.status != SKIPPED:
            better.append((nodeid, r, h, None))
        elif r.status not in PASSING and r.status != SKIPPED and h.status not in PASSING:
            both_fail.append((nodeid, r, h, None))

    lines += [
        "",
        f"## Passing on the reference, not on Hourglass: {len(regressions)}",
        "",
    ]
    if regressions:
        lines += [f"| test | {hourglass} | what {hourglass} gave | why (the analysis) |", "|---|---|---|---|"]
        for n, _, h, _ in regressions:
            why = next((e for e in explained or () if e.matches(n)), None)
            cause = f"**{why.feature}**: {why.reason}" if why else "not analysed yet"
            lines.append(f"| `{n}` | {h.status} | {_cell(h.message)} | {_cell(cause)} |")
    else:
        lines.append("None.")
    lines += [
        "",
        f"## Out of scope (passing on the reference, not on Hourglass): {len(excused)}",
        "",
    ]
    if excused:
        lines += ["| test | feature | why it is out of scope |", "|---|---|---|"]
        lines += [f"| `{n}` | {s.feature} | {_cell(s.reason)} |" for n, _, _, s in excused]
    else:
        lines.append("None.")
    lines += ["", f"## Passing on Hourglass, not on the reference: {len(better)}", ""]
    if better:
        lines += [f"| test | {reference} | what {reference} gave |", "|---|---|---|"]
        lines += [f"| `{n}` | {r.status} | {_cell(r.message)} |" for n, r, _, _ in better]
    else:
        lines.append("None.")
    lines += ["", f"## Not runnable here (no internet, no cloud account): {len(unrunnable)}", ""]
    if unrunnable:
        # What Hourglass gave shows when it stopped earlier than at the unrunnable step (a real difference).
        lines += [
            f"| test | {reference} | {hourglass} | why | what {hourglass} gave |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| `{n}` | {r.status} | {h.status} | {_cell(s.reason)} | {_cell(h.message)} |"
            for n, r, h, s in unrunnable
        ]
    else:
        lines.append("None.")
    lines += [
        "",
        f"## Modules that cannot be collected with the pinned SDK and packages: {len(uncollected)}",
        "",
    ]
    if uncollected:
        lines += ["Each counts once in the totals above (its tests are never known).", ""]
        lines += ["| module | why |", "|---|---|"]
        lines += [f"| `{n}` | {_cell(r.message or h.message)} |" for n, r, h, _ in uncollected]
    else:
        lines.append("None.")
    lines += ["", f"## Not run on one server or both (its pass's deadline came first): {len(unreached)}", ""]
    if unreached:
        lines += [f"| test | {reference} | {hourglass} |", "|---|---|---|"]
        lines += [f"| `{n}` | {r.status} | {h.status} |" for n, r, h, _ in unreached]
    else:
        lines.append("None.")
    lines += ["", f"## Not passing on either: {len(both_fail)}", ""]
    if both_fail:
        lines += [f"| test | {reference} | {hourglass} | what {reference} gave |", "|---|---|---|---|"]
        lines += [f"| `{n}` | {r.status} | {h.status} | {_cell(r.message)} |" for n, r, h, _ in both_fail]
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"
