"""A pytest plugin the conformance runner loads into the SDK's suite (`-p outcome_log`).

It appends one JSON line per event to $CONFORMANCE_OUTCOME_LOG as it happens, so that when a pass is
killed (a hang the per-test timeout could not interrupt, the pass deadline) the runner still knows
which tests finished, which one was running, and which never started. The junit XML is only written
at the end of a session that survives.

Under pytest-xdist (`--workers`) the controller writes the test events (xdist hands it every worker's
reports) and each worker writes only its own modules' collection outcomes (the same in every worker).
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


_WORKER = False  # an xdist worker: its test events reach the controller, which writes them


def pytest_configure(config: pytest.Config) -> None:
    global _WORKER
    _WORKER = hasattr(config, "workerinput")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Every test this session will run, in order (what a restarted pass must still run)."""
    if not _WORKER:
        _write({"event": "collected", "nodeids": [item.nodeid for item in session.items]})


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """The controller's view of a worker's collection (every worker collects the same tests)."""
    _write({"event": "collected", "nodeids": list(ids)})


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """A module that cannot be imported (a package missing, an API newer than the pinned SDK) or that
    skips itself whole: the runner lists it instead of silently losing its tests."""
    if report.outcome == "passed" or "::" in report.nodeid or not report.nodeid.endswith(".py"):
        return
    if report.failed:
        message = str(report.longrepr)
    else:
        longrepr = report.longrepr
        message = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
    _write(
        {"event": "module", "nodeid": report.nodeid, "outcome": report.outcome, "message": message[-4000:]}
    )


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    if _WORKER:
        return
    _write({"event": "start", "nodeid": nodeid})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _WORKER:
        return
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
    if _WORKER:
        return
    _write({"event": "finished", "exitstatus": int(exitstatus)})
