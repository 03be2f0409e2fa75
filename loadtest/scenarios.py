"""The load scenarios: each is a workflow (plus its activities and children) for the SDK driver, and,
where it has one, the raw logic that answers the same workflow's tasks without an SDK.

A user's own scenario is a Python file defining workflows/activities and a module-level
`SCENARIO = Scenario(...)`; it is imported by module name (its folder goes on sys.path) so the SDK's
workflow sandbox and the worker processes can import it again.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.api.command.v1 import Command
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from hourglass.loadtest import commands
from hourglass.loadtest.catalog import BUILTIN_SCENARIOS

ACTIVITY_TIMEOUT = timedelta(seconds=30)
HEAVY_HISTORY_ACTIVITIES = 33  # 4 + 33 * 6 + 1 = 203 events
CHILDREN = 3

# -- what the raw logic sees ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowTaskView:
    """One workflow task, as the raw driver hands it to a scenario's raw logic: the whole history so far."""

    namespace: str
    workflow_id: str
    workflow_type: str
    task_queue: str
    events: Sequence[HistoryEvent]
    _counts: Counter[int] = field(default_factory=Counter, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._counts.update(e.event_type for e in self.events)

    def count(self, *event_types: int) -> int:
        return sum(self._counts[t] for t in event_types)

    def input(self) -> Any:
        """The workflow's first argument (from its started event)."""
        for e in self.events:
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
                return commands.first_value(e.workflow_execution_started_event_attributes.input)
        return None


# The raw logic: given the task, the commands to complete it with (an empty list: nothing to do yet).
RawLogic = Callable[[WorkflowTaskView], list[Command]]

_ACTIVITY_CLOSED = (
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
)
_CHILD_CLOSED = (
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED,
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED,
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT,
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED,
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED,
    EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED,
)


@dataclass(frozen=True)
class Scenario:
    """What a load run starts, what its workers answer, and what one workflow costs in activities.

    `workflow` is started by the load generator; `workflows` are the other workflow classes the worker
    must know (children). `signal`, when set, is sent right after each start. `raw` is None for a
    scenario that runs with the SDK driver only.
    """

    name: str
    description: str
    workflow: type
    workflows: tuple[type, ...] = ()
    activities: tuple[Callable[..., Any], ...] = ()
    args: tuple[Any, ...] = ("loadtest",)
    activities_per_workflow: int = 0
    signal: str | None = None
    signal_args: tuple[Any, ...] = ("go",)
    raw: RawLogic | None = None

    @property
    def workflow_type(self) -> str:
        return workflow_type_name(self.workflow)

    @property
    def all_workflows(self) -> tuple[type, ...]:
        return (self.workflow, *self.workflows)


def workflow_type_name(cls: type) -> str:
    # The SDK keeps the registered name on the class's definition; there is no public accessor.
    return workflow._Definition.must_from_class(cls).name


# -- built-in workflows and activities --------------------------------------------------------------------


@activity.defn(name="loadtest.echo")
async def echo(value: Any) -> Any:
    return value


async def _sequential_activities(payload: Any, count: int) -> Any:
    for _ in range(count):
        payload = await workflow.execute_activity(echo, payload, start_to_close_timeout=ACTIVITY_TIMEOUT)
    return payload


@workflow.defn(name="loadtest.OneActivity")
class OneActivity:
    @workflow.run
    async def run(self, payload: Any) -> Any:
        return await _sequential_activities(payload, 1)


@workflow.defn(name="loadtest.FiveActivities")
class FiveActivities:
    @workflow.run
    async def run(self, payload: Any) -> Any:
        return await _sequential_activities(payload, 5)


@workflow.defn(name="loadtest.HeavyHistory")
class HeavyHistory:
    @workflow.run
    async def run(self, payload: Any) -> Any:
        return await _sequential_activities(payload, HEAVY_HISTORY_ACTIVITIES)


@workflow.defn(name="loadtest.Timer")
class Timer:
    @workflow.run
    async def run(self, payload: Any) -> Any:
        await asyncio.sleep(1)
        return payload


@workflow.defn(name="loadtest.Signal")
class SignalWorkflow:
    def __init__(self) -> None:
        self._value: Any = None
        self._signalled = False

    @workflow.signal(name="go")
    def go(self, value: Any) -> None:
        self._value, self._signalled = value, True

    @workflow.run
    async def run(self, payload: Any) -> Any:
        await workflow.wait_condition(lambda: self._signalled)
        return self._value


@workflow.defn(name="loadtest.Child")
class Child:
    @workflow.run
    async def run(self, payload: Any) -> Any:
        return payload


@workflow.defn(name="loadtest.Parent")
class Parent:
    @workflow.run
    async def run(self, payload: Any) -> list[Any]:
        parent_id = workflow.info().workflow_id
        return list(
            await asyncio.gather(
                *(
                    workflow.execute_child_workflow(Child.run, payload, id=f"{parent_id}-child-{k}")
                    for k in range(CHILDREN)
                )
            )
        )


# -- raw logic for the built-ins ----------------------------------------------------------------------------


def sequential_activities_raw(count: int, activity_type: str = "loadtest.echo") -> RawLogic:
    """Schedule `count` activities one after the other, then complete with the last result."""

    def decide(task: WorkflowTaskView) -> list[Command]:
        scheduled = task.count(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
        closed = task.count(*_ACTIVITY_CLOSED)
        if closed < scheduled:
            return []  # an activity is still running
        if scheduled < count:
            return [
                commands.schedule_activity(str(scheduled + 1), activity_type, task.task_queue, task.input())
            ]
        return [commands.complete_workflow(task.input())]

    return decide


def timer_raw(task: WorkflowTaskView) -> list[Command]:
    if task.count(EventType.EVENT_TYPE_TIMER_FIRED):
        return [commands.complete_workflow(task.input())]
    if task.count(EventType.EVENT_TYPE_TIMER_STARTED):
        return []
    return [commands.start_timer("1", timedelta(seconds=1))]


def signal_raw(task: WorkflowTaskView) -> list[Command]:
    for e in task.events:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            return [
                commands.complete_workflow(
                    commands.first_value(e.workflow_execution_signaled_event_attributes.input)
                )
            ]
    return []


def parent_and_children_raw(parent_type: str, child_type: str, children: int) -> RawLogic:
    """Children complete at once; the parent starts them all, then completes when all have closed."""

    def decide(task: WorkflowTaskView) -> list[Command]:
        if task.workflow_type == child_type:
            return [commands.complete_workflow(task.input())]
        if not task.count(EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED):
            return [
                commands.start_child(
                    task.namespace, f"{task.workflow_id}-child-{k}", child_type, task.task_queue, task.input()
                )
                for k in range(children)
            ]
        if task.count(*_CHILD_CLOSED) >= children:
            return [commands.complete_workflow([task.input()] * children)]
        return []

    return decide


BUILTINS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "one-activity",
            BUILTIN_SCENARIOS["one-activity"],
            OneActivity,
            activities=(echo,),
            activities_per_workflow=1,
            raw=sequential_activities_raw(1),
        ),
        Scenario(
            "five-activities",
            BUILTIN_SCENARIOS["five-activities"],
            FiveActivities,
            activities=(echo,),
            activities_per_workflow=5,
            raw=sequential_activities_raw(5),
        ),
        Scenario("timer", BUILTIN_SCENARIOS["timer"], Timer, raw=timer_raw),
        Scenario("signal", BUILTIN_SCENARIOS["signal"], SignalWorkflow, signal="go", raw=signal_raw),
        Scenario(
            "child",
            BUILTIN_SCENARIOS["child"],
            Parent,
            workflows=(Child,),
            raw=parent_and_children_raw("loadtest.Parent", "loadtest.Child", CHILDREN),
        ),
        Scenario(
            "heavy-history",
            BUILTIN_SCENARIOS["heavy-history"],
            HeavyHistory,
            activities=(echo,),
            activities_per_workflow=HEAVY_HISTORY_ACTIVITIES,
            raw=sequential_activities_raw(HEAVY_HISTORY_ACTIVITIES),
        ),
    )
}
assert BUILTINS.keys() == BUILTIN_SCENARIOS.keys(), "catalog.py and scenarios.py disagree"


# -- finding a scenario ----------------------------------------------------------------------------------


class ScenarioError(ValueError):
    """A scenario name or file that cannot be used."""


@dataclass(frozen=True)
class ScenarioRef:
    """A picklable pointer to a scenario, so that worker processes can load the same one."""

    name: str | None = None
    file: str | None = None

    def load(self) -> Scenario:
        if self.file is not None:
            return load_scenario_file(self.file)
        if self.name not in BUILTINS:
            raise ScenarioError(f"unknown scenario {self.name!r}; built-in: {', '.join(BUILTINS)}")
        return BUILTINS[self.name]


def load_scenario_file(path: str | Path) -> Scenario:
    """Import a user's scenario file by module name and return its `SCENARIO`."""
    path = Path(path).resolve()
    if path.suffix != ".py" or not path.is_file():
        raise ScenarioError(f"scenario file {path} is not a Python file")
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(path.stem)
    except Exception as err:
        raise ScenarioError(f"cannot import scenario file {path}: {err!r}") from err
    if Path(getattr(module, "__file__", "") or "").resolve() != path:
        raise ScenarioError(f"scenario file {path}: module name {path.stem!r} is taken by {module.__file__}")
    scenario = getattr(module, "SCENARIO", None)
    if not isinstance(scenario, Scenario):
        raise ScenarioError(
            f"scenario file {path} must define SCENARIO = hourglass.loadtest.scenarios.Scenario(...)"
        )
    return scenario
