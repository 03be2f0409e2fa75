"""The load tool's pure parts, without a server: figures, parsing, load generation, raw logic."""

from __future__ import annotations

import asyncio

import click
import pytest
from temporalio.api.enums.v1 import CommandType, EventType, TaskQueueKind
from temporalio.api.history.v1 import HistoryEvent

from hourglass.loadtest import commands
from hourglass.loadtest.catalog import BUILTIN_SCENARIOS
from hourglass.loadtest.cli import Duration
from hourglass.loadtest.history import transitions_in
from hourglass.loadtest.load import LoadGenerator, LoadPlan
from hourglass.loadtest.metrics import Counters, bucket_quantile, parse_prometheus
from hourglass.loadtest.scenarios import BUILTINS, WorkflowTaskView
from hourglass.loadtest.stats import RunResult, merge, percentile
from hourglass.loadtest.steps import CLIENT_STEP, spread, step_medians, step_times

# -- figures --------------------------------------------------------------------------------------------


def test_percentile_interpolates_between_ranks() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 100) == 4.0
    assert percentile([], 50) is None


def _result(label: str, completed: int, elapsed: float, transitions: float | None = None) -> RunResult:
    return RunResult(
        label=label,
        scenario="one-activity",
        driver="sdk",
        address="127.0.0.1:1",
        namespace="default",
        mode="closed",
        plan={},
        worker_processes=1,
        started_at="now",
        started=completed,
        completed=completed,
        errors={},
        skipped=0,
        elapsed_s=elapsed,
        hit_hard_timeout=False,
        latencies_s=[0.1] * completed,
        completion_times_s=[elapsed * (i + 1) / completed for i in range(completed)],
        activities_per_workflow=1,
        transitions_per_workflow_estimated=7.0,
        server=Counters(transitions=transitions, conditional_batches=transitions, writes=transitions),
    )


def test_figures_prefer_server_counters_and_fall_back_to_the_estimate() -> None:
    measured = _result("a", 10, 2.0, transitions=80.0).figures()
    assert measured["workflows_per_s"] == 5.0
    assert measured["state_transitions_per_s"] == 40.0
    assert measured["state_transitions_source"] == "server"
    assert measured["state_transitions_per_s_estimated"] == 35.0
    assert measured["transitions_per_batch"] == 1.0
    estimated = _result("b", 10, 2.0).figures()
    assert estimated["state_transitions_source"] == "estimated"
    assert estimated["state_transitions_per_s"] == 35.0
    assert estimated["db_writes_per_s"] is None


def test_merge_adds_windows_and_pools_latencies() -> None:
    merged = merge([_result("a", 10, 2.0, 70.0), _result("a", 30, 2.0, 210.0)])
    assert merged.completed == 40 and merged.elapsed_s == 4.0 and merged.rounds == 2
    assert merged.figures()["workflows_per_s"] == 10.0
    assert merged.server.transitions == 280.0
    assert len(merged.latencies_s) == 40
    assert max(merged.completion_times_s) == pytest.approx(4.0)


# -- parsing ---------------------------------------------------------------------------------------------


def test_prometheus_counters_are_summed_over_labels_and_missing_ones_are_none() -> None:
    text = """# HELP hourglass_transitions_total x
# TYPE hourglass_transitions_total counter
hourglass_transitions_total 12.0
hourglass_workflows_closed_total{status="completed"} 3
hourglass_workflows_closed_total{status="failed"} 1
process_cpu_seconds_total 1.5
"""
    assert parse_prometheus(text)["hourglass_workflows_closed_total"] == 4
    counters = Counters.from_text(text)
    assert counters.transitions == 12 and counters.workflows_closed == 4 and counters.cpu_seconds == 1.5
    assert counters.writes is None
    delta = counters.minus(Counters(transitions=2.0))
    assert delta.transitions == 10 and delta.workflows_closed is None


def test_a_declared_counter_without_samples_is_zero() -> None:
    text = "# HELP hourglass_internal_rpc_calls_total x\n# TYPE hourglass_internal_rpc_calls_total counter\n"
    assert Counters.from_text(text).internal_calls == 0
    assert Counters.from_text("").internal_calls is None


def test_latency_quantiles_come_from_histogram_bucket_deltas() -> None:
    def sample(counts: tuple[int, int, int]) -> Counters:
        low, mid, total = counts
        return Counters.from_text(
            f"""hourglass_persistence_conditional_batch_seconds_bucket{{le="0.001"}} {low}
hourglass_persistence_conditional_batch_seconds_bucket{{le="0.002"}} {mid}
hourglass_persistence_conditional_batch_seconds_bucket{{le="+Inf"}} {total}
hourglass_persistence_conditional_batch_seconds_count {total}
"""
        )

    # 100 observations between the samples: 50 under 1 ms, 40 in (1 ms, 2 ms], 10 beyond 2 ms.
    delta = sample((60, 100, 110)).minus(sample((10, 10, 10)))
    assert delta.batch_latency_buckets == ((0.001, 50), (0.002, 90), (float("inf"), 100))
    assert bucket_quantile(delta.batch_latency_buckets, 0.5) == pytest.approx(0.001)
    assert bucket_quantile(delta.batch_latency_buckets, 0.7) == pytest.approx(0.0015)
    assert bucket_quantile(delta.batch_latency_buckets, 0.99) == pytest.approx(0.002)  # past the last bound
    assert delta.append_latency_buckets is None  # not exported: n/a, not zero
    assert bucket_quantile(sample((0, 0, 0)).minus(sample((0, 0, 0))).batch_latency_buckets, 0.5) is None


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("60s", 60), ("1m30s", 90), ("500ms", 0.5), ("2h", 7200), ("1.5s", 1.5)]
)
def test_duration_parsing(text: str, seconds: float) -> None:
    assert Duration().convert(text, None, None) == seconds


@pytest.mark.parametrize("text", ["abc", "10x", "s", "1m 30s", ""])
def test_bad_durations_are_rejected(text: str) -> None:
    with pytest.raises(click.BadParameter, match="not a duration"):
        Duration().convert(text, None, None)


# -- load generation ---------------------------------------------------------------------------------------


class FakeStarter:
    def __init__(self, delay: float = 0.01, fail_every: int = 0) -> None:
        self.delay, self.fail_every, self.calls, self.peak, self._running = delay, fail_every, 0, 0, 0

    async def execute(self, workflow_id: str) -> None:
        self.calls += 1
        call = self.calls
        self._running += 1
        self.peak = max(self.peak, self._running)
        try:
            await asyncio.sleep(self.delay)
            if self.fail_every and call % self.fail_every == 0:
                raise ValueError("boom")
        finally:
            self._running -= 1


async def test_closed_loop_runs_the_count_with_bounded_concurrency() -> None:
    starter = FakeStarter(fail_every=5)
    record = await LoadGenerator(starter, LoadPlan(concurrency=3, workflows=20), "t").run()
    assert starter.calls == 20 and starter.peak <= 3
    assert len(record.completed) == 16
    assert sorted(o.error for o in record.outcomes if o.error) == ["ValueError"] * 4
    assert len({o.workflow_id for o in record.outcomes}) == 20


async def test_open_loop_starts_at_the_rate_for_the_duration() -> None:
    starter = FakeStarter()
    record = await LoadGenerator(starter, LoadPlan(rate=20, duration_s=0.5), "t").run()
    assert starter.calls == 10
    starts = sorted(o.started for o in record.outcomes)
    assert starts[-1] >= 0.4  # spread over the duration, not all at once


async def test_slow_workflows_time_out_and_the_hard_timeout_stops_the_run() -> None:
    plan = LoadPlan(concurrency=2, workflows=4, workflow_timeout_s=0.05, hard_timeout_s=5)
    record = await LoadGenerator(FakeStarter(delay=1.0), plan, "t").run()
    assert [o.error for o in record.outcomes] == ["Timeout"] * 4
    plan = LoadPlan(concurrency=2, duration_s=1.0, workflow_timeout_s=10, hard_timeout_s=1.2)
    record = await LoadGenerator(FakeStarter(delay=5.0), plan, "t").run()
    assert record.hit_hard_timeout
    assert all(o.error == "Cancelled (run timeout)" for o in record.outcomes)


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (LoadPlan(rate=5), "needs --duration"),
        (LoadPlan(rate=5, duration_s=1, workflows=3), "not both"),
        (LoadPlan(), "needs --workflows or --duration"),
        (LoadPlan(workflows=1, duration_s=700), "shorter than --timeout"),
    ],
)
def test_plans_that_would_not_stop_are_refused(plan: LoadPlan, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan.check()


# -- scenarios and raw logic ----------------------------------------------------------------------------


def test_catalog_names_every_builtin() -> None:
    assert list(BUILTINS) == list(BUILTIN_SCENARIOS)
    assert all(s.raw is not None for s in BUILTINS.values())


def _event(event_type: int, **attrs: object) -> HistoryEvent:
    return HistoryEvent(event_type=event_type, **attrs)


def _view(events: list[HistoryEvent], workflow_type: str = "loadtest.FiveActivities") -> WorkflowTaskView:
    return WorkflowTaskView("default", "wf-1", workflow_type, "tq", events)


def _started() -> HistoryEvent:
    e = _event(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)
    e.workflow_execution_started_event_attributes.input.CopyFrom(commands.payloads("hi"))
    return e


def test_sequential_activities_raw_logic_schedules_one_at_a_time_then_completes() -> None:
    decide = BUILTINS["five-activities"].raw
    assert decide is not None
    history = [_started()]
    for n in range(5):
        cmds = decide(_view(history))
        assert [c.command_type for c in cmds] == [CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK]
        assert cmds[0].schedule_activity_task_command_attributes.activity_id == str(n + 1)
        history.append(_event(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED))
        assert decide(_view(history)) == []  # still running
        history.append(_event(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED))
    done = decide(_view(history))
    assert [c.command_type for c in done] == [CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION]
    assert commands.first_value(done[0].complete_workflow_execution_command_attributes.result) == "hi"


def test_child_raw_logic_starts_three_children_and_children_complete_at_once() -> None:
    decide = BUILTINS["child"].raw
    assert decide is not None
    starts = decide(_view([_started()], "loadtest.Parent"))
    ids = [c.start_child_workflow_execution_command_attributes.workflow_id for c in starts]
    assert ids == ["wf-1-child-0", "wf-1-child-1", "wf-1-child-2"]
    child = decide(_view([_started()], "loadtest.Child"))
    assert [c.command_type for c in child] == [CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION]


def test_transitions_are_counted_from_the_events_that_begin_one() -> None:
    one_activity = [
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    ]
    assert transitions_in(_event(t) for t in one_activity) == 7


def _timed(event_id: int, event_type: int, ms: int, sticky: bool = False) -> HistoryEvent:
    event = HistoryEvent(event_id=event_id, event_type=event_type)
    event.event_time.FromMilliseconds(ms)
    if sticky:
        event.workflow_task_scheduled_event_attributes.task_queue.kind = TaskQueueKind.TASK_QUEUE_KIND_STICKY
    return event


def test_steps_are_the_gaps_between_events_and_the_client_sees_the_rest() -> None:
    events = [
        _timed(1, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, 1000),
        _timed(2, EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, 1000),
        _timed(3, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED, 1250),
        _timed(4, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 1270),
        _timed(5, EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, 1270, sticky=True),
        _timed(6, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED, 1275),
        _timed(7, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, 1300),
    ]
    steps = step_times(events, client_latency_ms=340.0)
    assert steps[1] == ("3. WFT scheduled → WFT started", 250.0)
    assert steps[3] == ("5. WFT completed → WFT scheduled (sticky)", 0.0)
    assert steps[4] == ("6. WFT scheduled (sticky) → WFT started", 5.0)
    assert steps[-1] == (CLIENT_STEP, 40.0)  # 340 ms seen by the client, 300 ms in the history
    medians = step_medians({label: [ms, ms + 2, ms + 4] for label, ms in reversed(steps)})
    assert list(medians)[0].startswith("2. ") and list(medians)[-1] == CLIENT_STEP  # history order
    assert medians["3. WFT scheduled → WFT started"] == 252.0


def test_the_step_sample_is_spread_over_the_whole_run() -> None:
    assert spread(list(range(10)), 3) == [0, 3, 6]
    assert spread(list(range(3)), 5) == [0, 1, 2]
    assert spread(list(range(3)), 0) == []
