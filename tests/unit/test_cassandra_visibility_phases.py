"""A page of the default order is read in two phases on Cassandra (open runs, then closed ones): a run that
closes between the two reads, or that an index still hands over as open after it closed, is shown once, as
closed (no database needed: the reads are replayed as Cassandra would answer them at each moment)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from hourglass.persistence.cassandra.visibility_reader import Phase, VisibilityReader
from hourglass.persistence.records import VisibilityRecord
from hourglass.persistence.visibility.resolve import parse_query

RUNNING, COMPLETED = 1, 2


def run(run_id: str, start_ms: int, close_ms: int = 0) -> VisibilityRecord:
    return VisibilityRecord(
        namespace_id="ns",
        workflow_id=f"wf-{run_id}",
        run_id=run_id,
        workflow_type="T",
        task_queue="q",
        status=COMPLETED if close_ms else RUNNING,
        start_time_ms=start_ms,
        close_time_ms=close_ms,
    )


class ReplayedReads(VisibilityReader):
    """The rows each phase's read returns, in the order the reads happen."""

    def __init__(self, reads: list[list[VisibilityRecord]]) -> None:
        super().__init__(None, None, None, None, "", 86_400_000, lambda row: row)
        self.reads = reads

    async def records(
        self, namespace_id: str, phase: Phase, fetch_size: int
    ) -> AsyncIterator[VisibilityRecord]:
        for record in self.reads.pop(0):
            yield record


async def page(reads: list[list[VisibilityRecord]], size: int = 100) -> list[tuple[str, int]]:
    records, _ = await ReplayedReads(reads).query("ns", parse_query("", {}), size, b"")
    return [(r.run_id, r.status) for r in records]


async def test_a_run_that_closes_between_the_phases_is_listed_once_as_closed():
    open_read = [run("b", 2_000), run("a", 1_000)]
    closed_read = [run("b", 2_000), run("a", 1_000, close_ms=3_000), run("z", 500, close_ms=600)]
    assert await page([open_read, closed_read]) == [("b", RUNNING), ("a", COMPLETED), ("z", COMPLETED)]


async def test_a_closed_row_the_open_phase_is_handed_is_left_to_the_closed_phase():
    open_read = [run("a", 1_000, close_ms=3_000)]  # a stale index entry: the row itself says closed
    closed_read = [run("a", 1_000, close_ms=3_000)]
    assert await page([open_read, closed_read]) == [("a", COMPLETED)]
