"""Timers, cancelled timers, signals (order), queries (running and closed) and signal-with-start."""

from __future__ import annotations

import asyncio
import time

import pytest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.common import QueryRejectCondition

from .helpers import event_types, new_id, run_worker, wait_for_event
from .workflows import SignalCollector, SignalOrTimeout, Sleeper

WORKFLOW_TASK = ["WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_COMPLETED"]


async def test_timer_fires(client: Client) -> None:
    async with run_worker(client) as tq:
        handle = await client.start_workflow(Sleeper.run, 1.0, id=new_id(), task_queue=tq)
        began = time.monotonic()
        assert await handle.result() == "slept 1.0s"
    assert time.monotonic() - began >= 0.9
    history = await handle.fetch_history()
    assert await event_types(handle) == [
        "WORKFLOW_EXECUTION_STARTED",
        *WORKFLOW_TASK,
        "TIMER_STARTED",
        "TIMER_FIRED",
        *WORKFLOW_TASK,
        "WORKFLOW_EXECUTION_COMPLETED",
    ]
    started = history.events[4].timer_started_event_attributes
    assert started.timer_id == "1"
    assert started.start_to_fire_timeout.ToTimedelta().total_seconds() == 1.0
    assert started.workflow_task_completed_event_id == 4
    fired = history.events[5].timer_fired_event_attributes
    assert (fired.timer_id, fired.started_event_id) == ("1", 5)


async def test_timer_cancelled_when_signal_wins(client: Client) -> None:
    async with run_worker(client) as tq:
        handle = await client.start_workflow(SignalOrTimeout.run, 30.0, id=new_id(), task_queue=tq)
        await wait_for_event(handle, "TIMER_STARTED")
        began = time.monotonic()
        await handle.signal(SignalOrTimeout.poke)
        assert await handle.result() == "poked"
        assert time.monotonic() - began < 10
    history = await handle.fetch_history()
    assert await event_types(handle) == [
        "WORKFLOW_EXECUTION_STARTED",
        *WORKFLOW_TASK,
        "TIMER_STARTED",
        "WORKFLOW_EXECUTION_SIGNALED",
        *WORKFLOW_TASK,
        "TIMER_CANCELED",
        "WORKFLOW_EXECUTION_COMPLETED",
    ]
    canceled = history.events[9].timer_canceled_event_attributes
    assert (canceled.timer_id, canceled.started_event_id, canceled.workflow_task_completed_event_id) == (
        "1",
        5,
        9,
    )
    assert history.events[5].workflow_execution_signaled_event_attributes.signal_name == "poke"


async def test_timer_wins_when_no_signal(client: Client) -> None:
    async with run_worker(client) as tq:
        result = await client.execute_workflow(SignalOrTimeout.run, 1.0, id=new_id(), task_queue=tq)
    assert result == "timed out"


async def test_signals_sent_before_any_worker_keep_their_order(client: Client) -> None:
    tq = new_id("tq")
    handle = await client.start_workflow(SignalCollector.run, id=new_id(), task_queue=tq)
    for item in ["a", "b", "c"]:
        await handle.signal(SignalCollector.add, item)
    await handle.signal(SignalCollector.done)
    async with run_worker(client, task_queue=tq):
        assert await handle.result() == ["a", "b", "c"]
    # All four signals landed before the first workflow task started, so one task saw them all.
    assert await event_types(handle) == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        *["WORKFLOW_EXECUTION_SIGNALED"] * 4,
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_EXECUTION_COMPLETED",
    ]


async def test_signals_to_a_running_workflow_keep_their_order(client: Client) -> None:
    items = [f"item-{i}" for i in range(10)]
    async with run_worker(client) as tq:
        handle = await client.start_workflow(SignalCollector.run, id=new_id(), task_queue=tq)
        for item in items:
            await handle.signal(SignalCollector.add, item)
        await handle.signal(SignalCollector.done)
        assert await handle.result() == items
    history = await handle.fetch_history()
    signals = [
        e.workflow_execution_signaled_event_attributes
        for e in history.events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert [s.signal_name for s in signals] == ["add"] * 10 + ["done"]


async def test_query_running_and_completed(client: Client) -> None:
    async with run_worker(client) as tq:
        handle = await client.start_workflow(SignalCollector.run, id=new_id(), task_queue=tq)
        assert await handle.query(SignalCollector.items) == []
        await handle.signal(SignalCollector.add, "x")
        # A query after a signal sees the signal (the server orders the query after it).
        assert await handle.query(SignalCollector.items) == ["x"]
        await handle.signal(SignalCollector.done)
        assert await handle.result() == ["x"]
        # A closed workflow is still queryable: the worker replays its history.
        assert await handle.query(SignalCollector.items) == ["x"]
        with pytest.raises(WorkflowQueryFailedError) as info:
            await handle.query("no_such_query")
        assert "no_such_query" in str(info.value)
    # Queries are not written to history.
    assert "WORKFLOW_EXECUTION_SIGNALED" in await event_types(handle)
    assert all("QUERY" not in t for t in await event_types(handle))


async def test_query_waits_for_the_workflow_task_in_flight(client: Client) -> None:
    """A query sees every signal sent before it, even while no worker has taken the workflow task that
    carries them: the server hands the query out with that task (as the reference does)."""
    tq = new_id("tq")
    handle = await client.start_workflow(SignalCollector.run, id=new_id(), task_queue=tq)
    await handle.signal(SignalCollector.add, "x")
    query = asyncio.create_task(handle.query(SignalCollector.items))
    await asyncio.sleep(0.5)
    assert not query.done()  # no worker yet: nothing can answer
    async with run_worker(client, task_queue=tq):
        assert await asyncio.wait_for(query, 20) == ["x"]
        for i in range(10):
            await handle.signal(SignalCollector.add, str(i))
            assert (await handle.query(SignalCollector.items))[-1] == str(i)
        await handle.signal(SignalCollector.done)
        assert len(await handle.result()) == 11
        # Right after the start, the first workflow task is still in flight when the signal arrives.
        for _ in range(5):
            fresh = await client.start_workflow(SignalCollector.run, id=new_id(), task_queue=tq)
            await fresh.signal(SignalCollector.add, "y")
            assert await fresh.query(SignalCollector.items) == ["y"]
            await fresh.signal(SignalCollector.done)


async def test_signal_with_start(client: Client) -> None:
    wf_id = new_id()
    async with run_worker(client) as tq:
        first = await client.start_workflow(
            SignalCollector.run, id=wf_id, task_queue=tq, start_signal="add", start_signal_args=["first"]
        )
        # Signal-with-start on a running workflow only signals it: same run.
        second = await client.start_workflow(
            SignalCollector.run, id=wf_id, task_queue=tq, start_signal="add", start_signal_args=["second"]
        )
        assert second.result_run_id == first.result_run_id
        await first.signal(SignalCollector.done)
        assert await first.result() == ["first", "second"]
    types = await event_types(first)
    # The start signal is event 2, before the first workflow task is scheduled.
    assert types[:3] == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_EXECUTION_SIGNALED",
        "WORKFLOW_TASK_SCHEDULED",
    ]


async def test_query_reject_condition(client: Client) -> None:
    """A caller may have queries on closed workflows rejected instead of run: NOT_OPEN rejects any closed
    run, NOT_COMPLETED_CLEANLY one that did not complete; a rejection reports the run's status."""
    async with run_worker(client) as tq:
        handle = await client.start_workflow(SignalCollector.run, id=new_id(), task_queue=tq)
        await handle.signal(SignalCollector.add, "x")
        assert await handle.query(SignalCollector.items, reject_condition=QueryRejectCondition.NOT_OPEN) == [
            "x"
        ]
        await handle.signal(SignalCollector.done)
        await handle.result()
        with pytest.raises(WorkflowQueryRejectedError) as info:
            await handle.query(SignalCollector.items, reject_condition=QueryRejectCondition.NOT_OPEN)
        assert info.value.status == WorkflowExecutionStatus.COMPLETED
        clean = QueryRejectCondition.NOT_COMPLETED_CLEANLY
        assert await handle.query(SignalCollector.items, reject_condition=clean) == ["x"]

        failed = await client.start_workflow(SignalCollector.run, id=new_id(), task_queue=tq)
        await failed.terminate()
        with pytest.raises(WorkflowQueryRejectedError) as info:
            await failed.query(SignalCollector.items, reject_condition=clean)
        assert info.value.status == WorkflowExecutionStatus.TERMINATED
