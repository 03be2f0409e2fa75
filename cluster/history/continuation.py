"""What follows a closing run: a retry (workflow retry policy) or the next cron run, or nothing.

Both start a new run of the same execution in the same conditional batch as the close, so there is never
a moment when the workflow id has neither a closed-for-good run nor its successor.
"""

from __future__ import annotations

import uuid

from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1 import ContinueAsNewInitiator, RetryState
from temporalio.api.failure.v1 import Failure

from hourglass.cluster.history.cron import cron_backoff_ms
from hourglass.cluster.history.mutable_state import MutableState
from hourglass.cluster.history.retry import backoff_ms
from hourglass.cluster.history.runs import NewRun, start_run
from hourglass.cluster.history.transition import Transition, default_retry_policy


def workflow_retry(ms: MutableState, failure: Failure | None, now_ms: int) -> tuple[int, int]:
    """(RETRY_STATE_IN_PROGRESS, backoff ms) when the run's retry policy asks for another attempt."""
    info = ms.info
    if info.retry_policy is None:
        return RetryState.RETRY_STATE_RETRY_POLICY_NOT_SET, 0
    policy = default_retry_policy(info.retry_policy)
    if failure is not None and failure.HasField("application_failure_info"):
        app = failure.application_failure_info
        if app.non_retryable or app.type in policy.non_retryable_error_types:
            return RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE, 0
    if policy.maximum_attempts > 0 and info.attempt >= policy.maximum_attempts:
        return RetryState.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED, 0
    delay = backoff_ms(policy, info.attempt)
    if info.execution_expiration_ms and now_ms + delay >= info.execution_expiration_ms:
        return RetryState.RETRY_STATE_TIMEOUT, 0
    return RetryState.RETRY_STATE_IN_PROGRESS, delay


def next_run(
    tr: Transition,
    initiator: int,
    backoff_ms: int,
    *,
    attempt: int,
    failure: Failure | None = None,
    last_completion_result: Payloads | None = None,
) -> Transition:
    """The next run of this execution, inheriting what a retry or cron run inherits."""
    info = tr.ms.info
    new = NewRun(
        namespace_id=info.namespace_id,
        namespace=info.namespace,
        workflow_id=info.workflow_id,
        workflow_type=info.workflow_type,
        task_queue=info.task_queue,
        request_id=str(uuid.uuid4()),
        # The operation a run backs is completed by the last run of its chain.
        completion_callbacks=list(info.completion_callbacks),
        execution_timeout_ms=info.workflow_execution_timeout_ms,
        run_timeout_ms=info.workflow_run_timeout_ms,
        task_timeout_ms=info.workflow_task_timeout_ms,
        retry_policy=info.retry_policy,
        memo=info.memo,
        search_attributes=info.search_attributes,
        cron_schedule=info.cron_schedule,
        backoff_ms=backoff_ms,
        first_run_id=info.first_run_id,
        continued_execution_run_id=info.run_id,
        execution_expiration_ms=info.execution_expiration_ms,
        initiator=initiator,
        attempt=attempt,
        last_completion_result=last_completion_result,
        continued_failure=failure,
        parent=info.parent,
    )
    new.input = info.continuation_input
    new.header = info.continuation_header
    return start_run(new, tr.now)


def after_failure(tr: Transition, failure: Failure | None) -> tuple[int, Transition | None]:
    """A run failed or timed out: retry it, else start the next cron run, else nothing follows."""
    retry_state, delay = workflow_retry(tr.ms, failure, tr.now)
    if retry_state == RetryState.RETRY_STATE_IN_PROGRESS:
        return retry_state, next_run(
            tr,
            ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_RETRY,
            delay,
            attempt=tr.ms.info.attempt + 1,
            failure=failure,
            last_completion_result=tr.ms.info.last_completion_result,
        )
    if tr.ms.info.cron_schedule:
        backoff = cron_backoff_ms(tr.ms.info.cron_schedule, tr.now)
        return retry_state, next_run(
            tr,
            ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_CRON_SCHEDULE,
            backoff,
            attempt=1,
            failure=failure,
            last_completion_result=tr.ms.info.last_completion_result,
        )
    return retry_state, None


def after_completion(tr: Transition, result: Payloads | None) -> Transition | None:
    if not tr.ms.info.cron_schedule:
        return None
    backoff = cron_backoff_ms(tr.ms.info.cron_schedule, tr.now)
    return next_run(
        tr,
        ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_CRON_SCHEDULE,
        backoff,
        attempt=1,
        last_completion_result=result,
    )
