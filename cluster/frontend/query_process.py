"""Long list queries are parsed in a process of their own, so their parse never holds this process's GIL.

A 1.9 MB `WorkflowId IN (...)` query takes seconds of lark parsing. In a worker thread it still shares the
GIL with the event loop, and every other request waited up to ~100 ms behind it (more with history reads
running: loadtest/RESULTS-stall.md). A process parses with a GIL of its own; only the parsed query (plain
picklable dataclasses) comes back, unpickled by the executor's own thread.

One process, started (spawn: nothing of this process's state is inherited) at the first long query, at a
lower CPU priority (nice +10: on a busy machine the loop comes first), and one query at a time: a burst of
long queries waits here instead of loading every core. If the process dies (killed, out of memory) the
query at hand is parsed in a thread and the next one starts a new process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from hourglass.persistence.visibility.model import VisibilityQuery
from hourglass.persistence.visibility.resolve import ArchetypeView, parse_query

log = logging.getLogger(__name__)


# The parser process's niceness above the node's: on a busy machine it yields the CPU to the event loop, so
# a long parse slows itself rather than every light request.
NICENESS = 10


def _lower_priority() -> None:
    with contextlib.suppress(AttributeError, OSError):  # no os.nice on Windows
        os.nice(NICENESS)


class QueryParserProcess:
    """`parse(text, custom, view)` = resolve.parse_query(text, custom, view), run in the parser process."""

    def __init__(self) -> None:
        self._executor: ProcessPoolExecutor | None = None
        self._one_at_a_time = asyncio.Semaphore(1)

    async def parse(
        self, text: str, custom: Mapping[str, int], view: ArchetypeView | None = None
    ) -> VisibilityQuery:
        """The parsed query; QueryError (raised in the process, rebuilt here) if it is bad."""
        async with self._one_at_a_time:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_lower_priority,
                )
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(self._executor, parse_query, text, dict(custom), view)
            except BrokenProcessPool:
                log.warning("the query parser process died; parsing this query in a thread")
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None
                return await asyncio.to_thread(parse_query, text, dict(custom), view)

    def close(self) -> None:
        """Stop the process (if it was started); a query being parsed is abandoned."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
