"""`hourglass loadtest run|compare`: the click group that cluster/cli.py registers.

Only click is imported at module load (the group is part of the `hourglass` command, whose other
commands must stay fast); the SDK, rich and matplotlib are imported when a command runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hourglass.cluster.security.cli_options import client_tls_from_options, tls_client_options
from hourglass.loadtest.catalog import BUILTIN_SCENARIOS, DRIVERS
from hourglass.loadtest.connect import TLSPaths
from hourglass.persistence.visibility.durations import go_duration_ns

if TYPE_CHECKING:
    from hourglass.loadtest.runner import RunConfig

DEFAULT_WORKFLOWS = 100


class Duration(click.ParamType):
    """`90`, `90s`, `1m30s`, `500ms`, `2h` -> seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip().lower()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return float(text)
        ns = go_duration_ns(text)
        if ns is None or ns < 0:
            self.fail(f"{value!r} is not a duration (examples: 60s, 1m30s, 500ms)", param, ctx)
        return ns / 1e9


def _address(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """HOST:PORT, or several separated by commas (one client per node, see connect.split_addresses)."""
    for one in value.split(","):
        host, sep, port = one.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise click.BadParameter(
                f"{one.strip()!r} is not HOST:PORT (example: 127.0.0.1:7233, or several: "
                "127.0.0.1:7233,127.0.0.2:7233)"
            )
    return ",".join(one.strip() for one in value.split(","))


def _metrics_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    for one in (value or "").split(","):
        if value is not None and not re.match(r"https?://[^/\s]+", one.strip()):
            raise click.BadParameter(
                f"{one.strip()!r} is not an http(s) URL (example: http://127.0.0.1:9464/metrics)"
            )
    return value


def load_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options `run` and `compare` share: what load, how bounded, which driver, where results go."""
    options = [
        click.option(
            "--scenario",
            type=click.Choice(list(BUILTIN_SCENARIOS)),
            default=None,
            help="Built-in scenario: "
            + "; ".join(f"{k}: {v}" for k, v in BUILTIN_SCENARIOS.items())
            + ". [default: one-activity]",
        ),
        click.option(
            "--scenario-file",
            type=click.Path(exists=True, dir_okay=False),
            help="A Python file defining workflows/activities and SCENARIO = Scenario(...).",
        ),
        click.option(
            "--workflows",
            type=click.IntRange(min=1),
            help=f"Closed loop: how many workflows to run [default: {DEFAULT_WORKFLOWS} "
            "unless --duration or --rate].",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(min=1),
            default=10,
            show_default=True,
            help="Closed loop: workflows in flight at once.",
        ),
        click.option(
            "--rate",
            type=click.FloatRange(min=0, min_open=True),
            help="Open loop: workflow starts per second (needs --duration).",
        ),
        click.option(
            "--duration",
            type=Duration(),
            help="Stop starting workflows after this long (open loop; optional for a closed loop).",
        ),
        click.option(
            "--timeout",
            "hard_timeout",
            type=Duration(),
            default="10m",
            show_default=True,
            help="Hard limit of one run, whatever happens.",
        ),
        click.option(
            "--workflow-timeout",
            type=Duration(),
            default="60s",
            show_default=True,
            help="A workflow not completed by then counts as a Timeout error.",
        ),
        click.option(
            "--max-in-flight",
            type=click.IntRange(min=1),
            default=10_000,
            show_default=True,
            help="Open loop: starts beyond this many workflows in flight are skipped (and counted).",
        ),
        click.option("--namespace", default="default", show_default=True),
        click.option(
            "--driver",
            type=click.Choice(DRIVERS),
            default="sdk",
            show_default=True,
            help="sdk: official temporalio workers; raw: answer tasks over gRPC with minimal work.",
        ),
        click.option(
            "--worker-processes",
            type=click.IntRange(1, 64),
            default=1,
            show_default=True,
            help="Worker OS processes, each with its own event loop and client.",
        ),
        click.option(
            "--pollers",
            type=click.IntRange(min=1),
            default=None,
            help="Pollers per task kind and worker process [default: SDK's default; raw: 16].",
        ),
        click.option(
            "--sandbox/--no-sandbox",
            default=False,
            show_default=True,
            help="sdk driver: run workflows in the SDK's sandbox (costs worker CPU).",
        ),
        click.option(
            "--warmup",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="Workflows run (and not measured) before the measured run.",
        ),
        click.option(
            "--history-sample",
            type=click.IntRange(min=0),
            default=5,
            show_default=True,
            help="Completed workflows whose history is read to estimate transitions.",
        ),
        click.option(
            "--step-sample",
            type=click.IntRange(min=0),
            default=50,
            show_default=True,
            help="Completed workflows, spread over the run, whose histories give the median time of each "
            "step (event to event), printed and in --out as steps_p50_ms.",
        ),
        click.option("--out", type=click.Path(dir_okay=False), help="Write every figure as JSON here."),
        click.option(
            "--report",
            type=click.Path(file_okay=False),
            help="Write a latency histogram, throughput over time (PNG) and index.html here.",
        ),
        click.option("--quiet", is_flag=True, help="No live progress bar."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group()
def loadtest() -> None:
    """Measure workflows/s, state transitions/s, latency and database cost of a server."""


def _config(address: str, metrics_url: str | None, **opts: Any) -> RunConfig:
    """Build and check a RunConfig from the shared options; bad combinations are usage errors."""
    from hourglass.loadtest.load import LoadPlan
    from hourglass.loadtest.runner import RunConfig, check_driver
    from hourglass.loadtest.scenarios import ScenarioError, ScenarioRef

    if opts["scenario"] and opts["scenario_file"]:
        raise click.UsageError("give --scenario or --scenario-file, not both")
    ref = ScenarioRef(file=str(Path(opts["scenario_file"]).resolve())) if opts["scenario_file"] else None
    ref = ref or ScenarioRef(name=opts["scenario"] or "one-activity")
    workflows = opts["workflows"]
    if workflows is None and opts["rate"] is None and opts["duration"] is None:
        workflows = DEFAULT_WORKFLOWS
    plan = LoadPlan(
        concurrency=opts["concurrency"],
        workflows=workflows,
        rate=opts["rate"],
        duration_s=opts["duration"],
        workflow_timeout_s=opts["workflow_timeout"],
        hard_timeout_s=opts["hard_timeout"],
        max_in_flight=opts["max_in_flight"],
    )
    try:
        plan.check()
        check_driver(ref.load(), opts["driver"])
    except (ValueError, ScenarioError) as err:
        raise click.UsageError(str(err)) from err
    return RunConfig(
        address=address,
        scenario=ref,
        plan=plan,
        namespace=opts["namespace"],
        driver=opts["driver"],
        worker_processes=opts["worker_processes"],
        pollers=opts["pollers"],
        sandbox=opts["sandbox"],
        warmup=opts["warmup"],
        history_sample=opts["history_sample"],
        step_sample=opts["step_sample"],
        metrics_url=metrics_url,
    )


def _command_line() -> str:
    return "hourglass loadtest " + " ".join(shlex.quote(a) for a in sys.argv[1:] if a != "loadtest")


def _fails_cleanly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Operational failures (server down, worker died) end with one clear line, not a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from hourglass.loadtest.servers import ServerStartError
        from hourglass.loadtest.workers import WorkerPoolError

        try:
            return command(*args, **kwargs)
        except (ServerStartError, WorkerPoolError, ConnectionError, TimeoutError) as err:
            raise click.ClickException(f"{type(err).__name__}: {err}") from err
        except RuntimeError as err:
            if "connect" in str(err).lower():  # the SDK's "Failed client connect"
                raise click.ClickException(f"cannot reach the server: {err}") from err
            raise

    return wrapper


@loadtest.command()
@click.option(
    "--address",
    required=True,
    callback=_address,
    help="Frontend gRPC address, HOST:PORT; several, comma-separated, spread the load over a cluster's "
    "nodes: starts go round robin over one client per address, worker process n polls address n mod N.",
)
@click.option(
    "--api-key",
    envvar="HOURGLASS_API_KEY",
    default=None,
    help="Sent as `authorization: Bearer <key>` by the starter and the workers, for a server that checks "
    "JWTs (the token needs write on --namespace). Also read from HOURGLASS_API_KEY.",
)
@click.option(
    "--metrics-url",
    callback=_metrics_url,
    help="Server's Prometheus endpoint, sampled before and after (database figures); several, "
    "comma-separated (every node of a cluster), are summed.",
)
@load_options
@tls_client_options
@_fails_cleanly
def run(
    address: str,
    api_key: str | None,
    metrics_url: str | None,
    out: str | None,
    report: str | None,
    quiet: bool,
    tls: bool,
    tls_cert_path: str | None,
    tls_key_path: str | None,
    tls_ca_path: str | None,
    tls_server_name: str | None,
    **opts: Any,
) -> None:
    """Drive a running server with a scenario and print what it sustained (over TLS with --tls-*)."""
    config = dataclasses.replace(_config(address, metrics_url, **opts), api_key=api_key)
    paths = dict(
        tls_cert_path=tls_cert_path,
        tls_key_path=tls_key_path,
        tls_ca_path=tls_ca_path,
        tls_server_name=tls_server_name,
    )
    if client_tls_from_options(tls, **paths) is not None:  # checks the files now, with the option named
        config = dataclasses.replace(
            config, tls=TLSPaths(tls_ca_path, tls_cert_path, tls_key_path, tls_server_name)
        )
    from rich.console import Console

    from hourglass.loadtest import report as reports
    from hourglass.loadtest.runner import run_load_test
    from hourglass.loadtest.summary import LiveProgress, print_run

    console = Console()
    description = f"{config.scenario.load().name} on {address}"
    with LiveProgress(description, enabled=not quiet and sys.stderr.isatty()) as progress:
        result = asyncio.run(run_load_test(config, progress))
    print_run(result, console)
    data = {"command": _command_line(), **result.to_dict()}
    if out:
        console.print(f"JSON: {reports.write_json(out, data)}")
    if report:
        reports.write_report(
            report, [result], f"Load test: {result.scenario} on {address}", command=data["command"]
        )
        console.print(f"report: {Path(report) / reports.INDEX_HTML}")
    if result.completed == 0:
        raise click.ClickException("no workflow completed")


@loadtest.command()
@click.option(
    "--rounds",
    type=click.IntRange(1, 20),
    default=2,
    show_default=True,
    help="Runs per server, alternating which goes first.",
)
@load_options
@_fails_cleanly
def compare(rounds: int, out: str | None, report: str | None, quiet: bool, **opts: Any) -> None:
    """Start the reference and Hourglass (start-dev, free ports), run the same load on each, alternating,
    and print Hourglass / reference per figure. Both servers are stopped at the end."""
    config = _config("127.0.0.1:0", None, **opts)
    result = asyncio.run(run_compare(config, rounds, quiet))
    from rich.console import Console

    from hourglass.loadtest import report as reports
    from hourglass.loadtest.summary import compare_table, errors_table, steps_table

    console = Console()
    console.print(compare_table(result.reference, result.hourglass, result.ratios()))
    for extra in (
        steps_table([result.reference, result.hourglass]),
        errors_table([result.reference, result.hourglass]),
    ):
        if extra is not None:
            console.print(extra)
    for r in (result.reference, result.hourglass):
        for note in r.notes:
            console.print(f"[dim]note ({r.label}): {note}[/dim]")
    data = {"command": _command_line(), **result.to_dict()}
    if out:
        console.print(f"JSON: {reports.write_json(out, data)}")
    if report:
        reports.write_report(
            report,
            [result.reference, result.hourglass],
            f"Hourglass vs reference: {result.reference.scenario}, driver {result.reference.driver}",
            ratios=result.ratios(),
            command=data["command"],
        )
        console.print(f"report: {Path(report) / reports.INDEX_HTML}")


async def run_compare(config: RunConfig, rounds: int, quiet: bool = True) -> Any:
    """compare() with a progress bar per run and a one-line result after each (used by bench too)."""
    from rich.console import Console

    from hourglass.loadtest.compare import compare
    from hourglass.loadtest.stats import RunResult
    from hourglass.loadtest.summary import LiveProgress, fmt

    err = Console(stderr=True)
    live: list[LiveProgress] = []

    def on_round(label: str, n: int) -> Callable[..., None]:
        bar = LiveProgress(f"round {n} {label}", console=err, enabled=not quiet and sys.stderr.isatty())
        live.append(bar.__enter__())
        return bar

    def on_result(result: RunResult) -> None:
        if live:
            live.pop().__exit__(None, None, None)
        f = result.figures()
        err.print(
            f"{result.label:>9}: {fmt(f['workflows_per_s'])} wf/s, p50 {fmt(f['latency_p50_ms'])} ms, "
            f"p99 {fmt(f['latency_p99_ms'])} ms, {f['workflows_failed']} failed"
        )

    try:
        return await compare(config, rounds, on_round=on_round, on_result=on_result)
    finally:
        for bar in live:
            bar.__exit__(None, None, None)
