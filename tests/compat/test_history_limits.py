"""What a workflow task tells the worker about its history: its size, and when to continue as new.

The suggestion threshold is the reference's dynamic config `limit.historyCount.suggestContinueAsNew`,
which `hourglass server start-dev --dynamic-config-value` takes too: this module starts its own server
(of the target's kind; SQLite for Hourglass) with a low threshold.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client

from . import servers
from .helpers import event_types, new_id, run_worker
from .servers import REFERENCE, ServerProcess, compat_target
from .workflows import HistoryFacts, HistoryGrower

SUGGEST_AT = 20


@pytest.fixture(scope="module")
async def limited_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("history-limits")
    srv = (
        servers.reference_server(workdir)
        if compat_target() == REFERENCE
        else servers.hourglass_server(workdir)
    )
    srv.argv += ["--dynamic-config-value", f"limit.historyCount.suggestContinueAsNew={SUGGEST_AT}"]
    try:
        await srv.start()
        yield srv
    finally:
        srv.stop()


async def _facts_once(handle, check) -> HistoryFacts:
    deadline = time.monotonic() + 10
    while True:
        facts = await handle.query(HistoryGrower.facts)
        if check(facts) or time.monotonic() > deadline:
            return facts
        await asyncio.sleep(0.2)


async def test_history_size_and_continue_as_new_suggestion(limited_server: ServerProcess) -> None:
    client = await Client.connect(limited_server.address)
    async with run_worker(client) as tq:
        handle = await client.start_workflow(HistoryGrower.run, id=new_id(), task_queue=tq)
        first = await handle.query(HistoryGrower.facts)
        assert first.length == 3  # started, task scheduled, task started
        assert first.size > 100
        assert not first.continue_as_new_suggested

        await handle.signal(HistoryGrower.grow, SUGGEST_AT)
        deadline = time.monotonic() + 10
        while (await event_types(handle)).count("TIMER_STARTED") < SUGGEST_AT:
            assert time.monotonic() < deadline, "the timers were not started"
            await asyncio.sleep(0.2)
        # The next workflow task starts with more than SUGGEST_AT events behind it.
        await handle.signal(HistoryGrower.grow, 1)
        later = await _facts_once(handle, lambda f: f.continue_as_new_suggested)
        assert later.continue_as_new_suggested
        assert later.length > SUGGEST_AT
        assert later.size > first.size
        await handle.terminate()
