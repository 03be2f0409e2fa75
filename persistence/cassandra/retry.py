"""The driver retry policy: retry a statement only when running it twice cannot do harm.

The driver's default policy retries some requests on another host whatever the statement is (e.g. after a
connection error), which for a conditional write (LWT) could apply it twice or report a misleading
`[applied] = false` for a write that did apply the first time. Here a statement is retried only if it is
marked `is_idempotent` (reads, unconditional upserts, deletes); conditional writes never are, so a failure
reaches the store, which reports the outcome as unknown (StoreUnavailableError).
"""

from __future__ import annotations

from typing import Any

from cassandra.policies import RetryPolicy, WriteType


class IdempotentOnlyRetryPolicy(RetryPolicy):
    """One retry for idempotent statements; none for anything else except a clean `Unavailable`."""

    def on_read_timeout(
        self,
        query: Any,
        consistency: int,
        required_responses: int,
        received_responses: int,
        data_retrieved: bool,
        retry_num: int,
    ) -> tuple[int, int | None]:
        if retry_num == 0 and _idempotent(query):
            return self.RETRY, consistency
        return self.RETHROW, None

    def on_write_timeout(
        self,
        query: Any,
        consistency: int,
        write_type: str,
        required_responses: int,
        received_responses: int,
        retry_num: int,
    ) -> tuple[int, int | None]:
        # A timed-out conditional write (write_type CAS) may have been applied: never retried here.
        if retry_num == 0 and _idempotent(query) and write_type != WriteType.CAS:
            return self.RETRY, consistency
        return self.RETHROW, None

    def on_unavailable(
        self, query: Any, consistency: int, required_replicas: int, alive_replicas: int, retry_num: int
    ) -> tuple[int, int | None]:
        # The coordinator refused before contacting any replica: nothing was written, so even a
        # conditional statement may go to another coordinator once.
        if retry_num == 0:
            return self.RETRY_NEXT_HOST, None
        return self.RETHROW, None

    def on_request_error(
        self, query: Any, consistency: int, error: Exception, retry_num: int
    ) -> tuple[int, int | None]:
        # Connection errors, overloaded or bootstrapping coordinators: the request may have run.
        if retry_num == 0 and _idempotent(query):
            return self.RETRY_NEXT_HOST, None
        return self.RETHROW, None


def _idempotent(query: Any) -> bool:
    return bool(getattr(query, "is_idempotent", False))
