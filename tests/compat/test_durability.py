"""kill -9 and restart on the same database file: nothing acknowledged is lost, and work resumes.

Hourglass only (the reference default is in memory). To prove these tests against the reference, run
with HOURGLASS_COMPAT_TARGET=reference HOURGLASS_COMPAT_REFERENCE_PERSIST=1 (a file-backed reference).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from .helpers import event_types, new_id, run_worker, wait_for_event
from .servers import HOURGLASS, HOURGLASS_CASSANDRA, ServerProcess, free_port
from .workflows import ActivitySpec, GreetSomeone, RunActivity, SignalCollector, Sleeper, WaitForSignal


async def test_workflows_resume_after_kill9(restartable_server: ServerProcess) -> None:
    srv = restartable_server
    client = await Client.connect(srv.address)
    wf_tq, act_tq = new_id("wf-tq"), new_id("act-tq")

    async with run_worker(client, task_queue=wf_tq):
        done = await client.start_workflow(GreetSomeone.run, "before", id=new_id("done"), task_queue=wf_tq)
        assert await done.result() == "Hello, before!"
        # The activity goes to a queue nobody polls until after the restart.
        act = await client.start_workflow(
            RunActivity.run,
            ActivitySpec("say_hello", ["after restart"], start_to_close=10, task_queue=act_tq),
            id=new_id("act"),
            task_queue=wf_tq,
        )
        timer_started_at = time.monotonic()
        timer = await client.start_workflow(Sleeper.run, 5.0, id=new_id("timer"), task_queue=wf_tq)
        sig = await client.start_workflow(WaitForSignal.run, id=new_id("signal"), task_queue=wf_tq)
        await wait_for_event(act, "ACTIVITY_TASK_SCHEDULED")
        await wait_for_event(timer, "TIMER_STARTED")
        await wait_for_event(sig, "WORKFLOW_TASK_COMPLETED")
    history_before = {h.id: await event_types(h) for h in (done, act, timer, sig)}

    await srv.restart()  # kill -9, same port, same database file
    client = await Client.connect(srv.address)

    for h in (done, act, timer, sig):
        after = await event_types(client.get_workflow_handle(h.id))
        # Nothing lost: what was there before the kill is still there. Only the timer may have moved on
        # (a slow restart, e.g. on Cassandra, can outlast its 5 s), and only by firing.
        assert after[: len(history_before[h.id])] == history_before[h.id], h.id
        if h is not timer:
            assert after == history_before[h.id], h.id
        else:
            assert after[len(history_before[h.id]) :] in ([], ["TIMER_FIRED", "WORKFLOW_TASK_SCHEDULED"]), (
                after
            )
    assert await client.get_workflow_handle(done.id).result() == "Hello, before!"
    for h in (act, timer, sig):
        assert (await client.get_workflow_handle(h.id).describe()).status == WorkflowExecutionStatus.RUNNING

    await client.get_workflow_handle(sig.id).signal(WaitForSignal.finish, "signalled after restart")
    async with run_worker(client, task_queue=wf_tq), run_worker(client, task_queue=act_tq):
        assert await client.get_workflow_handle(act.id).result() == "Hello, after restart!"
        assert await client.get_workflow_handle(sig.id).result() == "signalled after restart"
        assert await client.get_workflow_handle(timer.id).result() == "slept 5.0s"
    # The timer kept its deadline across the restart (neither lost nor fired early).
    assert time.monotonic() - timer_started_at >= 4.9


async def test_acknowledged_starts_and_signals_survive_kill9(restartable_server: ServerProcess) -> None:
    srv = restartable_server
    client = await Client.connect(srv.address)
    tq = new_id("tq")
    handles = []
    for i in range(20):
        handle = await client.start_workflow(SignalCollector.run, id=new_id(f"ack-{i}"), task_queue=tq)
        await handle.signal(SignalCollector.add, f"item-{i}")
        handles.append(handle)
    srv.kill9()  # straight after the last acknowledgement
    await srv.restart()
    client = await Client.connect(srv.address)
    for handle in handles:
        await client.get_workflow_handle(handle.id).signal(SignalCollector.done)
    async with run_worker(client, task_queue=tq):
        results = await asyncio.gather(*(client.get_workflow_handle(h.id).result() for h in handles))
    assert results == [[f"item-{i}"] for i in range(20)]


async def test_connected_worker_survives_server_restart(restartable_server: ServerProcess) -> None:
    """The worker keeps polling through the outage and picks up where it left off."""
    srv = restartable_server
    client = await Client.connect(srv.address)
    async with run_worker(client) as tq:
        handle = await client.start_workflow(Sleeper.run, 2.0, id=new_id(), task_queue=tq)
        await wait_for_event(handle, "TIMER_STARTED")
        await srv.restart()
        assert await asyncio.wait_for(handle.result(), 30) == "slept 2.0s"


def _second_process(srv: ServerProcess, workdir: Path) -> ServerProcess:
    """Another Hourglass server on the same store (database file or keyspace), on ports of its own."""
    port, http_port = free_port(), free_port()
    if srv.kind == HOURGLASS:
        argv = list(srv.argv)
        argv[argv.index("--port") + 1] = str(port)
        if "--http-port" in argv:
            argv[argv.index("--http-port") + 1] = str(http_port)
    else:
        assert srv.db_filename is not None  # the node's config file
        config = workdir / "second.yaml"
        text = srv.db_filename.read_text().replace(f" port: {srv.port},", f" port: {port},")
        text = text.replace(f" port: {srv.port}}}", f" port: {port}}}")
        if srv.http_port is not None:
            text = text.replace(f"http_port: {srv.http_port}", f"http_port: {http_port}")
        config.write_text(text)
        argv = [*srv.argv[:-1], str(config)]
    return dataclasses.replace(
        srv, port=port, http_port=http_port, workdir=workdir, argv=argv, proc=None, starts=0, _log_files=[]
    )


async def test_shards_taken_by_a_stale_second_server_are_taken_back(
    restartable_server: ServerProcess, tmp_path: Path
) -> None:
    """A second server started on the same store by mistake takes every shard (it bumps their range ids)
    and fences the first one out. Once it is gone, the first server takes its shards back, as the
    reference's shard controller does: its runs go on, instead of failing with UNAVAILABLE forever."""
    srv = restartable_server
    if srv.kind not in (HOURGLASS, HOURGLASS_CASSANDRA):
        pytest.skip("starts a second Hourglass server on the store of the one under test")
    client = await Client.connect(srv.address)
    async with run_worker(client) as tq:
        waiting = await client.start_workflow(WaitForSignal.run, id=new_id("stale"), task_queue=tq)
        await wait_for_event(waiting, "WORKFLOW_TASK_COMPLETED")
        second = _second_process(srv, tmp_path)
        await second.start()  # it owns every shard now
        second.kill9()

        await asyncio.wait_for(waiting.signal(WaitForSignal.finish, "after the stale server"), 30)
        assert await asyncio.wait_for(waiting.result(), 30) == "after the stale server"
        again = await client.start_workflow(
            GreetSomeone.run, "again", id=new_id("after-stale"), task_queue=tq
        )
        assert await asyncio.wait_for(again.result(), 30) == "Hello, again!"
