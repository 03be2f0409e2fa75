"""Run the official Python SDK's own test suite against the reference and Hourglass, then write the table.

    make conformance SDK_TESTS=/work/sdk-python            # or:
    .venv/bin/python tools/conformance/run.py --sdk-tests DIR [-k EXPR] [--target hourglass] ...

DIR is a checkout of temporalio/sdk-python (its `tests/` folder, plus its pyproject.toml for the
suite's pytest settings) at the version of the pinned `temporalio`. For each server in turn: start it
on free ports (the reference with the dynamic-config flags the suite's conftest gives its own dev
server), run `pytest -E HOST:PORT` on the suite's whole `tests/` tree in the suite's own venv with a
per-test timeout (a module that cannot be imported is recorded, and the rest goes on), stop it. A pass
killed by its deadline or a hang is resumed on the tests it had not reached. Outcomes land in build/conformance/<server>/ and the comparison in conformance/RESULTS.md.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import click

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

from outcomes import CRASHED, NOT_RUN, TIMEOUT, Outcome, read_junit, read_log  # noqa: E402
from report import load_out_of_scope, render  # noqa: E402

from hourglass.loadtest import servers  # noqa: E402

SUITE_FILES = ("tests",)  # the whole tree: every module that imports with the pinned SDK
TARGETS = ("reference", "hourglass")

# The flags tests/conftest.py of the SDK passes to the dev server it starts for itself (`-E local`);
# Hourglass is given them too.
REFERENCE_DYNAMIC_CONFIG = (
    "system.forceSearchAttributesCacheRefreshOnRead=true",
    "limit.historyCount.suggestContinueAsNew=50",
    "system.enableEagerWorkflowStart=true",
    "frontend.enableExecuteMultiOperation=true",
    "frontend.workerVersioningWorkflowAPIs=true",
    "frontend.workerVersioningDataAPIs=true",
    "system.enableDeploymentVersions=true",
    "frontend.activityAPIsEnabled=true",
    "frontend.enableCancelWorkerPollsOnShutdown=true",
    "component.nexusoperations.recordCancelRequestCompletionEvents=true",
    "activity.enableStandalone=true",
    "activity.startDelayEnabled=true",
    "history.enableChasm=true",
    "history.enableTransitionHistory=true",
    "history.enableCHASMCallbacks=true",
    "history.enableCHASMSignalBacklinks=true",
    "nexusoperation.enableStandalone=true",
    'system.system.refreshNexusEndpointsMinWait="0s"',
    "history.enableSignalWithStartFromWorkflow=true",
    "history.enableUpdateCallbacks=true",
    "activity.enableCallbacks=true",
)

MAX_ATTEMPTS = 12  # one pass plus resumptions after a crash or a hang


def _server(target: str, workdir: Path) -> servers.ManagedServer:
    """Both get the suite's dynamic config: Hourglass takes the keys it knows and ignores the rest."""
    srv = servers.reference_server(workdir) if target == "reference" else servers.hourglass_server(workdir)
    for value in REFERENCE_DYNAMIC_CONFIG:
        srv.argv += ["--dynamic-config-value", value]
    return srv


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _watch(proc: subprocess.Popen[bytes], log_path: Path, test_timeout: float, deadline: float) -> str | None:
    """Wait for pytest to end. A test still running well past its timeout (pytest-timeout cannot
    interrupt every hang, e.g. one inside the SDK's native worker) is named, so the pass can go on
    without it; None when pytest ended or the pass deadline came."""
    grace = test_timeout * 2 + 30
    while time.monotonic() < deadline:
        try:
            proc.wait(timeout=5)
            return None
        except subprocess.TimeoutExpired:
            pass
        log = read_log(log_path)
        if log.running and log.running_since and time.time() - log.running_since > grace:
            return log.running
    return None


def run_pass(
    target: str,
    address: str,
    sdk_root: Path,
    suite_python: Path,
    workdir: Path,
    selection: list[str],
    keyword: str | None,
    test_timeout: float,
    deadline: float,
    workers: int = 1,
) -> dict[str, Outcome]:
    """Run the suite against one server; resume after a crash on the tests not reached yet."""
    results: dict[str, Outcome] = {}
    args = list(selection)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        junit, log_path = workdir / f"junit-{attempt}.xml", workdir / f"outcomes-{attempt}.jsonl"
        for stale in (junit, log_path):
            stale.unlink(missing_ok=True)
        argv = [
            str(suite_python), "-m", "pytest", *args,
            "-E", address,
            "-p", "outcome_log", "-p", "no:cacheprovider",
            "--junitxml", str(junit), "-o", "junit_family=xunit1",
            "-o", "asyncio_mode=auto",
            "--timeout", str(test_timeout),
            "--continue-on-collection-errors",
            "-q", "-rfE", "--color=no",
        ]  # fmt: skip
        if keyword and attempt == 1:
            argv += ["-k", keyword]
        if workers > 1:  # as the SDK's own `poe test` runs it (pytest -n auto --dist=worksteal)
            argv += ["-n", str(workers), "--dist=worksteal"]
        env = dict(os.environ, CONFORMANCE_OUTCOME_LOG=str(log_path))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
        remaining_s = deadline - time.monotonic()
        click.echo(f"[{target}] pass {attempt}: {len(args)} selection(s), {remaining_s / 60:.0f} min left")
        with open(workdir / f"pytest-{attempt}.log", "wb") as out:
            proc = subprocess.Popen(
                argv, cwd=sdk_root, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # its workers and forked children die with it
            )  # fmt: skip
            try:
                hung = _watch(proc, log_path, test_timeout, deadline)
                if hung:
                    click.echo(f"[{target}] {hung} hangs past its timeout: stopping pytest")
                    results[hung] = Outcome(
                        TIMEOUT, f"hung past the {test_timeout:.0f} s timeout; the pytest process was killed"
                    )
                elif proc.poll() is None:
                    click.echo(f"[{target}] pass deadline reached: stopping pytest")
            finally:
                _kill_group(proc)  # also reaps what a finished session left behind
        log = read_log(log_path)
        results.update(log.outcomes)
        results.update(read_junit(junit))
        if log.running and log.running not in results:
            results[log.running] = Outcome(CRASHED, "the pytest process died or was killed during this test")
        todo = [n for n in log.collected if n not in results]
        if log.finished or not log.collected or not todo or time.monotonic() >= deadline:
            for nodeid in todo:
                results[nodeid] = Outcome(NOT_RUN)
            break
        click.echo(f"[{target}] pytest ended early ({proc.returncode}); resuming on {len(todo)} tests")
        args = todo
    return results


def _versions(suite_python: Path) -> dict[str, str]:
    def out(argv: list[str]) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"

    return {
        "sdk": out([str(suite_python), "-c", "import temporalio; print(temporalio.__version__)"]),
        "reference": out(["temporal", "--version"]),
        "hourglass": out(["git", "-C", str(REPO), "log", "-1", "--format=%h %s"]),
    }


@click.command()
@click.option(
    "--sdk-tests",
    "sdk_tests",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Checkout of temporalio/sdk-python (the folder holding tests/).",
)
@click.option(
    "--suite-python",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=REPO / "build" / "conformance-venv" / "bin" / "python",
    show_default=True,
    help="Interpreter with the suite's packages (tools/conformance/requirements.txt).",
)
@click.option("--target", "targets", multiple=True, type=click.Choice(TARGETS), help="Default: both.")
@click.option(
    "--file", "files", multiple=True, help="Suite files or node ids (default: the whole tests/ tree)."
)
@click.option("-k", "keyword", help="pytest -k expression, to iterate on a few tests.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    help="pytest-xdist workers per server (the SDK's own CI runs -n auto); 1 runs the tests one by one.",
)
@click.option("--test-timeout", default=60.0, show_default=True, help="Seconds per test (pytest-timeout).")
@click.option("--pass-timeout", default=75.0, show_default=True, help="Minutes for one server's whole pass.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=REPO / "build" / "conformance",
    show_default=True,
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Table to write (default conformance/RESULTS.md; WORKDIR/RESULTS.md when -k/--file narrow the run).",
)
@click.option("--sdk-label", default="", help="Where the SDK tests come from (tag or commit), for the table.")
@click.option("--report-only", is_flag=True, help="Rewrite the table from the outcomes of the last run.")
def main(
    sdk_tests: Path,
    suite_python: Path,
    targets: tuple[str, ...],
    files: tuple[str, ...],
    keyword: str | None,
    workers: int,
    test_timeout: float,
    pass_timeout: float,
    workdir: Path,
    out: Path | None,
    sdk_label: str,
    report_only: bool,
) -> None:
    """Run the SDK's tests against the reference and Hourglass; write the comparison table."""
    sdk_root = sdk_tests.resolve()
    suite_python = suite_python.absolute()  # pytest runs in the SDK checkout (make passes a relative path)
    if not (sdk_root / "tests" / "conftest.py").exists() and (sdk_root.name == "tests"):
        sdk_root = sdk_root.parent
    if not (sdk_root / "tests" / "conftest.py").exists():
        raise click.UsageError(f"{sdk_tests} holds no tests/conftest.py of the SDK")
    if (sdk_root / "temporalio" / "__init__.py").exists():
        raise click.UsageError(
            f"{sdk_root / 'temporalio'} (the SDK's source, without its compiled bridge) would shadow the pinned "
            "temporalio wheel: use a checkout holding only tests/ (and pyproject.toml), or move that folder away"
        )
    workdir = workdir.resolve()  # pytest runs in the SDK checkout: every path it is given is absolute
    narrowed = bool(keyword or files)
    out = out or (workdir / "RESULTS.md" if narrowed else REPO / "conformance" / "RESULTS.md")
    workdir.mkdir(parents=True, exist_ok=True)
    state_path = workdir / "state.json"
    state = _read_state(state_path)
    if not report_only:
        versions = _versions(suite_python)
        described = {
            "reference": f"`temporal server start-dev` ({versions['reference']}) with the suite's dynamic config",
            "hourglass": "`hourglass server start-dev` (in-memory SQLite, same dynamic config) at "
            f"`{versions['hourglass']}`",
        }
        for target in targets or TARGETS:
            started = time.monotonic()
            outcomes = _run_target(
                target, sdk_root, suite_python, workdir, list(files or SUITE_FILES), keyword,
                test_timeout, pass_timeout, workers,
            )  # fmt: skip
            when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {(time.monotonic() - started) / 60:.0f} min"
            # Another runner (the other server's pass, started alongside) may have written meanwhile.
            with _locked(state_path):
                state = _read_state(state_path)
                meta = state["meta"]
                # A narrowed run updates the tests it ran and keeps the rest of the last full run.
                kept = state["results"].get(target, {}) if narrowed else {}
                state["results"][target] = kept | {n: asdict(o) for n, o in outcomes.items()}
                key = f"Run on {target}"
                meta[key] = f"{meta.get(key, '?')}; re-run on some tests {when}" if narrowed else when
                meta[target.capitalize()] = described[target]
                meta["SDK tests"] = (
                    f"temporalio/sdk-python {sdk_label or '(unlabelled checkout)'}: the whole `tests/` tree"
                )
                meta["SDK under test"] = f"temporalio {versions['sdk']} (tools/conformance/requirements.txt)"
                meta["Per-test timeout"] = f"{test_timeout:.0f} s"
                meta["Workers per server"] = f"{workers} (pytest-xdist)" if workers > 1 else "1"
                meta.pop("Last run", None)
                state["meta"] = dict(sorted(meta.items()))
                state_path.write_text(json.dumps(state, indent=1))
    results = {t: {n: Outcome(**o) for n, o in r.items()} for t, r in state["results"].items()}
    scope = HERE / "out_of_scope.toml"
    text = render(
        results, state["meta"], load_out_of_scope(scope), load_out_of_scope(scope, "not_runnable"),
        load_out_of_scope(scope, "difference"),
    )  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    click.echo(text.split("\n## ")[0])
    click.echo(f"wrote {out}")


def _read_state(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {"results": {}, "meta": {}}


class _locked:
    """An exclusive flock beside the state file: two runners (one per server) can share a workdir."""

    def __init__(self, path: Path) -> None:
        self.path = path.with_suffix(".lock")

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _run_target(
    target: str,
    sdk_root: Path,
    suite_python: Path,
    workdir: Path,
    selection: list[str],
    keyword: str | None,
    test_timeout: float,
    pass_timeout: float,
    workers: int = 1,
) -> dict[str, Outcome]:
    target_dir = workdir / target
    target_dir.mkdir(parents=True, exist_ok=True)
    srv = _server(target, target_dir)
    asyncio.run(srv.start())
    click.echo(f"[{target}] server at {srv.address} (pid {srv.pid}, log {srv.log_path})")
    try:
        return run_pass(
            target, srv.address, sdk_root, suite_python, target_dir, selection, keyword, test_timeout,
            time.monotonic() + pass_timeout * 60, workers,
        )  # fmt: skip
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
