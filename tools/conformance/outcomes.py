"""Per-test outcomes of one pass of the SDK suite, read from its junit XML and the outcome log.

The junit XML (`--junitxml`, xunit1 family so each case names its file) is the record of a session
that ended; the outcome log (outcome_log.py) fills in what a killed session never wrote: the test that
was running when it died ("crashed") and the tests it never reached ("not run").
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

PASSED = "passed"
XFAILED = "xfailed"
FAILED = "failed"
TIMEOUT = "timeout"
ERROR = "error"
SKIPPED = "skipped"
CRASHED = "crashed"
NOT_RUN = "not run"
NOT_COLLECTED = "not collected"  # a whole module: its import failed (recorded under the module's path)

# What counts as "this test passes" when the two servers are compared.
PASSING = frozenset({PASSED, XFAILED})

TIMEOUT_MARK = "Timeout >"  # pytest-timeout's failure message: "Failed: Timeout >60.0s"


@dataclass
class Outcome:
    """One test's result on one server: `status` is one of the constants above."""

    status: str
    message: str = ""
    duration: float = 0.0


@dataclass
class PassLog:
    """What the outcome log of one pytest process says."""

    collected: list[str] = field(default_factory=list)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    running: str | None = None  # started, never finished (the oldest such test)
    running_since: float = 0.0  # when it started (epoch seconds)
    finished: bool = False


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0][:300] if (text or "").strip() else ""


_COLLECTION_MESSAGES = ("collection failure", "collection skipped")


def collection_reason(text: str) -> str:
    """The line of a collection traceback that says why: pytest's last `E   ...` line."""
    errors = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    return (errors[-1] if errors else _first_line(text))[:300]


def read_junit(path: Path) -> dict[str, Outcome]:
    """nodeid -> outcome for every case of a junit XML file (xunit1: cases carry `file`)."""
    results: dict[str, Outcome] = {}
    if not path.exists():
        return results
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return results
    for case in root.iter("testcase"):
        file = case.get("file", "")
        classname = case.get("classname", "")
        module = file[:-3].replace("/", ".") if file.endswith(".py") else ""
        inner = classname[len(module) + 1 :] if module and classname.startswith(module + ".") else ""
        nodeid = "::".join(part for part in (file, inner.replace(".", "::"), case.get("name", "")) if part)
        status, message = PASSED, ""
        if any(c.get("message") in _COLLECTION_MESSAGES for c in case):
            continue  # a module's collection: the outcome log names it properly (see read_log)
        for child in case:
            text = child.get("message") or child.text
            if child.tag == "failure":
                status = TIMEOUT if TIMEOUT_MARK in (child.get("message") or "") else FAILED
                message = _first_line(text)
                break
            if child.tag == "error":
                status, message = ERROR, _first_line(text)
                break
            if child.tag == "skipped":
                status = XFAILED if child.get("type") == "pytest.xfail" else SKIPPED
                message = _first_line(text)
        results[nodeid] = Outcome(status, message, float(case.get("time") or 0.0))
    return results


def read_log(path: Path) -> PassLog:
    """Replay the outcome log of one pytest process."""
    log = PassLog()
    if not path.exists():
        return log
    phases: dict[str, dict[str, dict]] = {}
    running: dict[str, float] = {}  # started, not finished (several at once under xdist)
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        event = record.get("event")
        if event == "collected":
            log.collected = list(record["nodeids"])
        elif event == "start":
            running[record["nodeid"]] = record.get("t", 0.0)
            phases[record["nodeid"]] = {}
        elif event == "report":
            phases.setdefault(record["nodeid"], {})[record["when"]] = record
            if record["when"] == "teardown":
                log.outcomes[record["nodeid"]] = _from_phases(phases[record["nodeid"]])
                running.pop(record["nodeid"], None)
        elif event == "module":
            if record["outcome"] == "failed":
                log.outcomes[record["nodeid"]] = Outcome(NOT_COLLECTED, collection_reason(record["message"]))
            else:
                log.outcomes[record["nodeid"]] = Outcome(SKIPPED, _first_line(record["message"]))
        elif event == "finished":
            log.finished = True
    if running:  # the oldest is the one a hang would be blamed on
        log.running, log.running_since = min(running.items(), key=lambda item: item[1])
    return log


def _from_phases(phases: dict[str, dict]) -> Outcome:
    duration = sum(p.get("duration", 0.0) for p in phases.values())
    setup, call, teardown = phases.get("setup"), phases.get("call"), phases.get("teardown")
    if setup and setup["outcome"] == "failed":
        return Outcome(ERROR, _first_line(setup["message"]), duration)
    if setup and setup["outcome"] == "skipped":
        return Outcome(SKIPPED, _first_line(setup["message"]), duration)
    if call:
        if call["outcome"] == "skipped":
            return Outcome(XFAILED if call["xfail"] else SKIPPED, _first_line(call["message"]), duration)
        if call["outcome"] == "failed":
            status = TIMEOUT if TIMEOUT_MARK in call["message"] else FAILED
            return Outcome(status, _first_line(call["message"]), duration)
    if teardown and teardown["outcome"] == "failed":
        return Outcome(ERROR, "teardown: " + _first_line(teardown["message"]), duration)
    return Outcome(PASSED, "", duration)
