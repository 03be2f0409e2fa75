"""Nexus operations a run calls, as the shard's transfer queue carries them out.

A scheduled operation's start (and a cancel request) goes to its endpoint's worker through matching, or,
for an endpoint with an external URL, over the Nexus HTTP protocol (nexus_http.py); each attempt first
commits a watchdog timer and then waits in the background, so a handler that never answers cannot hold up
the shard's queue, and an attempt lost with its node is retried by the timer on the shard's next owner. An
asynchronous operation ends when the run backing it closes: that run's completion callback
(`completion_callback`) reaches the caller's shard owner, in this cluster (`temporal://system`) or by a POST
to the caller's callback URL, delivered with the same watchdog timers; the caller's shard owner records
the outcome (`complete_operation`).
Mirrors temporalio/temporal's components/nexusoperations executors; the history events themselves are
written by nexus_operations.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING

import httpx
from temporalio.api.common.v1 import Link, WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure
from temporalio.api.nexus.v1 import Link as NexusLink
from temporalio.api.workflowservice.v1 import SignalWithStartWorkflowExecutionResponse

from hourglass.cluster.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ServiceError,
    WorkflowAlreadyStarted,
)
from hourglass.cluster.history import (
    nexus_dispatch,
    nexus_http,
    nexus_operations,
    runs,
    standalone_ids,
    standalone_nexus,
    system_nexus,
)
from hourglass.cluster.history.limits import LIMITS
from hourglass.cluster.history.mutable_state import CallbackState, MutableState
from hourglass.cluster.history.shard import Shard
from hourglass.cluster.history.tasks import TimerKind, TransferKind
from hourglass.cluster.history.timeutil import now_ms
from hourglass.cluster.history.transition import Transition

if TYPE_CHECKING:
    from hourglass.cluster.history.engine import HistoryEngine

log = logging.getLogger(__name__)


class NexusExecutors:
    """The Nexus side of one history engine: operation starts, cancels and completions."""

    def __init__(self, engine: HistoryEngine) -> None:
        self._engine = engine
        # Start / cancel attempts waiting for their handler's answer (see start), and callback deliveries.
        self._attempts: set[asyncio.Task] = set()
        # The callback URL an external endpoint's handler is given (the reference's dynamic config
        # component.nexusoperations.callback.endpoint.template, a Go template naming {{.NamespaceName}}
        # and {{.NamespaceID}}); the node sets its own HTTP port's URL when the config leaves it unset.
        self.callback_url_template = ""
        self._http: httpx.AsyncClient | None = None

    def stop(self) -> None:
        """Drop the attempts in flight: their watchdog timers retry them on the shards' next owners."""
        for task in list(self._attempts):
            task.cancel()
        if self._http is not None:
            client, self._http = self._http, None
            try:
                asyncio.get_running_loop().create_task(client.aclose())
            except RuntimeError:
                pass

    @property
    def http(self) -> httpx.AsyncClient:
        """The client of external endpoints and callback URLs (connections kept between attempts)."""
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=False)
        return self._http

    def callback_url(self, namespace: str, namespace_id: str) -> str:
        """The callback URL for an operation a run of `namespace` calls on an external endpoint; "" when
        no template is configured and this node serves no HTTP port."""
        template = LIMITS.nexus_callback_url_template or self.callback_url_template
        return fill_template(template, namespace, namespace_id)

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
        system = op.endpoint == system_nexus.ENDPOINT
        target = None if system else await self._target(ms, op, nexus_operations.record_failed)
        if target is None and not system:
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
        if system:
            self._in_background(self._system_start(ms, op, a.input if a.HasField("input") else None))
            return
        callback_url = nexus_dispatch.SYSTEM_CALLBACK_URL
        if isinstance(target, nexus_dispatch.ExternalTarget):
            callback_url = self.callback_url(ms.info.namespace, ms.info.namespace_id)
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
            callback_url or "",
        )
        if standalone_ids.is_standalone_nexus(ms.info.workflow_id):
            standalone_nexus.point_links_at_operation(request, ms)

        def record(tr: Transition, pending, result: nexus_dispatch.Outcome) -> None:
            if pending.started_event_id:
                return
            if result.failure is not None:
                (nexus_operations.record_canceled if result.canceled else nexus_operations.record_failed)(
                    tr, pending, result.failure
                )
            elif result.synchronous:
                nexus_operations.record_completed(tr, pending, result.result, result.links)
            else:
                nexus_operations.record_started(tr, pending, result.operation_token, links=result.links)

        self._in_background(self._attempt(ms, op, target, request, timeout, attempt, False, record))

    async def _system_start(self, ms: MutableState, op, payload) -> None:
        """Run an operation of the server's own endpoint (system_nexus): a workflow's signal-with-start of
        another workflow. A refused request fails the operation; any other error leaves it to the attempt's
        watchdog timer, which retries it."""
        info = ms.info
        caller = Link()
        ref = caller.workflow_event
        ref.namespace, ref.workflow_id, ref.run_id = info.namespace, info.workflow_id, info.run_id
        ref.event_ref.event_id = op.scheduled_event_id
        ref.event_ref.event_type = EventType.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED
        try:
            request = system_nexus.decode_request(payload)
            system_nexus.prepare(request, info.namespace, op.request_id, caller)
            result = await self._engine.peers.signal_with_start(
                info.namespace_id,
                info.namespace,
                runs.start_of_signal_with_start(request, request.request_id),
                request.signal_name,
                request.signal_input if request.HasField("signal_input") else None,
                request.header if request.HasField("header") else None,
            )
        except (InvalidArgument, FailedPrecondition, WorkflowAlreadyStarted) as e:
            failure = Failure(message=e.message)
            failure.nexus_handler_failure_info.type = "BAD_REQUEST"
            await self._record(
                ms, op.scheduled_event_id, lambda tr, p: nexus_operations.record_failed(tr, p, failure)
            )
            return
        except ServiceError as e:
            log.info("system Nexus operation %s/%s: %s", op.service, op.operation, e.message)
            return
        signal_link = Link()
        ref = signal_link.workflow_event
        ref.namespace, ref.workflow_id, ref.run_id = request.namespace, request.workflow_id, result.run_id
        ref.request_id_ref.request_id = request.request_id
        ref.request_id_ref.event_type = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        response = SignalWithStartWorkflowExecutionResponse(
            run_id=result.run_id, started=result.started, signal_link=signal_link
        )
        answer = system_nexus.response_payload(response)

        def record(tr: Transition, pending) -> None:
            if not pending.started_event_id:
                nexus_operations.record_completed(tr, pending, answer, [signal_link])

        await self._record(ms, op.scheduled_event_id, record)

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
        event = await shard.read_event(ms, op.scheduled_node_id, op.scheduled_event_id)
        header = dict(event.nexus_operation_scheduled_event_attributes.nexus_header)
        request = nexus_dispatch.cancel_request(op, timeout, now_ms(), header)

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
            if isinstance(target, nexus_dispatch.ExternalTarget):
                result = await self._call_external(target, request, timeout)
            else:
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

    async def _call_external(
        self, target: nexus_dispatch.ExternalTarget, request, timeout: float
    ) -> nexus_dispatch.Outcome:
        """A start or cancel over the Nexus HTTP protocol (the reference's external endpoint targets)."""
        if request.HasField("start_operation") and not request.start_operation.callback:
            return nexus_dispatch.Outcome(
                retry="no callback URL: set component.nexusoperations.callback.endpoint.template "
                "or serve the HTTP API (--http-port)"
            )
        return await nexus_http.call(self.http, target.url, request, timeout)

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
        """A closed run backs a Nexus operation: tell the caller's run how it ended, in this cluster
        (`temporal://system`) or by a POST to the caller's callback URL (`_deliver`)."""
        callbacks = ms.info.completion_callbacks
        index = data["index"]
        if ms.running or index >= len(callbacks) or not callbacks[index].HasField("nexus"):
            return
        callback = callbacks[index].nexus
        if callback.url == nexus_dispatch.SYSTEM_CALLBACK_URL:
            await self._complete_in_cluster(shard, ms, index, callback)
        elif callback.url.startswith(("http://", "https://")):
            await self._deliver(shard, ms, index, callback)
        else:
            log.warning("completion callback to %s not delivered: unsupported URL scheme", callback.url)

    async def _complete_in_cluster(self, shard: Shard, ms: MutableState, index: int, callback) -> None:
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
            problem = ""
        except NotFound as e:
            problem = e.message  # the caller's run is gone: nobody to tell

        def delivered(sms: MutableState, tr: Transition) -> None:
            state = callback_state(sms, index)
            if state.state not in FINAL_STATES:
                state.state = "failed" if problem else "succeeded"
                state.attempt, state.last_attempt_complete_time_ms, state.last_failure = 1, tr.now, problem
                tr.dirty = True

        info = ms.info
        await self._engine._update(info.namespace_id, info.workflow_id, info.run_id, delivered)

    async def _deliver(self, shard: Shard, ms: MutableState, index: int, callback) -> None:
        """POST the run's outcome to an http(s) callback URL (the reference's components/callbacks).

        As for operation starts, each attempt first commits a watchdog timer (its timeout plus the
        backoff) and then posts in the background: a node that dies mid-delivery loses nothing, the timer
        brings the delivery back on the shard's next owner. A refusal the caller says is final (a bad
        token, say) ends the delivery as failed; anything else is retried, 1 s doubling to 1 h apart."""
        info = ms.info
        timeout = CALLBACK_REQUEST_TIMEOUT_S

        def arm(sms: MutableState, tr: Transition) -> int | None:
            if sms.running or index >= len(sms.info.completion_callbacks):
                return None
            state = callback_state(sms, index)
            if state.state in FINAL_STATES:
                return None
            state.attempt += 1
            state.state = "scheduled"
            tr.timer(
                TimerKind.CALLBACK_RETRY,
                tr.now + int(timeout * 1000) + nexus_dispatch.retry_delay_ms(state.attempt),
                index=index,
                attempt=state.attempt,
            )
            tr.dirty = True
            return state.attempt

        attempt = await self._engine._update(info.namespace_id, info.workflow_id, info.run_id, arm)
        if attempt is None:
            return
        (close_event, *_) = await shard.read_events(ms, info.close_event_id)
        result, failure, canceled = nexus_dispatch.completion_of(close_event)
        started = nexus_dispatch.event_link(
            info.namespace, info.workflow_id, info.run_id, 1, "WorkflowExecutionStarted"
        )
        headers, body = nexus_http.completion_request(
            dict(callback.header),
            result,
            failure,
            canceled,
            "",
            info.start_time_ms,
            info.close_time_ms,
            [NexusLink(url=started, type=nexus_dispatch.LINK_TYPE)],
        )
        self._in_background(self._post_callback(ms, index, attempt, callback.url, headers, body, timeout))

    async def _post_callback(
        self, ms: MutableState, index: int, attempt: int, url: str, headers, body: bytes, timeout: float
    ) -> None:
        try:
            response = await self.http.post(url, headers=headers, content=body, timeout=timeout)
        except httpx.HTTPError as e:
            problem, retryable = f"request failed: {e!r}", True
        else:
            if 200 <= response.status_code < 300:
                problem, retryable = "", False
            else:
                problem, retryable = nexus_http.completion_error(response)
        if problem:
            log.info("completion callback to %s: attempt %d: %s", url, attempt, problem)

        def record(sms: MutableState, tr: Transition) -> None:
            state = callback_state(sms, index)
            if state.attempt != attempt or state.state in FINAL_STATES:
                return
            state.last_attempt_complete_time_ms = tr.now
            state.last_failure = problem
            tr.dirty = True
            if not problem:
                state.state = "succeeded"
            elif not retryable:
                state.state = "failed"
            else:
                state.state = "backing_off"
                state.next_attempt_time_ms = tr.now + nexus_dispatch.retry_delay_ms(attempt)
                tr.timer(TimerKind.CALLBACK_RETRY, state.next_attempt_time_ms, index=index, attempt=attempt)

        info = ms.info
        try:
            await self._engine._update(info.namespace_id, info.workflow_id, info.run_id, record)
        except ServiceError:
            pass  # the watchdog timer tries again

    def retry_callback(self, ms: MutableState, tr: Transition, data: dict) -> None:
        """A callback's retry timer fired: the next attempt, unless one came since or the delivery ended."""
        index = data["index"]
        if ms.running or index >= len(ms.info.callback_states):
            return
        state = ms.info.callback_states[index]
        if state.attempt == data["attempt"] and state.state not in FINAL_STATES:
            tr.transfer(TransferKind.COMPLETION_CALLBACK, index=index)

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


# How long one callback POST may take (the reference's component.callbacks.request.timeout).
CALLBACK_REQUEST_TIMEOUT_S = 10.0
FINAL_STATES = ("succeeded", "failed")
_TEMPLATE_FIELD = re.compile(r"\{\{\s*\.(NamespaceName|NamespaceID)\s*\}\}")


def fill_template(template: str, namespace: str, namespace_id: str) -> str:
    """The callback URL template with the namespace filled in (the two fields the reference offers)."""
    if not template or template == "unset":
        return ""
    values = {"NamespaceName": namespace, "NamespaceID": namespace_id}
    return _TEMPLATE_FIELD.sub(lambda m: values[m[1]], template)


def callback_state(ms: MutableState, index: int) -> CallbackState:
    states = ms.info.callback_states
    while len(states) <= index:
        states.append(CallbackState())
    return states[index]
