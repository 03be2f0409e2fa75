"""Workflow updates: the in-memory registry of updates not yet accepted, and the message protocol.

An update request is not an event: the server keeps it in memory (admitted), ships it to the worker as a
protocol message with a workflow task (sent; again with the next attempt if that task fails), and writes it to history only when the worker accepts it
(WorkflowExecutionUpdateAccepted, carrying the request) and answers it (WorkflowExecutionUpdateCompleted).
A rejection leaves no trace. Like the reference, admitted updates are lost if the server restarts; the
caller's retry admits them again. What the worker answers arrives as messages in
RespondWorkflowTaskCompleted; PROTOCOL_MESSAGE commands place the resulting events among the others.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from google.protobuf.message import Message as ProtoMessage
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure
from temporalio.api.history.v1 import (
    WorkflowExecutionUpdateAcceptedEventAttributes,
    WorkflowExecutionUpdateCompletedEventAttributes,
)
from temporalio.api.protocol.v1 import Message
from temporalio.api.update.v1 import Acceptance, Rejection, Request, Response

from hourglass.cluster.errors import WorkflowNotReady
from hourglass.cluster.history.mutable_state import MutableState, UpdateInfo, WorkflowTaskInfo

# The reference's failures for updates the server ends on the worker's behalf.
UNPROCESSED_UPDATE_FAILURE = Failure(
    message="Workflow Update is rejected because it wasn't processed by worker. "
    "Probably, Workflow Update is not supported by the worker.",
    source="Server",
    application_failure_info=ApplicationFailureInfo(type="UnprocessedUpdate", non_retryable=True),
)
ACCEPTED_UPDATE_COMPLETED_WORKFLOW_FAILURE = Failure(
    message="Workflow Update failed because the Workflow completed before the Update completed.",
    source="Server",
    application_failure_info=ApplicationFailureInfo(
        type="AcceptedUpdateCompletedWorkflow", non_retryable=True
    ),
)
# The reference's answer to any update while the run's workflow task keeps failing (attempt
# FAILING_TASK_ATTEMPT or later); Hourglass also gives it to the updates a task of that attempt carried.
WORKFLOW_TASK_FAILED_MESSAGE = (
    "Unable to perform workflow execution update due to Workflow Task in failed state."
)
FAILING_TASK_ATTEMPT = 3
# ... and to the updates of a workflow task whose completion the server refused.
WORKFLOW_TASK_COMPLETION_FAILED_MESSAGE = (
    "Unable to perform workflow execution update due to unexpected workflow task failure."
)
_BAD_MESSAGE = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_BAD_UPDATE_WORKFLOW_EXECUTION_MESSAGE
_SEQUENCE = itertools.count()


def task_identity(wt: WorkflowTaskInfo) -> tuple[int, int, int]:
    """One attempt of one workflow task (a dropped speculative task and its successor differ by start time)."""
    return (wt.scheduled_event_id, wt.attempt, wt.started_time_ms)


@dataclass
class InFlightUpdate:
    """An admitted update: in memory only, until the worker accepts or rejects it."""

    request: Request
    seq: int = field(default_factory=lambda: next(_SEQUENCE))
    # The workflow task attempt it was shipped with (None: not shipped yet).
    sent_to: tuple[int, int, int] | None = None
    # Set when the worker (or the server on its behalf) rejected it.
    rejection: Failure | None = None
    # Set when the server gave up on it (the workflow task that carried it failed): what its callers get.
    error: Exception | None = None
    # Set at every change a waiter may care about (rejection, acceptance).
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def update_id(self) -> str:
        return self.request.meta.update_id

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class UpdateRegistry:
    """The admitted updates of one run, in admission order."""

    def __init__(self) -> None:
        self._updates: dict[str, InFlightUpdate] = {}

    def __bool__(self) -> bool:
        return bool(self._updates)

    def get(self, update_id: str) -> InFlightUpdate | None:
        return self._updates.get(update_id)

    def admit(self, request: Request) -> InFlightUpdate:
        """The in-flight update with this id (a duplicate request joins it), or a new admitted one."""
        entry = self._updates.get(request.meta.update_id)
        if entry is None:
            entry = self._updates[request.meta.update_id] = InFlightUpdate(request)
        return entry

    def remove(self, update_id: str) -> None:
        self._updates.pop(update_id, None)

    def undelivered(self, wt: WorkflowTaskInfo | None = None) -> list[InFlightUpdate]:
        """Updates still to ship: never sent, or sent with a task attempt that is gone (failed, timed out)."""
        current = task_identity(wt) if wt is not None else None
        return [
            u
            for u in self._updates.values()
            if u.error is None and (u.sent_to is None or u.sent_to != current)
        ]

    def ship(self, wt: WorkflowTaskInfo) -> list[InFlightUpdate]:
        """Mark every undelivered update as sent with `wt` and return all updates sent with it, in order."""
        ident = task_identity(wt)
        for entry in self.undelivered(wt):
            entry.sent_to = ident
        return self.sent_with(wt)

    def on_task_failed(self, wt: WorkflowTaskInfo) -> Callable[[], None]:
        """The worker failed the workflow task `wt`, or it timed out. As the reference, the updates it
        carried stay admitted and the next attempt carries them again (a validator that failed the task
        once may pass on a retry, or on a fixed worker). The reference keeps carrying them for ever and,
        from attempt FAILING_TASK_ATTEMPT on, refuses every call for them, so the run is wedged; Hourglass
        gives up on them there instead (answered with that same refusal, see `abort_sent_with`), so an
        update the worker cannot handle does not fail every later task. Returns the effect to run once
        the task's failure is committed."""
        if wt.attempt < FAILING_TASK_ATTEMPT:
            return lambda: None
        return self.abort_sent_with(wt)

    def abort_sent_with(
        self, wt: WorkflowTaskInfo, message: str = WORKFLOW_TASK_FAILED_MESSAGE
    ) -> Callable[[], None]:
        """Give up on the updates the workflow task `wt` carried (not accepted: accepted ones have left
        the registry): they are answered with `message` and not carried again. The reference does so at
        once when it refuses the task's completion. Returns the effect to run once the task's failure is
        committed."""
        entries = [u for u in self.sent_with(wt) if u.error is None]

        def abort() -> None:
            for entry in entries:
                if self._updates.get(entry.update_id) is entry and entry.error is None:
                    # Kept, never shipped again: a retry of the same update id gets the same error.
                    entry.error = WorkflowNotReady(message)
                    entry.notify()

        return abort

    def sent_with(self, wt: WorkflowTaskInfo) -> list[InFlightUpdate]:
        ident = task_identity(wt)
        return sorted((u for u in self._updates.values() if u.sent_to == ident), key=lambda u: u.seq)


def request_message(entry: InFlightUpdate, sequencing_event_id: int) -> Message:
    """How the reference ships an update request: id "<update id>/request", sequenced after the event
    that precedes WorkflowTaskStarted."""
    msg = Message(
        id=f"{entry.update_id}/request",
        protocol_instance_id=entry.update_id,
        event_id=sequencing_event_id,
    )
    msg.body.Pack(entry.request)
    return msg


class ProtocolError(Exception):
    """A message the worker sent contradicts the run's updates: the workflow task fails with `cause`."""

    def __init__(self, message: str, cause: int = _BAD_MESSAGE) -> None:
        super().__init__(message)
        self.message = message
        self.cause = cause


def _unpack(msg: Message) -> ProtoMessage | None:
    for kind in (Acceptance, Rejection, Response):
        if msg.body.Is(kind.DESCRIPTOR):
            body = kind()
            msg.body.Unpack(body)
            return body
    return None


class UpdateProtocol:
    """The update messages of one workflow-task completion, applied to a transition.

    Registry changes are deferred to `effects`, run only once the transition is committed.
    """

    def __init__(
        self,
        messages: Sequence[Message],
        registry: UpdateRegistry,
        ms: MutableState,
        wt: WorkflowTaskInfo,
    ) -> None:
        self._messages = {m.id: m for m in messages}
        self._order = [m.id for m in messages]
        self._done: set[str] = set()
        self._registry = registry
        self._ms = ms
        self._sent = registry.sent_with(wt)
        self._answered: set[str] = set()
        self.effects: list[Callable[[], None]] = []

    def only_rejections(self) -> bool:
        return all(isinstance(_unpack(m), Rejection) for m in self._messages.values())

    def on_command(self, tr, message_id: str) -> None:
        """A PROTOCOL_MESSAGE command: apply the message it names here, among the other commands' events."""
        msg = self._messages.get(message_id)
        if msg is None or message_id in self._done:
            raise ProtocolError(f"ProtocolMessageCommand referenced absent message ID {message_id}.")
        self._apply(tr, msg)

    def finish(self, tr) -> None:
        """Messages no command referenced (rejections, mostly), then updates the worker ignored."""
        for message_id in self._order:
            if message_id not in self._done:
                self._apply(tr, self._messages[message_id])
        if not self._ms.running:
            return  # the run closed: in-flight updates are aborted, not rejected
        for entry in self._sent:
            if entry.update_id not in self._answered:
                self._reject(entry, UNPROCESSED_UPDATE_FAILURE)

    def _apply(self, tr, msg: Message) -> None:
        self._done.add(msg.id)
        body = _unpack(msg)
        update_id = msg.protocol_instance_id
        if isinstance(body, Acceptance):
            self._accept(tr, update_id, body)
        elif isinstance(body, Response):
            self._respond(tr, update_id or body.meta.update_id, body)
        elif isinstance(body, Rejection):
            entry = self._registry.get(update_id)
            self._answered.add(update_id)
            if entry is not None:
                self._reject(entry, body.failure)
        else:
            raise ProtocolError(f"unsupported protocol message body {msg.body.type_url}")

    def _accept(self, tr, update_id: str, acceptance: Acceptance) -> None:
        if update_id in self._ms.updates:
            raise ProtocolError(f"update {update_id} was already accepted")
        entry = self._registry.get(update_id)
        request = acceptance.accepted_request if acceptance.HasField("accepted_request") else None
        if request is None and entry is not None:
            request = entry.request
        if request is None:
            raise ProtocolError(f"update {update_id} is not in flight and the acceptance carries no request")
        attrs = WorkflowExecutionUpdateAcceptedEventAttributes(
            protocol_instance_id=update_id,
            accepted_request_message_id=acceptance.accepted_request_message_id,
            accepted_request_sequencing_event_id=acceptance.accepted_request_sequencing_event_id,
            accepted_request=request,
        )
        ev = tr.add_event(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED, attrs, bufferable=False)
        self._ms.updates[update_id] = UpdateInfo(update_id, ev.event_id)
        self._answered.add(update_id)
        if entry is not None:
            self.effects.append(lambda: self._settle(entry))

    def _respond(self, tr, update_id: str, response: Response) -> None:
        info = self._ms.updates.get(update_id)
        if info is None:
            raise ProtocolError(f"invalid state transition attempted for update {update_id}: not accepted")
        if info.completed_event_id:
            raise ProtocolError(f"update {update_id} was already completed")
        attrs = WorkflowExecutionUpdateCompletedEventAttributes(
            meta=response.meta, accepted_event_id=info.accepted_event_id, outcome=response.outcome
        )
        ev = tr.add_event(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED, attrs, bufferable=False)
        info.completed_event_id = ev.event_id
        info.completed_node_id = tr.events[0].event_id
        self._answered.add(update_id)

    def _reject(self, entry: InFlightUpdate, failure: Failure) -> None:
        def settle() -> None:
            entry.rejection = failure
            self._settle(entry)

        self.effects.append(settle)

    def _settle(self, entry: InFlightUpdate) -> None:
        if self._registry.get(entry.update_id) is entry:
            self._registry.remove(entry.update_id)
        entry.notify()
