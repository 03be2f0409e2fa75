"""Nexus operations a run calls, as the shard's transfer queue carries them out.

A scheduled operation's start (and a cancel request) goes to its endpoint's worker through matching; each
attempt first commits a watchdog timer and then waits in the background, so a handler that never answers
cannot hold up the shard's queue, and an attempt lost with its node is retried by the timer on the shard's
next owner. An asynchronous operation ends when the run backing it closes: that run's completion callback
(`completion_callback`) reaches the caller's shard owner, which records the outcome (`complete_operation`).
Mirrors temporalio/temporal's components/nexusoperations executors; the history events themselves are
written by nexus_operations.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure

from hourglass.cluster.errors import InvalidArgument, NotFound, ServiceError
from hourglass.cluster.history import nexus_dispatch, nexus_operations, standalone_ids, standalone_nexus
from hourglass.cluster.history.mutable_state import MutableState
from hourglass.cluster.history.shard import Shard
from hourglass.cluster.history.tasks import TimerKind
from hourglass.cluster.history.timeutil import now_ms
from hourglass.cluster.history.transition import Transition

if TYPE_CHECKING:
    from hourglass.cluster.history.engine import HistoryEngine

log = logging.getLogger(__name__)


class NexusExecutors:
    """The Nexus side of one history engine: operation starts, cancels and completions."""

    def __init__(self, engine: HistoryEngine) -> None:
        self._engine = engine
        # Start / cancel attempts waiting for their handler's answer (see start).
        self._attempts: set[asyncio.Task] = set()

    def stop(self) -> None:
        """Drop the attempts in flight: their watchdog timers retry them on the shards' next owners."""
        for task in list(self._attempts):
            task.cancel()

    async def start(self, shard: Shard, ms: MutableState, data: dict) -> None:
        """Hand a scheduled Nexus operation's start request to its endpoint's worker and record the answer.

        Each attempt first commits a watchdog timer (the attempt's timeout plus the retry backoff), then waits
        for the handler in the background: the shard's transfer queue is never held up by a handler that does
        not answer, and an attempt lost with its node is retried by the timer on the shard's next owner. No
        answer (no worker polling) or a retryable handler error is retried until the operation's
        schedule-to-close timer ends it."""
        op = ms.nexus_operations.get(data["scheduled_event_id"])
        if op is None or op.started_event_id or not ms.running:
            return
        event = await shard.read_event(ms, op.scheduled_node_id, op.scheduled_event_id)
        a = event.nexus_operation_scheduled_event_attributes
        target = await self._target(ms, op, nexus_operations.record_failed)
        if target is None:
            return
        timeout = nexus_dispatch.REQUEST_TIMEOUT_S
        if op.schedule_to_close_timeout_ms:
            left = (op.scheduled_time_ms + op.schedule_to_close_timeout_ms - now_ms()) / 1000
            if left <= 0:
                return  # the timeout timer ends it
            timeout = min(timeout, left)
        attempt = await self._arm_attempt(ms, op.scheduled_event_id, timeout, cancel=False)
        if attempt is None:
            return
        request = nexus_dispatch.start_request(
            op,
            a.input if a.HasField("input") else None,
            dict(a.nexus_header),
            ms.info.namespace,
            ms.info.workflow_id,
            ms.info.run_id,
            timeout,
            now_ms(),
            nexus_dispatch.callback_token(
                self._engine.task_tokens, ms.info.namespace_id, ms.info.workflow_id, ms.info.run_id, op
            ),
        )
        standalone = standalone_ids.is_standalone_nexus(ms.info.workflow_id)
        if standalone:
            standalone_nexus.point_links_at_operation(request, ms)

        def record(tr: Transition, pending, result: nexus_dispatch.Outcome) -> None:
            if pending.started_event_id:
                return
            if result.failure is not None:
                (nexus_operations.record_canceled if result.canceled else nexus_operations.record_failed)(
                    tr, pending, result.failure
                )
            elif result.synchronous:
                nexus_operations.record_completed(tr, pending, result.result)
            else:
                nexus_operations.record_started(tr, pending, result.operation_token)
                if standalone:
                    standalone_nexus.add_started_links(tr, result.links)

        self._in_background(self._attempt(ms, op, target, request, timeout, attempt, False, record))

    async def _target(self, ms: MutableState, op, record_problem):
        """The operation's endpoint target; None when it cannot be reached, after `record_problem` wrote
        why (a non-retryable failure) into the run's history."""
        target = await nexus_dispatch.endpoint_target(self._engine.store, op.endpoint_id)
        if not isinstance(target, str):
            return target
        problem = Failure(message=target, application_failure_info=ApplicationFailureInfo(non_retryable=True))
        await self._record(ms, op.scheduled_event_id, lambda tr, p: record_problem(tr, p, problem))
        return None

    async def cancel(self, shard: Shard, ms: MutableState, data: dict) -> None:
        """Ask the handler of a started operation to cancel it; record that it received the request (the
        operation's own outcome comes later, by its completion callback) or refused it. Attempts as for the
        start (`start`)."""
        op = ms.nexus_operations.get(data["scheduled_event_id"])
        if op is None or not op.started_event_id or op.cancel_delivered:
            return
        target = await self._target(ms, op, nexus_operations.record_cancel_request_outcome)
        if target is None:
            return
        timeout = nexus_dispatch.REQUEST_TIMEOUT_S
        attempt = await self._arm_attempt(ms, op.scheduled_event_id, timeout, cancel=True)
        if attempt is None:
            return
        request = nexus_dispatch.cancel_request(op, timeout, now_ms())

        def record(tr: Transition, pending, result: nexus_dispatch.Outcome) -> None:
            if not pending.cancel_delivered:
                nexus_operations.record_cancel_request_outcome(tr, pending, result.failure)

        self._in_background(self._attempt(ms, op, target, request, timeout, attempt, True, record))

    async def _arm_attempt(
        self, ms: MutableState, scheduled_event_id: int, timeout: float, cancel: bool
    ) -> int | None:
        """Count the attempt and commit its watchdog timer; None when the operation no longer needs it."""

        def arm(sms: MutableState, tr: Transition) -> int | None:
            pending = sms.nexus_operations.get(scheduled_event_id)
            if not sms.running or pending is None:
                return None
            if cancel:
                if pending.cancel_delivered:
                    return None
                pending.cancel_attempt += 1
                attempt = pending.cancel_attempt
            else:
                if pending.started_event_id:
                    return None
                pending.attempt += 1
                attempt = pending.attempt
            tr.timer(
                TimerKind.NEXUS_RETRY,
                tr.now + int(timeout * 1000) + nexus_dispatch.retry_delay_ms(attempt),
                scheduled_event_id=scheduled_event_id,
                attempt=attempt,
                cancel=cancel,
            )
            return attempt

        return await self._engine._update(ms.info.namespace_id, ms.info.workflow_id, ms.info.run_id, arm)

    async def _attempt(
        self, ms, op, target, request, timeout: float, attempt: int, cancel: bool, record
    ) -> None:
        """One attempt, in the background: the handler's answer is recorded; no answer, or a retryable
        handler error, brings the next attempt forward to its backoff (the watchdog timer stays as a
        backstop)."""
        scheduled_event_id = op.scheduled_event_id
        try:
            answer = await self._engine.matching.dispatch_nexus_task(
                target.namespace_id, target.task_queue, request, timeout
            )
            result = nexus_dispatch.outcome(answer)
            if not result.retry:
                await self._record(ms, scheduled_event_id, lambda tr, pending: record(tr, pending, result))
                return
            reason = result.retry
            failure = result.retry_failure or Failure(message=reason)
        except ServiceError as e:
            reason = e.message
            failure = Failure(message=reason)
        except Exception:
            log.exception("Nexus operation %s/%s: attempt %d failed", op.service, op.operation, attempt)
            return
        log.info("Nexus operation %s/%s: attempt %d: %s", op.service, op.operation, attempt, reason)

        def retry_sooner(sms: MutableState, tr: Transition) -> None:
            pending = sms.nexus_operations.get(scheduled_event_id)
            current = None if pending is None else (pending.cancel_attempt if cancel else pending.attempt)
            if sms.running and current == attempt:
                next_ms = tr.now + nexus_dispatch.retry_delay_ms(attempt)
                if not cancel:
                    pending.last_attempt_failure = failure
                    pending.last_attempt_complete_time_ms = tr.now
                    pending.next_attempt_time_ms = next_ms
                tr.timer(
                    TimerKind.NEXUS_RETRY,
                    next_ms,
                    scheduled_event_id=scheduled_event_id,
                    attempt=attempt,
                    cancel=cancel,
                )

        try:
            await self._engine._update(
                ms.info.namespace_id, ms.info.workflow_id, ms.info.run_id, retry_sooner
            )
        except ServiceError:
            pass  # the watchdog timer retries

    def _in_background(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._attempts.add(task)
        task.add_done_callback(self._attempts.discard)

    async def _record(self, ms: MutableState, scheduled_event_id: int, action) -> None:
        def record(sms: MutableState, tr: Transition):
            pending = sms.nexus_operations.get(scheduled_event_id)
            if sms.running and pending is not None:
                action(tr, pending)

        await self._engine._update(ms.info.namespace_id, ms.info.workflow_id, ms.info.run_id, record)

    async def completion_callback(self, shard: Shard, ms: MutableState, data: dict) -> None:
        """A closed run backs a Nexus operation: tell the caller's run how it ended."""
        callbacks = ms.info.completion_callbacks
        if ms.running or data["index"] >= len(callbacks) or not callbacks[data["index"]].HasField("nexus"):
            return
        callback = callbacks[data["index"]].nexus
        if callback.url != nexus_dispatch.SYSTEM_CALLBACK_URL:
            log.warning(
                "completion callback to %s not delivered: only %s is served",
                callback.url,
                nexus_dispatch.SYSTEM_CALLBACK_URL,
            )
            return
        try:
            token = nexus_dispatch.read_callback_token(
                self._engine.task_tokens,
                nexus_dispatch.header_value(callback.header, nexus_dispatch.CALLBACK_TOKEN_HEADER),
            )
        except InvalidArgument:
            log.warning(
                "completion callback of %s/%s has a token this cluster did not issue",
                ms.info.workflow_id,
                ms.info.run_id,
            )
            return
        (close_event, *_) = await shard.read_events(ms, ms.info.close_event_id)
        result, failure, canceled = nexus_dispatch.completion_of(close_event)
        try:
            await self._engine.peers.complete_nexus_operation(
                token.namespace_id,
                WorkflowExecution(workflow_id=token.workflow_id, run_id=token.run_id),
                token.scheduled_event_id,
                token.nexus_task_id,
                nexus_dispatch.header_value(callback.header, nexus_dispatch.OPERATION_TOKEN_HEADER),
                result,
                failure,
                canceled,
            )
        except NotFound:
            pass  # the caller's run is gone: nobody to tell

    async def complete_operation(
        self,
        namespace_id: str,
        execution: WorkflowExecution,
        scheduled_event_id: int,
        request_id: str,
        operation_token: str,
        result,
        failure,
        canceled: bool,
    ) -> None:
        """An asynchronous Nexus operation this run scheduled ended (runs on the caller's shard owner)."""

        def record(ms: MutableState, tr: Transition):
            op = ms.nexus_operations.get(scheduled_event_id)
            if not ms.running or op is None or op.request_id != request_id:
                return
            if not op.started_event_id:
                # The completion overtook the handler's start answer: the start is recorded first.
                nexus_operations.record_started(tr, op, operation_token, wake=False)
            if failure is None:
                nexus_operations.record_completed(tr, op, result)
            elif canceled:
                nexus_operations.record_canceled(tr, op, failure)
            elif tr.standalone:
                # A standalone operation's caller sees the reference's OperationError around the cause.
                nexus_operations.record_failed(tr, op, standalone_nexus.operation_error(failure))
            else:
                nexus_operations.record_failed(tr, op, failure)

        await self._engine._update(namespace_id, execution.workflow_id, execution.run_id, record)
