"""GetWorkflowExecutionHistory, run where the run's shard lives.

The frontend forwards the whole request once to the shard's owner instead of reading the run's state,
waiting for a change, reading it again and reading the page as four calls (each carrying the run's whole
state across the cluster): the result long poll every client makes per workflow is one internal hop.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import HistoryEventFilterType
from temporalio.api.history.v1 import History
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from hourglass.cluster.errors import InvalidArgument
from hourglass.cluster.history.limits import LIMITS
from hourglass.cluster.history.mutable_state import MutableState
from hourglass.cluster.history.paging import (
    RESPONSE_LIMIT_BYTES,
    RUN_ID_MISMATCH,
    HistoryCursor,
    effective_page_size,
    history_budget,
)

if TYPE_CHECKING:
    from hourglass.cluster.history.engine import HistoryEngine

log = logging.getLogger(__name__)

# A page's events at most (the rest of a response's budget is its token and framing).
PAGE_BYTES = history_budget(RESPONSE_LIMIT_BYTES, 0)


def is_open(ms: MutableState) -> bool:
    """Whether history reads treat the run as open (long polls wait, tokens continue): running and not
    paused, as the reference, which reads by status and a paused run's status is PAUSED."""
    return ms.running and ms.info.pause is None


async def get_workflow_history(
    history: HistoryEngine, namespace_id: str, request: rr.GetWorkflowExecutionHistoryRequest, timeout: float
) -> rr.GetWorkflowExecutionHistoryResponse | bytes:
    """The response to GetWorkflowExecutionHistory (serialized when it carries stored events unparsed);
    a long poll (`wait_new_event`) waits here at most `timeout` s."""
    page_size = effective_page_size(request.maximum_page_size, LIMITS.frontend_history_max_page_size)
    execution = request.execution
    if request.next_page_token:
        cursor = HistoryCursor.decode(request.next_page_token)
        if execution.run_id and execution.run_id != cursor.run_id:
            raise InvalidArgument(RUN_ID_MISMATCH)
        ms = await history.get_mutable_state(
            namespace_id, WorkflowExecution(workflow_id=execution.workflow_id, run_id=cursor.run_id)
        )
    else:
        ms = await history.get_mutable_state(namespace_id, execution)
        # A long poll reads up to wherever the run is when each page is read; a plain read up to where
        # it is now (the reference's token carries that end too).
        end = 0 if request.wait_new_event else ms.next_event_id
        cursor = HistoryCursor(ms.info.run_id, 1, end, 1)
    first_event_id = cursor.next_event_id
    close_only = (
        request.history_event_filter_type == HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT
    )
    if request.wait_new_event:
        waited = False
        while is_open(ms) and (close_only or ms.next_event_id <= first_event_id) and not waited:
            await history.wait_for_change(ms, timeout, close_only)
            waited = True
            ms = await history.get_mutable_state(
                namespace_id, WorkflowExecution(workflow_id=ms.info.workflow_id, run_id=ms.info.run_id)
            )

    def wait_token(next_id: int) -> bytes:
        return HistoryCursor(ms.info.run_id, next_id, 0, next_id).encode()

    if close_only:
        if is_open(ms):
            return rr.GetWorkflowExecutionHistoryResponse(
                history=History(), next_page_token=wait_token(first_event_id)
            )
        if ms.running:
            # Paused: the reference reads a run whose status is not RUNNING as closed, its last event
            # standing for the close event (`temporal workflow describe` reads it that way).
            last = ms.next_event_id - 1
            page = HistoryCursor(ms.info.run_id, last, last + 1, 1).encode()
            events, _ = await history.read_history_page(ms, page, 1, PAGE_BYTES)
            return rr.GetWorkflowExecutionHistoryResponse(history=events)
        close_id = ms.info.close_event_id
        # The close event ends the last batch; that batch starts at the close (a termination, a
        # timeout) or at the last workflow task's completion, after its started event.
        hint = min(ms.last_completed_workflow_task_started_event_id + 1, close_id)
        close_page = HistoryCursor(ms.info.run_id, close_id, close_id + 1, hint).encode()
        events, _ = await history.read_history_page(ms, close_page, 1, PAGE_BYTES)
        if not events.events:
            # Seen once on Cassandra right after a restart and not understood yet: rather than tell the
            # SDK there is no result, log it and let the client poll again.
            log.error(
                "close event %s of %s/%s not readable yet (next event %s, history txn %s, version %s)",
                ms.info.close_event_id,
                ms.info.workflow_id,
                ms.info.run_id,
                ms.next_event_id,
                ms.last_history_txn_id,
                ms.db_record_version,
            )
            return rr.GetWorkflowExecutionHistoryResponse(
                history=History(), next_page_token=wait_token(first_event_id)
            )
        return rr.GetWorkflowExecutionHistoryResponse(history=events)
    if is_open(ms) and request.wait_new_event and ms.next_event_id <= first_event_id:
        return rr.GetWorkflowExecutionHistoryResponse(
            history=History(), next_page_token=wait_token(first_event_id)
        )
    # Already serialized (the stored events are not parsed): unary_interceptor.py sends bytes as they are.
    end_token = wait_token(ms.next_event_id) if is_open(ms) and request.wait_new_event else b""
    return await history.read_history_response(ms, cursor.encode(), page_size, PAGE_BYTES, end_token)
