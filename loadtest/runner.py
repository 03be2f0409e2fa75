"""One measured run against one server: workers up, optional warm-up, samples, load, samples, history.

Every run uses a task queue and workflow ids of its own, so runs never see each other's tasks, and
stops its worker processes whatever happens.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from temporalio.client import Client

from hourglass.loadtest.connect import TLSPaths, connect, split_addresses
from hourglass.loadtest.driver_raw import RawStarter
from hourglass.loadtest.driver_sdk import SdkStarter
from hourglass.loadtest.history import HistorySample, sample_histories
from hourglass.loadtest.load import LoadGenerator, LoadPlan, LoadRecord, ProgressTick, Starter
from hourglass.loadtest.metrics import Counters, MetricsError, scrape
from hourglass.loadtest.scenarios import Scenario, ScenarioError, ScenarioRef
from hourglass.loadtest.stats import RunResult
from hourglass.loadtest.steps import sample_steps, spread
from hourglass.loadtest.workers import WorkerPool, WorkerSpec, cpu_seconds

CONNECT_TIMEOUT_S = 15.0
HISTORY_SAMPLE_TIMEOUT_S = 30.0
WORKER_DEADLINE_MARGIN_S = 120.0


@dataclass(frozen=True)
class RunConfig:
    """Where to send load, what load, and what to measure besides the load itself."""

    address: str
    scenario: ScenarioRef
    plan: LoadPlan
    namespace: str = "default"
    driver: str = "sdk"
    worker_processes: int = 1
    pollers: int | None = None
    sandbox: bool = False
    warmup: int = 0
    history_sample: int = 5
    step_sample: int = 0  # completed workflows, spread over the run, whose histories give per-step times
    metrics_url: str | None = None
    # Sent as `authorization: Bearer <key>` by the starter and the workers (a server checking JWTs).
    api_key: str | None = None
    server_pid: int | None = None  # known when this tool started the server: its CPU time is read from /proc
    label: str = ""
    tls: TLSPaths | None = None  # None: plaintext


@dataclass
class _Sample:
    """What is read just before the load starts and just after it ends."""

    counters: Counters = field(default_factory=Counters)
    server_cpu_s: float | None = None
    driver_cpu_s: float | None = None


def check_driver(scenario: Scenario, driver: str) -> None:
    if driver not in ("sdk", "raw"):
        raise ScenarioError(f"unknown driver {driver!r}: choose sdk or raw")
    if driver == "raw" and scenario.raw is None:
        raise ScenarioError(f"scenario {scenario.name!r} runs with --driver sdk only (it has no raw logic)")


def make_starter(driver: str, client: Client, scenario: Scenario, task_queue: str) -> Starter:
    if driver == "raw":
        return RawStarter(client, scenario, task_queue)
    return SdkStarter(client, scenario, task_queue)


class RoundRobin:
    """Starts spread over several frontends (`--address a,b,c`): workflow n goes through client n mod N,
    each client sticking to its node, as the SDK's clients of a real deployment do."""

    def __init__(self, starters: list[Starter]) -> None:
        self._starters = starters
        self._next = 0

    async def execute(self, workflow_id: str) -> None:
        starter = self._starters[self._next % len(self._starters)]
        self._next += 1
        await starter.execute(workflow_id)


async def run_load_test(
    config: RunConfig, on_progress: Callable[[ProgressTick], None] | None = None
) -> RunResult:
    scenario = config.scenario.load()
    check_driver(scenario, config.driver)
    config.plan.check()
    clients = [
        await asyncio.wait_for(connect(a, config.namespace, config.tls, config.api_key), CONNECT_TIMEOUT_S)
        for a in split_addresses(config.address)
    ]
    client = clients[0]
    run_id = f"lt-{scenario.name}-{uuid.uuid4().hex[:8]}"
    spec = WorkerSpec(
        driver=config.driver,
        address=config.address,
        namespace=config.namespace,
        task_queue=run_id,
        scenario=config.scenario,
        deadline_s=config.plan.hard_timeout_s + config.plan.workflow_timeout_s + WORKER_DEADLINE_MARGIN_S,
        pollers=config.pollers,
        sandbox=config.sandbox,
        api_key=config.api_key,
        tls=config.tls,
    )
    starter = RoundRobin([make_starter(config.driver, c, scenario, run_id) for c in clients])
    notes: list[str] = []
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    with WorkerPool(spec, config.worker_processes) as pool:
        await pool.wait_ready()
        if config.warmup:
            await LoadGenerator(starter, _warmup_plan(config), f"{run_id}-warmup").run()
        before = await _sample(config, pool, notes)
        record = await LoadGenerator(starter, config.plan, f"{run_id}-w", on_progress).run()
        after = await _sample(config, pool, notes)
        pool.check_alive()
    history = await _history(client, record, config.history_sample, notes)
    result = _result(config, scenario, started_at, record, before, after, history, notes)
    result.steps_ms = await _steps(client, record, config.step_sample, notes)
    return result


def _warmup_plan(config: RunConfig) -> LoadPlan:
    plan = config.plan
    return LoadPlan(
        concurrency=min(plan.concurrency, config.warmup),
        workflows=config.warmup,
        workflow_timeout_s=plan.workflow_timeout_s,
        hard_timeout_s=plan.workflow_timeout_s * 2,
    )


async def _sample(config: RunConfig, pool: WorkerPool, notes: list[str]) -> _Sample:
    counters = Counters()
    if config.metrics_url:
        try:
            counters = await scrape(config.metrics_url)
        except MetricsError as err:
            if str(err) not in notes:
                notes.append(str(err))
    server_cpu = cpu_seconds(config.server_pid) if config.server_pid else counters.cpu_seconds
    pool_cpu = pool.cpu_seconds()
    driver_cpu = None if pool_cpu is None else pool_cpu + time.process_time()
    return _Sample(counters, server_cpu, driver_cpu)


async def _history(client: Client, record: LoadRecord, size: int, notes: list[str]) -> HistorySample:
    ids = [o.workflow_id for o in record.completed[:size]]
    try:
        return await asyncio.wait_for(sample_histories(client, ids), HISTORY_SAMPLE_TIMEOUT_S)
    except Exception as err:  # an estimate only: the run's own figures stand without it
        notes.append(f"history sample failed: {err!r}")
        return HistorySample(0, None, None)


async def _steps(client: Client, record: LoadRecord, size: int, notes: list[str]) -> dict[str, list[float]]:
    picked = spread([(o.workflow_id, o.latency * 1000) for o in record.completed], size)
    if not picked:
        return {}
    try:
        return await asyncio.wait_for(sample_steps(client, picked), HISTORY_SAMPLE_TIMEOUT_S)  # type: ignore[arg-type]
    except Exception as err:  # a breakdown only: the run's own figures stand without it
        notes.append(f"step sample failed: {err!r}")
        return {}


def _delta(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


def _result(
    config: RunConfig,
    scenario: Scenario,
    started_at: str,
    record: LoadRecord,
    before: _Sample,
    after: _Sample,
    history: HistorySample,
    notes: list[str],
) -> RunResult:
    done = record.completed
    errors: dict[str, int] = {}
    for o in record.outcomes:
        if o.error is not None:
            errors[o.error] = errors.get(o.error, 0) + 1
    if record.skipped:
        errors["Skipped (max in flight)"] = record.skipped
    t0 = min((o.started for o in record.outcomes), default=0.0)
    server = after.counters.minus(before.counters)
    if config.metrics_url is None:
        notes.append("no server metrics: database figures n/a, transitions estimated from history")
    elif server.transitions is None and not any(n.startswith("metrics endpoint") for n in notes):
        notes.append(f"{config.metrics_url} has no hourglass_* counters: database figures n/a")
    return RunResult(
        label=config.label,
        scenario=scenario.name,
        driver=config.driver,
        address=config.address,
        namespace=config.namespace,
        mode="open" if config.plan.open_loop else "closed",
        plan=asdict(config.plan),
        worker_processes=config.worker_processes,
        started_at=started_at,
        started=len(record.outcomes),
        completed=len(done),
        errors=errors,
        skipped=record.skipped,
        elapsed_s=record.elapsed,
        hit_hard_timeout=record.hit_hard_timeout,
        latencies_s=[o.latency for o in done],
        completion_times_s=sorted(o.ended - t0 for o in done),
        activities_per_workflow=scenario.activities_per_workflow,
        events_per_workflow=history.events_per_workflow,
        transitions_per_workflow_estimated=history.transitions_per_workflow,
        server=server,
        server_cpu_s=_delta(after.server_cpu_s, before.server_cpu_s),
        driver_cpu_s=_delta(after.driver_cpu_s, before.driver_cpu_s),
        metrics_url=config.metrics_url,
        notes=notes,
    )
