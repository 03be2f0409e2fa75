"""Load generation: start workflows in a closed loop (bounded concurrency) or an open loop (a fixed rate),
and record, per workflow, when its start was requested, when its result came back, and any error.

Bounded by construction: a closed loop stops after `workflows` starts or `duration_s`, an open loop after
`rate * duration_s` starts; each workflow is given up after `workflow_timeout_s` and the whole run after
`hard_timeout_s`, whatever the server does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from temporalio.client import WorkflowFailureError
from temporalio.service import RPCError

PROGRESS_INTERVAL_S = 0.25


class Starter(Protocol):
    """Runs one workflow of the scenario from start request to result (one per driver)."""

    async def execute(self, workflow_id: str) -> None: ...


@dataclass(frozen=True)
class LoadPlan:
    """How much load, and how it is bounded. Closed loop unless `rate` is set."""

    concurrency: int = 10
    workflows: int | None = None
    rate: float | None = None
    duration_s: float | None = None
    workflow_timeout_s: float = 60.0
    hard_timeout_s: float = 600.0
    max_in_flight: int = 10_000

    @property
    def open_loop(self) -> bool:
        return self.rate is not None

    @property
    def expected(self) -> int | None:
        """How many workflows the plan starts, when that is known up front."""
        if self.rate is not None and self.duration_s is not None:
            return max(1, int(self.rate * self.duration_s))
        return self.workflows

    def check(self) -> None:
        """Raise ValueError unless the plan stops by itself."""
        if self.open_loop:
            if self.workflows is not None:
                raise ValueError("choose a closed loop (--workflows) or an open loop (--rate), not both")
            if self.rate is None or self.rate <= 0:
                raise ValueError("--rate must be positive")
            if self.duration_s is None:
                raise ValueError("an open loop (--rate) needs --duration")
        elif self.workflows is None and self.duration_s is None:
            raise ValueError("a closed loop needs --workflows or --duration")
        if self.workflows is not None and self.workflows < 1:
            raise ValueError("--workflows must be at least 1")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError("--duration must be positive")
        if self.concurrency < 1:
            raise ValueError("--concurrency must be at least 1")
        if self.duration_s is not None and self.duration_s >= self.hard_timeout_s:
            raise ValueError("--duration must be shorter than --timeout")


@dataclass(frozen=True)
class Outcome:
    """One workflow: seconds since the run began when its start was requested and when it ended."""

    workflow_id: str
    started: float
    ended: float
    error: str | None = None

    @property
    def latency(self) -> float:
        return self.ended - self.started


@dataclass(frozen=True)
class ProgressTick:
    done: int
    failed: int
    in_flight: int
    elapsed: float
    expected: int | None


@dataclass
class LoadRecord:
    """What a load run did: every outcome, plus the starts skipped and whether the hard timeout hit."""

    outcomes: list[Outcome] = field(default_factory=list)
    skipped: int = 0
    hit_hard_timeout: bool = False

    @property
    def completed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error is None]

    @property
    def elapsed(self) -> float:
        """From the first start request to the last result: the window every rate is measured over."""
        if not self.outcomes:
            return 0.0
        return max(o.ended for o in self.outcomes) - min(o.started for o in self.outcomes)


def error_type(err: BaseException) -> str:
    """A short, stable name to count errors by."""
    if isinstance(err, RPCError):
        return f"RPCError.{err.status.name}"
    if isinstance(err, WorkflowFailureError):
        return f"WorkflowFailure.{type(err.cause).__name__}"
    if isinstance(err, TimeoutError):
        return "Timeout"
    name = type(err).__name__
    return f"{name}.{err}" if name == "WorkflowClosedError" else name


class LoadGenerator:
    """Runs a plan against a starter; `on_progress` is called a few times a second."""

    def __init__(
        self,
        starter: Starter,
        plan: LoadPlan,
        id_prefix: str,
        on_progress: Callable[[ProgressTick], None] | None = None,
    ) -> None:
        plan.check()
        self._starter = starter
        self._plan = plan
        self._prefix = id_prefix
        self._on_progress = on_progress
        self._record = LoadRecord()
        self._issued = 0
        self._in_flight = 0
        self._failed = 0
        self._t0 = 0.0

    async def run(self) -> LoadRecord:
        self._t0 = time.monotonic()
        ticker = asyncio.create_task(self._tick_forever())
        try:
            async with asyncio.timeout(self._plan.hard_timeout_s):
                await (self._open_loop() if self._plan.open_loop else self._closed_loop())
        except TimeoutError:
            self._record.hit_hard_timeout = True
        finally:
            ticker.cancel()
            self._tick()
        return self._record

    def _now(self) -> float:
        return time.monotonic() - self._t0

    async def _closed_loop(self) -> None:
        plan = self._plan

        def more() -> bool:
            if plan.workflows is not None and self._issued >= plan.workflows:
                return False
            return plan.duration_s is None or self._now() < plan.duration_s

        async def lane() -> None:
            while more():
                index = self._issued
                self._issued += 1
                await self._one(index)

        await asyncio.gather(*(lane() for _ in range(plan.concurrency)))

    async def _open_loop(self) -> None:
        plan = self._plan
        assert plan.rate is not None and plan.expected is not None
        running: set[asyncio.Task[None]] = set()
        try:
            for index in range(plan.expected):
                delay = index / plan.rate - self._now()
                if delay > 0:
                    await asyncio.sleep(delay)
                if len(running) >= plan.max_in_flight:
                    self._record.skipped += 1
                    continue
                self._issued += 1
                task = asyncio.create_task(self._one(index))
                running.add(task)
                task.add_done_callback(running.discard)
            if running:
                await asyncio.gather(*running)
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    async def _one(self, index: int) -> None:
        workflow_id = f"{self._prefix}-{index}"
        started = self._now()
        self._in_flight += 1
        error: str | None = None
        try:
            async with asyncio.timeout(self._plan.workflow_timeout_s):
                await self._starter.execute(workflow_id)
        except asyncio.CancelledError:
            error = "Cancelled (run timeout)"
            raise
        except Exception as err:
            error = error_type(err)
        finally:
            self._in_flight -= 1
            self._failed += error is not None
            self._record.outcomes.append(Outcome(workflow_id, started, self._now(), error))

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL_S)
            self._tick()

    def _tick(self) -> None:
        if self._on_progress is not None:
            done = len(self._record.outcomes) - self._failed
            self._on_progress(
                ProgressTick(done, self._failed, self._in_flight, self._now(), self._plan.expected)
            )
