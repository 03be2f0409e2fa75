"""The reference's hard limits on one run's history: past them the run is terminated, not written on;
its limit on the signals one run may receive, and on the size of a memo.

Every transition of a running workflow is checked before it is committed, as the reference checks
each update of a run: a history whose size (as committed so far) is over `limit.historySize.error`, or
whose event count (with this transition's events) is over `limit.historyCount.error`, is terminated
instead: the transition is dropped, the run is closed with WorkflowExecutionTerminated (reason
"Workflow history count exceeds limit.", identity "history-service") and the caller gets
INVALID_ARGUMENT with that reason. Without this a run could grow until no worker can read it.
A transition that closes the run or continues it as new is not checked (nothing grows after it).
"""

from __future__ import annotations

import logging

from temporalio.api.common.v1 import Memo

from hourglass.cluster.errors import InvalidArgument, SignalsLimitExceeded
from hourglass.cluster.history.limits import LIMITS
from hourglass.cluster.history.mutable_state import MutableState

log = logging.getLogger(__name__)

HISTORY_SIZE_EXCEEDED = "Workflow history size exceeds limit."
HISTORY_COUNT_EXCEEDED = "Workflow history count exceeds limit."
# Who terminated the run, as the reference's history shows it.
IDENTITY = "history-service"


MEMO_SIZE_EXCEEDED = "Memo size exceeds limit."


def memo_too_large(memo: Memo) -> bool:
    """Is a memo (serialized) over `limit.memoSize.error`? As on the reference, only a memo over
    `limit.memoSize.warn` is checked against the error limit (and logged)."""
    size = memo.ByteSize()
    if size <= LIMITS.memo_size_warn_bytes:
        return False
    log.warning("memo size %d bytes exceeds the warn limit %d", size, LIMITS.memo_size_warn_bytes)
    return size > LIMITS.memo_size_error_bytes


def check_start_memo(memo: Memo) -> None:
    """A start whose memo is over the limit is refused with the reference's INVALID_ARGUMENT."""
    if memo_too_large(memo):
        raise InvalidArgument(MEMO_SIZE_EXCEEDED)


def check_signal_allowed(ms: MutableState) -> None:
    """Refuse one more signal to a run that has had as many as it may (0: no limit)."""
    limit = LIMITS.maximum_signals_per_execution
    if limit > 0 and ms.info.signal_count >= limit:
        log.info("signal refused: %s has had %d signals", ms.info.workflow_id, ms.info.signal_count)
        raise SignalsLimitExceeded()


def warn_size_crossed(ms: MutableState, added_bytes: int) -> None:
    """Log (once per run) when a commit takes the history past `limit.historySize.warn`."""
    size = ms.history_size_bytes
    if size - added_bytes <= LIMITS.history_size_warn_bytes < size:
        log.warning(
            "history size exceeds warn limit: %s has %d bytes",
            (ms.info.namespace_id, ms.info.workflow_id, ms.info.run_id),
            size,
        )


def exceeded(ms: MutableState, new_events: int) -> str | None:
    """The termination reason if the run (its state after a transition that adds `new_events` events)
    is past an error limit, else None. Logs when the count's warn limit is crossed."""
    if not ms.running:
        return None
    size, count = ms.history_size_bytes, ms.history_length
    key = (ms.info.namespace_id, ms.info.workflow_id, ms.info.run_id)
    if size > LIMITS.history_size_error_bytes:
        log.warning("history size exceeds error limit: %s has %d bytes", key, size)
        return HISTORY_SIZE_EXCEEDED
    if count > LIMITS.history_count_error:
        log.warning("history count exceeds error limit: %s has %d events", key, count)
        return HISTORY_COUNT_EXCEEDED
    if count - new_events <= LIMITS.history_count_warn < count:
        log.warning("history count exceeds warn limit: %s has %d events", key, count)
    return None
