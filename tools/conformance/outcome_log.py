"""A pytest plugin the conformance runner loads into the SDK's suite (`-p outcome_log`).

It appends one JSON line per event to $CONFORMANCE_OUTCOME_LOG as it happens, so that when a pass is
killed (a hang the per-test timeout could not interrupt, the pass deadline) the runner still knows
which tests finished, which one was running, and which never started. The junit XML is only written
at the end of a session that survives.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

_PATH = os.environ.get("CONFORMANCE_OUTCOME_LOG", "")


def _write(record: dict[str, Any]) -> None:
    if not _PATH:
        return
    record["t"] = time.time()
    with open(_PATH, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Every test this session will run, in order (what a restarted pass must still run)."""
    _write({"event": "collected", "nodeids": [item.nodeid for item in session.items]})


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _write({"event": "start", "nodeid": nodeid})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    message = ""
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        message = crash.message if crash is not None else str(report.longrepr)
    elif report.skipped and isinstance(report.longrepr, tuple):
        message = str(report.longrepr[2])
    _write(
        {
            "event": "report",
            "nodeid": report.nodeid,
            "when": report.when,
            "outcome": report.outcome,
            "xfail": hasattr(report, "wasxfail"),
            "message": message[:2000],
            "duration": report.duration,
        }
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _write({"event": "finished", "exitstatus": int(exitstatus)})
