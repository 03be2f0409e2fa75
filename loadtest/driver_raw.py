"""The raw driver: answers workflow and activity tasks directly over gRPC, with no SDK worker.

What the server alone can do: a workflow task is poll -> read the history it carries -> the scenario's raw
logic picks the commands -> respond; an activity task is answered at once with its own input as result.
No replay and no data conversion; the protocol is the SDK's (sticky execution included), the work per
task is next to none. Starts, signals and result waits are plain RPCs too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta

from google.protobuf.duration_pb2 import Duration
from temporalio.api.common.v1 import WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import (
    CommandType,
    EventType,
    HistoryEventFilterType,
    TaskQueueKind,
    WorkflowTaskFailedCause,
)
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.taskqueue.v1 import StickyExecutionAttributes, TaskQueue
from temporalio.api.workflowservice.v1 import (
    GetWorkflowExecutionHistoryRequest,
    GetWorkflowExecutionHistoryResponse,
    PollActivityTaskQueueRequest,
    PollWorkflowTaskQueueRequest,
    PollWorkflowTaskQueueResponse,
    RespondActivityTaskCompletedRequest,
    RespondWorkflowTaskCompletedRequest,
    RespondWorkflowTaskFailedRequest,
    SignalWorkflowExecutionRequest,
    StartWorkflowExecutionRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode, WorkflowService

from hourglass.loadtest import commands
from hourglass.loadtest.connect import connect
from hourglass.loadtest.scenarios import RawLogic, Scenario, WorkflowTaskView
from hourglass.loadtest.workers import WorkerSpec

log = logging.getLogger(__name__)

DEFAULT_POLLERS = 16  # per queue (normal, sticky, activities) and process
HISTORY_CACHE_SIZE = 10_000  # runs whose history a process keeps for sticky tasks
STICKY_TIMEOUT = timedelta(seconds=10)
POLL_TIMEOUT = timedelta(seconds=70)  # longer than any server's long-poll
RPC_TIMEOUT = timedelta(seconds=30)
_EXPECTED_POLL_ERRORS = (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED)
_CLOSING_COMMANDS = (
    CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
    CommandType.COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION,
    CommandType.COMMAND_TYPE_CANCEL_WORKFLOW_EXECUTION,
    CommandType.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION,
)


class WorkflowClosedError(RuntimeError):
    """The workflow closed other than by completing (failed, timed out, terminated, canceled...)."""


async def serve(spec: WorkerSpec, mark_ready: Callable[[], None], stopping: asyncio.Event) -> None:
    """Run `pollers` poll loops per queue (normal, sticky, activities) until `stopping` is set."""
    scenario = spec.scenario.load()
    if scenario.raw is None:
        raise ValueError(f"scenario {scenario.name!r} runs with the sdk driver only")
    client = await connect(spec.address, spec.namespace, spec.tls, spec.api_key)
    worker = RawWorker(client.workflow_service, spec, scenario.raw)
    n = spec.pollers or DEFAULT_POLLERS
    loops = [asyncio.create_task(worker.workflow_loop(worker.normal_queue)) for _ in range(n)]
    loops += [asyncio.create_task(worker.workflow_loop(worker.sticky_queue)) for _ in range(n)]
    loops += [asyncio.create_task(worker.activity_loop()) for _ in range(n)]
    mark_ready()
    try:
        await stopping.wait()
    finally:
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)


class RawWorker:
    """The poll loops of one process.

    Like the SDK, it asks for sticky execution: a server that honours it sends the next workflow task
    of a run to this process's sticky queue with only the new events, which are appended to the
    history cached here. A task with the whole history (a server without sticky queues, or after a
    cache miss) replaces the cached one.
    """

    def __init__(self, service: WorkflowService, spec: WorkerSpec, logic: RawLogic) -> None:
        self._svc = service
        self._spec = spec
        self._logic = logic
        self._identity = f"{os.getpid()}@hourglass-loadtest-raw"
        self.normal_queue = TaskQueue(name=spec.task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL)
        self.sticky_queue = TaskQueue(
            name=f"{spec.task_queue}-sticky-{os.getpid()}-{uuid.uuid4().hex[:6]}",
            kind=TaskQueueKind.TASK_QUEUE_KIND_STICKY,
            normal_name=spec.task_queue,
        )
        self._sticky = StickyExecutionAttributes(
            worker_task_queue=self.sticky_queue, schedule_to_start_timeout=_seconds(STICKY_TIMEOUT)
        )
        self._histories: OrderedDict[str, list[HistoryEvent]] = OrderedDict()  # run id -> events

    async def workflow_loop(self, queue: TaskQueue) -> None:
        request = PollWorkflowTaskQueueRequest(
            namespace=self._spec.namespace, task_queue=queue, identity=self._identity
        )
        while True:
            try:
                task = await self._svc.poll_workflow_task_queue(request, timeout=POLL_TIMEOUT)
                if task.task_token:
                    await self._answer_workflow_task(task)
            except RPCError as err:
                await self._pause_after(err)

    async def activity_loop(self) -> None:
        request = PollActivityTaskQueueRequest(
            namespace=self._spec.namespace, task_queue=self.normal_queue, identity=self._identity
        )
        while True:
            try:
                task = await self._svc.poll_activity_task_queue(request, timeout=POLL_TIMEOUT)
                if task.task_token:
                    await self._svc.respond_activity_task_completed(
                        RespondActivityTaskCompletedRequest(
                            namespace=self._spec.namespace,
                            task_token=task.task_token,
                            result=task.input,  # echo
                            identity=self._identity,
                        ),
                        timeout=RPC_TIMEOUT,
                    )
            except RPCError as err:
                await self._pause_after(err)

    async def _history(self, task: PollWorkflowTaskQueueResponse) -> list[HistoryEvent]:
        """The run's whole history: the task's events, after the cached ones when the task has only new ones."""
        run_id = task.workflow_execution.run_id
        new = list(task.history.events)
        token = task.next_page_token
        while token:  # a long history comes in pages
            page = await self._get_history(task.workflow_execution, token)
            new.extend(page.history.events)
            token = page.next_page_token
        if not new or new[0].event_id == 1:
            return new
        cached = self._histories.pop(run_id, [])
        kept = [e for e in cached if e.event_id < new[0].event_id]
        if kept and kept[-1].event_id == new[0].event_id - 1:
            return kept + new
        events: list[HistoryEvent] = []  # not cached here (evicted, or another process had it): read it all
        token = b""
        while True:
            page = await self._get_history(task.workflow_execution, token)
            events.extend(page.history.events)
            token = page.next_page_token
            if not token:
                return events

    async def _get_history(
        self, execution: WorkflowExecution, token: bytes
    ) -> GetWorkflowExecutionHistoryResponse:
        return await self._svc.get_workflow_execution_history(
            GetWorkflowExecutionHistoryRequest(
                namespace=self._spec.namespace, execution=execution, next_page_token=token
            ),
            timeout=RPC_TIMEOUT,
        )

    async def _answer_workflow_task(self, task: PollWorkflowTaskQueueResponse) -> None:
        events = await self._history(task)
        run_id = task.workflow_execution.run_id
        view = WorkflowTaskView(
            namespace=self._spec.namespace,
            workflow_id=task.workflow_execution.workflow_id,
            workflow_type=task.workflow_type.name,
            task_queue=self._spec.task_queue,
            events=events,
        )
        try:
            decided = self._logic(view)
        except Exception as err:  # the scenario's logic is user code: fail the task, as an SDK would
            log.exception("raw logic failed on %s", view.workflow_id)
            self._histories.pop(run_id, None)
            await self._svc.respond_workflow_task_failed(
                RespondWorkflowTaskFailedRequest(
                    namespace=self._spec.namespace,
                    task_token=task.task_token,
                    cause=WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE,
                    failure=Failure(message=repr(err)),
                    identity=self._identity,
                ),
                timeout=RPC_TIMEOUT,
            )
            return
        closes = any(c.command_type in _CLOSING_COMMANDS for c in decided)
        if closes:
            self._histories.pop(run_id, None)
        else:
            self._histories[run_id] = events
            while len(self._histories) > HISTORY_CACHE_SIZE:
                self._histories.popitem(last=False)
        await self._svc.respond_workflow_task_completed(
            RespondWorkflowTaskCompletedRequest(
                namespace=self._spec.namespace,
                task_token=task.task_token,
                commands=decided,
                identity=self._identity,
                sticky_attributes=None if closes else self._sticky,
            ),
            timeout=RPC_TIMEOUT,
        )

    @staticmethod
    async def _pause_after(err: RPCError) -> None:
        """An empty long poll is normal; anything else is logged and retried after a short pause."""
        if err.status not in _EXPECTED_POLL_ERRORS:
            log.warning("raw worker RPC failed: %s %s", err.status.name, err.message)
            await asyncio.sleep(0.1)


def _seconds(value: timedelta) -> Duration:
    d = Duration()
    d.FromTimedelta(value)
    return d


class RawStarter:
    """Starts (and signals) a workflow with plain RPCs and long-polls its close event."""

    def __init__(self, client: Client, scenario: Scenario, task_queue: str) -> None:
        self._svc = client.workflow_service
        self._ns = client.namespace
        self._scenario = scenario
        self._task_queue = TaskQueue(name=task_queue)
        self._identity = f"{os.getpid()}@hourglass-loadtest-raw-starter"
        self._input = commands.payloads(*scenario.args)
        self._signal_input = commands.payloads(*scenario.signal_args)

    async def execute(self, workflow_id: str) -> None:
        await self._svc.start_workflow_execution(
            StartWorkflowExecutionRequest(
                namespace=self._ns,
                workflow_id=workflow_id,
                workflow_type=WorkflowType(name=self._scenario.workflow_type),
                task_queue=self._task_queue,
                input=self._input,
                identity=self._identity,
                request_id=str(uuid.uuid4()),
            ),
            retry=True,
            timeout=RPC_TIMEOUT,
        )
        execution = WorkflowExecution(workflow_id=workflow_id)
        if self._scenario.signal is not None:
            await self._svc.signal_workflow_execution(
                SignalWorkflowExecutionRequest(
                    namespace=self._ns,
                    workflow_execution=execution,
                    signal_name=self._scenario.signal,
                    input=self._signal_input,
                    identity=self._identity,
                    request_id=str(uuid.uuid4()),
                ),
                retry=True,
                timeout=RPC_TIMEOUT,
            )
        await self._wait_closed(execution)

    async def _wait_closed(self, execution: WorkflowExecution) -> None:
        token = b""
        while True:
            page = await self._svc.get_workflow_execution_history(
                GetWorkflowExecutionHistoryRequest(
                    namespace=self._ns,
                    execution=execution,
                    wait_new_event=True,
                    history_event_filter_type=HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT,
                    next_page_token=token,
                ),
                retry=True,
                timeout=POLL_TIMEOUT,
            )
            if page.history.events:
                _raise_unless_completed(page.history.events[-1])
                return
            token = page.next_page_token


def _raise_unless_completed(event: HistoryEvent) -> None:
    if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
        raise WorkflowClosedError(
            EventType.Name(event.event_type).removeprefix("EVENT_TYPE_WORKFLOW_EXECUTION_")
        )
