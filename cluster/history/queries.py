"""Consistent queries: a query that arrives while a run has a workflow task in flight waits for it.

As on the reference, a query must see every event that came before it. When a workflow task is
scheduled or started, the events it carries are not yet applied by the worker, so the query is
buffered here (in memory, per run) and goes to the worker with a workflow task (the poll response's
`queries`); the worker answers in RespondWorkflowTaskCompleted's `query_results`. A query the worker
did not answer is released once no workflow task is in flight any more, and then goes to the worker
directly, as a query with no task in flight always does.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1 import QueryResultType
from temporalio.api.query.v1 import WorkflowQuery, WorkflowQueryResult


@dataclass
class QueryAnswer:
    """The worker's answer: a result, or the error message of a failed query."""

    answered: bool
    result: Payloads | None = None
    error_message: str = ""


# The query was released unanswered: send it to the worker directly.
RELEASED = "released"


@dataclass
class BufferedQuery:
    query_id: str
    query: WorkflowQuery
    outcome: asyncio.Future[QueryAnswer | str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    # The workflow task it went out with: (scheduled event id, attempt, started time). A task that failed
    # or timed out has a successor with another identity, which carries the query again.
    sent_with: tuple[int, int, int] | None = None


class QueryBuffer:
    """The queries of one run waiting for its in-flight workflow task."""

    def __init__(self) -> None:
        self._queries: dict[str, BufferedQuery] = {}

    def __bool__(self) -> bool:
        return bool(self._queries)

    def add(self, query: WorkflowQuery) -> BufferedQuery:
        buffered = BufferedQuery(str(uuid.uuid4()), query)
        self._queries[buffered.query_id] = buffered
        return buffered

    def remove(self, query_id: str) -> None:
        self._queries.pop(query_id, None)

    def ship(self, task: tuple[int, int, int]) -> dict[str, WorkflowQuery]:
        """The queries a workflow task carries: every one not already out with this very task."""
        shipped = {}
        for q in self._queries.values():
            if q.sent_with != task and not q.outcome.done():
                q.sent_with = task
                shipped[q.query_id] = q.query
        return shipped

    def answer(self, results: Mapping[str, WorkflowQueryResult]) -> None:
        for query_id, result in results.items():
            q = self._queries.pop(query_id, None)
            if q is None or q.outcome.done():
                continue
            if result.result_type == QueryResultType.QUERY_RESULT_TYPE_ANSWERED:
                q.outcome.set_result(QueryAnswer(True, result.answer if result.HasField("answer") else None))
            else:
                q.outcome.set_result(QueryAnswer(False, error_message=result.error_message))

    def release_all(self) -> None:
        """No workflow task is in flight any more: the rest go to the worker directly."""
        for q in self._queries.values():
            if not q.outcome.done():
                q.outcome.set_result(RELEASED)
        self._queries.clear()
