"""Workflow updates through the official SDK: execute/start + result, validators, update-with-start,
dedup by update id, updates on closed runs, and the history each leaves (as the reference writes it)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.api.command.v1 import Command, CompleteWorkflowExecutionCommandAttributes
from temporalio.api.enums.v1 import CommandType, WorkflowTaskFailedCause
from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure
from temporalio.api.protocol.v1 import Message
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.update.v1 import Rejection, Request
from temporalio.api.workflowservice.v1 import (
    PollWorkflowTaskQueueRequest,
    RespondWorkflowTaskCompletedRequest,
    RespondWorkflowTaskFailedRequest,
)
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from .helpers import event_types, new_id, run_worker, wait_for_event
from .servers import ServerProcess
from .workflows import Counter

STARTED = "WORKFLOW_EXECUTION_STARTED"
WT = ["WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_COMPLETED"]
UPDATE = ["WORKFLOW_EXECUTION_UPDATE_ACCEPTED", "WORKFLOW_EXECUTION_UPDATE_COMPLETED"]


async def _started_counter(client: Client, tq: str):
    handle = await client.start_workflow(Counter.run, id=new_id("counter"), task_queue=tq)
    await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED")
    return handle


async def test_execute_update_returns_result_and_records_it(client: Client) -> None:
    async with run_worker(client) as tq:
        handle = await _started_counter(client, tq)
        assert await handle.execute_update(Counter.add, 5, id="first") == 5
        assert await handle.execute_update(Counter.add, 2) == 7
        assert await handle.query(Counter.value) == 7
        assert await handle.execute_update(Counter.finish) == 7
        assert await handle.result() == 7
    history = await handle.fetch_history()
    assert await event_types(handle) == [
        STARTED,
        *WT,
        *WT,
        *UPDATE,
        *WT,
        *UPDATE,
        *WT,
        *UPDATE,
        "WORKFLOW_EXECUTION_COMPLETED",
    ]
    accepted = history.events[7].workflow_execution_update_accepted_event_attributes
    assert accepted.protocol_instance_id == "first"
    assert accepted.accepted_request.meta.update_id == "first"
    assert accepted.accepted_request.input.name == "add"
    assert accepted.accepted_request_sequencing_event_id == 5
    completed = history.events[8].workflow_execution_update_completed_event_attributes
    assert (completed.meta.update_id, completed.accepted_event_id) == ("first", 8)
    assert completed.outcome.success.payloads[0].data == b"5"


async def test_start_update_then_result(client: Client) -> None:
    async with run_worker(client) as tq:
        handle = await _started_counter(client, tq)
        update = await handle.start_update(
            Counter.add_when_open, 3, wait_for_stage=WorkflowUpdateStage.ACCEPTED, id="later"
        )
        types = await event_types(handle)
        assert types[-1] == "WORKFLOW_EXECUTION_UPDATE_ACCEPTED"
        assert "WORKFLOW_EXECUTION_UPDATE_COMPLETED" not in types
        await handle.signal(Counter.open)
        assert await update.result() == 3
        # A handle made from the ids alone polls the same outcome.
        assert await handle.get_update_handle("later").result() == 3
        await handle.signal(Counter.stop)
        assert await handle.result() == 3


async def test_validator_rejection_leaves_no_trace(client: Client) -> None:
    async with run_worker(client) as tq:
        handle = await _started_counter(client, tq)
        before = await event_types(handle)
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await handle.execute_update(Counter.add, -1)
        assert isinstance(err.value.cause, ApplicationError)
        assert err.value.cause.type == "Negative"
        assert err.value.cause.message == "cannot add -1"
        # The speculative workflow task that carried the rejected update is not in history.
        assert await event_types(handle) == before == [STARTED, *WT]
        assert await handle.execute_update(Counter.add, 4) == 4
        assert await event_types(handle) == [STARTED, *WT, *WT, *UPDATE]
        await handle.signal(Counter.stop)
        assert await handle.result() == 4


async def test_update_handler_failure_is_an_outcome(client: Client) -> None:
    async with run_worker(client) as tq:
        handle = await _started_counter(client, tq)
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await handle.execute_update(Counter.fail, "boom")
        assert isinstance(err.value.cause, ApplicationError)
        assert (err.value.cause.type, err.value.cause.message) == ("UpdateFailed", "boom")
        history = await handle.fetch_history()
        assert await event_types(handle) == [STARTED, *WT, *WT, *UPDATE]
        outcome = history.events[-1].workflow_execution_update_completed_event_attributes.outcome
        assert outcome.failure.message == "boom"
        await handle.signal(Counter.stop)
        await handle.result()


async def test_same_update_id_gets_the_same_outcome(client: Client) -> None:
    async with run_worker(client) as tq:
        handle = await _started_counter(client, tq)
        assert await handle.execute_update(Counter.add, 10, id="once") == 10
        assert await handle.execute_update(Counter.add, 10, id="once") == 10
        assert await handle.query(Counter.value) == 10
        assert (await event_types(handle)).count("WORKFLOW_EXECUTION_UPDATE_ACCEPTED") == 1
        await handle.signal(Counter.stop)
        assert await handle.result() == 10


async def test_updates_on_a_completed_workflow(client: Client) -> None:
    async with run_worker(client) as tq:
        handle = await _started_counter(client, tq)
        assert await handle.execute_update(Counter.add, 1, id="before-close") == 1
        await handle.signal(Counter.stop)
        assert await handle.result() == 1
    # The outcome of an update the run completed stays readable.
    assert await handle.get_update_handle("before-close").result() == 1
    assert await handle.execute_update(Counter.add, 1, id="before-close") == 1
    with pytest.raises(RPCError) as err:
        await handle.execute_update(Counter.add, 1, id="after-close")
    assert err.value.status == RPCStatusCode.NOT_FOUND
    assert err.value.message == "workflow execution already completed"
    with pytest.raises(RPCError) as err:
        await handle.get_update_handle("never-sent").result()
    assert err.value.status == RPCStatusCode.NOT_FOUND
    assert err.value.message == 'update "never-sent" not found'


async def test_workflow_completing_fails_an_accepted_update(client: Client) -> None:
    async with run_worker(client) as tq:
        handle = await _started_counter(client, tq)
        update = await handle.start_update(
            Counter.add_when_open, 1, wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )
        await handle.signal(Counter.stop)
        assert await handle.result() == 0
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await update.result()
    assert isinstance(err.value.cause, ApplicationError)
    assert err.value.cause.type == "AcceptedUpdateCompletedWorkflow"
    assert err.value.cause.message == (
        "Workflow Update failed because the Workflow completed before the Update completed."
    )


async def test_update_sent_while_a_workflow_task_runs_goes_with_the_next(client: Client) -> None:
    tq = new_id("tq")
    handle = await client.start_workflow(Counter.run, id=new_id("in-flight"), task_queue=tq)
    # A worker took the first workflow task and is still working on it...
    task = await client.workflow_service.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=tq), identity="slow"),
        timeout=timedelta(seconds=10),
    )
    assert not task.messages
    update = asyncio.create_task(handle.execute_update(Counter.add, 6, id="waits"))
    await asyncio.sleep(0.5)
    # ... and finishes it (no commands: Counter's first activation only waits).
    await client.workflow_service.respond_workflow_task_completed(
        RespondWorkflowTaskCompletedRequest(namespace="default", task_token=task.task_token, identity="slow")
    )
    async with run_worker(client, task_queue=tq):
        assert await asyncio.wait_for(update, 20) == 6
        await handle.signal(Counter.stop)
        assert await handle.result() == 6
    assert await event_types(handle) == [
        STARTED,
        *WT,
        *WT,
        *UPDATE,
        "WORKFLOW_EXECUTION_SIGNALED",
        *WT,
        "WORKFLOW_EXECUTION_COMPLETED",
    ]


def _use_existing_counter(
    wf_id: str, tq: str, reuse: WorkflowIDReusePolicy = WorkflowIDReusePolicy.ALLOW_DUPLICATE
) -> WithStartWorkflowOperation:
    """The start half of an update-with-start of a Counter that updates the run already there."""
    return WithStartWorkflowOperation(
        Counter.run,
        id=wf_id,
        task_queue=tq,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=reuse,
    )


async def test_update_with_start(client: Client) -> None:
    wf_id = new_id("uws")
    async with run_worker(client) as tq:

        def start_op() -> WithStartWorkflowOperation:
            return _use_existing_counter(wf_id, tq)

        first = start_op()
        assert (
            await client.execute_update_with_start_workflow(Counter.add, 3, start_workflow_operation=first)
            == 3
        )
        handle = await first.workflow_handle()
        # The workflow runs: the same call now updates it.
        again = start_op()
        assert (
            await client.execute_update_with_start_workflow(Counter.add, 4, start_workflow_operation=again)
            == 7
        )
        assert (await again.workflow_handle()).result_run_id == handle.result_run_id
        update = await client.start_update_with_start_workflow(
            Counter.finish, start_workflow_operation=start_op(), wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )
        assert await update.result() == 7
        assert await handle.result() == 7
    assert await event_types(handle) == [
        STARTED,
        *WT,
        *UPDATE,
        *WT,
        *UPDATE,
        *WT,
        *UPDATE,
        "WORKFLOW_EXECUTION_COMPLETED",
    ]


async def test_update_with_start_refused_by_conflict_policy(client: Client) -> None:
    wf_id = new_id("uws-fail")
    async with run_worker(client) as tq:
        handle = await client.start_workflow(Counter.run, id=wf_id, task_queue=tq)
        start = WithStartWorkflowOperation(
            Counter.run, id=wf_id, task_queue=tq, id_conflict_policy=WorkflowIDConflictPolicy.FAIL
        )
        with pytest.raises(WorkflowAlreadyStartedError):
            await client.execute_update_with_start_workflow(Counter.add, 1, start_workflow_operation=start)
        with pytest.raises(WorkflowAlreadyStartedError):
            await start.workflow_handle()
        await handle.signal(Counter.stop)
        assert await handle.result() == 0


@pytest.mark.parametrize(
    "reuse", [WorkflowIDReusePolicy.ALLOW_DUPLICATE, WorkflowIDReusePolicy.REJECT_DUPLICATE]
)
async def test_update_with_start_does_not_attach_to_an_update_a_closed_run_left_unfinished(
    client: Client, reuse: WorkflowIDReusePolicy
) -> None:
    """The run closed with update U accepted but not completed: an update-with-start of U starts a new run
    and runs U there when the id may be reused, and is refused when it may not (the SDK suite's
    test_update_with_start_does_not_attach_to_non_completed_update_in_closed_workflow)."""
    wf_id, update_id = new_id("uws-closed"), new_id("u")
    async with run_worker(client) as tq:

        def start_op() -> WithStartWorkflowOperation:
            return _use_existing_counter(wf_id, tq, reuse)

        first = start_op()
        await client.start_update_with_start_workflow(
            Counter.add_when_open,
            1,
            id=update_id,
            start_workflow_operation=first,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )
        closed = await first.workflow_handle()
        await closed.signal(Counter.stop)
        assert await closed.result() == 0  # the update is still waiting for `open`
        second = start_op()
        if reuse == WorkflowIDReusePolicy.REJECT_DUPLICATE:
            with pytest.raises(WorkflowAlreadyStartedError):
                await client.execute_update_with_start_workflow(
                    Counter.add, 5, id=update_id, start_workflow_operation=second
                )
            return
        assert (
            await client.execute_update_with_start_workflow(
                Counter.add, 5, id=update_id, start_workflow_operation=second
            )
            == 5
        )
        assert (await second.workflow_handle()).result_run_id != closed.result_run_id


async def test_accepted_update_survives_restart(restartable_server: ServerProcess) -> None:
    srv = restartable_server
    client = await Client.connect(srv.address)
    tq = new_id("tq")
    async with run_worker(client, task_queue=tq):
        handle = await _started_counter(client, tq)
        await handle.start_update(
            Counter.add_when_open, 9, wait_for_stage=WorkflowUpdateStage.ACCEPTED, id="durable"
        )
    await srv.restart()
    client = await Client.connect(srv.address)
    handle = client.get_workflow_handle(handle.id)
    async with run_worker(client, task_queue=tq):
        await handle.signal(Counter.open)
        assert await handle.get_update_handle("durable").result() == 9
        await handle.signal(Counter.stop)
        assert await handle.result() == 9
    assert (await event_types(handle)).count("WORKFLOW_EXECUTION_UPDATE_ACCEPTED") == 1


def raw_poll(service, task_queue: str):
    """One PollWorkflowTaskQueue as a hand-written worker ("raw") sends it, waiting up to 10 s."""
    return service.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(
            namespace="default", task_queue=TaskQueue(name=task_queue), identity="raw"
        ),
        timeout=timedelta(seconds=10),
    )


async def test_raw_protocol_messages_rejection_and_abort(client: Client) -> None:
    """What a worker sees and sends, byte for byte the reference's: request messages sequenced before
    WorkflowTaskStarted, a speculative task dropped (reset_history_event_id) when only rejected, the
    server rejecting updates the worker ignored, and in-flight updates aborted when the workflow closes."""
    tq = new_id("tq")
    handle = await client.start_workflow(Counter.run, id=new_id("raw"), task_queue=tq)
    service = client.workflow_service

    def poll():
        return raw_poll(service, tq)

    async def complete(task, commands=(), messages=()):
        return await service.respond_workflow_task_completed(
            RespondWorkflowTaskCompletedRequest(
                namespace="default",
                task_token=task.task_token,
                identity="raw",
                commands=list(commands),
                messages=list(messages),
            )
        )

    first = await poll()
    await complete(first)  # events 1-4: the run waits
    rejected = asyncio.create_task(handle.execute_update(Counter.add, 1, id="to-reject"))
    task = await poll()
    # The speculative task's events (5, 6) are in the poll response, the request sequenced after 5.
    assert [e.event_id for e in task.history.events] == [1, 2, 3, 4, 5, 6]
    (message,) = task.messages
    assert (message.id, message.protocol_instance_id, message.event_id) == (
        "to-reject/request",
        "to-reject",
        5,
    )
    request = Request()
    assert message.body.Unpack(request) and request.input.name == "add"
    rejection = Message(id="r1", protocol_instance_id="to-reject", event_id=5)
    rejection.body.Pack(
        Rejection(
            rejected_request_message_id=message.id,
            rejected_request_sequencing_event_id=5,
            rejected_request=request,
            failure=Failure(
                message="no thanks", application_failure_info=ApplicationFailureInfo(type="Nope")
            ),
        )
    )
    response = await complete(task, messages=[rejection])
    assert response.reset_history_event_id == 3
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await rejected
    assert isinstance(err.value.cause, ApplicationError) and err.value.cause.message == "no thanks"
    assert await event_types(handle) == [STARTED, *WT]

    # An update the worker neither accepts nor rejects is rejected for it.
    ignored = asyncio.create_task(handle.execute_update(Counter.add, 2, id="ignored"))
    task = await poll()
    assert [m.protocol_instance_id for m in task.messages] == ["ignored"]
    await complete(task)
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await ignored
    assert isinstance(err.value.cause, ApplicationError) and err.value.cause.type == "UnprocessedUpdate"

    # An update in flight when the workflow completes is aborted.
    aborted = asyncio.create_task(handle.execute_update(Counter.add, 3, id="aborted"))
    task = await poll()
    assert [m.protocol_instance_id for m in task.messages] == ["aborted"]
    await complete(
        task,
        [
            Command(
                command_type=CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
                complete_workflow_execution_command_attributes=CompleteWorkflowExecutionCommandAttributes(),
            )
        ],
    )
    with pytest.raises(RPCError) as rpc_err:
        await aborted
    assert rpc_err.value.status == RPCStatusCode.NOT_FOUND
    assert rpc_err.value.message == "workflow update was aborted by closing workflow"
    assert await event_types(handle) == [STARTED, *WT, *WT, "WORKFLOW_EXECUTION_COMPLETED"]


async def counter_past_its_first_task(client: Client, name: str):
    """A Counter run on a fresh queue whose first workflow task a hand-written worker has completed
    (nothing pending): where an update comes next. Its handle and task queue."""
    tq = new_id("tq")
    handle = await client.start_workflow(Counter.run, id=new_id(name), task_queue=tq)
    first = await raw_poll(client.workflow_service, tq)
    await client.workflow_service.respond_workflow_task_completed(
        RespondWorkflowTaskCompletedRequest(namespace="default", task_token=first.task_token, identity="raw")
    )
    return handle, tq


async def test_signal_while_speculative_task_runs_writes_it_to_history(client: Client) -> None:
    """A write during a speculative task (a signal) puts its events into history: a rejection then
    completes it like any task, and the signal gets a task of its own."""
    handle, tq = await counter_past_its_first_task(client, "spec-signal")
    service = client.workflow_service

    def poll():
        return raw_poll(service, tq)

    update = asyncio.create_task(handle.execute_update(Counter.add, 1, id="spec"))
    task = await poll()
    (message,) = task.messages
    await handle.signal(Counter.open)
    rejection = Message(id="r", protocol_instance_id="spec", event_id=message.event_id)
    rejection.body.Pack(Rejection(rejected_request_message_id=message.id, failure=Failure(message="no")))
    response = await service.respond_workflow_task_completed(
        RespondWorkflowTaskCompletedRequest(
            namespace="default", task_token=task.task_token, identity="raw", messages=[rejection]
        )
    )
    assert response.reset_history_event_id == 0
    with pytest.raises(WorkflowUpdateFailedError):
        await update
    assert await event_types(handle) == [
        STARTED,
        *WT,
        *WT,
        "WORKFLOW_EXECUTION_SIGNALED",
        "WORKFLOW_TASK_SCHEDULED",
    ]
    await handle.terminate()


async def test_update_is_carried_again_by_the_next_attempt_of_a_failed_task(client: Client) -> None:
    """A worker that fails the workflow task carrying an update (a validator that ran a command, a
    handler that raised) gets the same update again with the next attempt, as the reference does: the
    update stays admitted, its caller keeps waiting, and the attempt that handles it answers it."""
    handle, tq = await counter_past_its_first_task(client, "retried")
    service = client.workflow_service

    def poll():
        return raw_poll(service, tq)

    update = asyncio.create_task(handle.execute_update(Counter.add, 4, id="retried"))
    for attempt in (1, 2):
        task = await poll()
        assert task.attempt == attempt
        (message,) = task.messages
        assert (message.id, message.protocol_instance_id) == ("retried/request", "retried")
        await service.respond_workflow_task_failed(
            RespondWorkflowTaskFailedRequest(
                namespace="default",
                task_token=task.task_token,
                identity="raw",
                cause=WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE,
                failure=Failure(message=f"validator ran a command (attempt {attempt})"),
            )
        )
        assert not update.done()
    task = await poll()
    assert task.attempt == 3
    (message,) = task.messages
    request = Request()
    assert message.body.Unpack(request) and request.meta.update_id == "retried"
    rejection = Message(id="r", protocol_instance_id="retried", event_id=message.event_id)
    rejection.body.Pack(
        Rejection(
            rejected_request_message_id=message.id,
            rejected_request_sequencing_event_id=message.event_id,
            rejected_request=request,
            failure=Failure(
                message="fixed worker says no", application_failure_info=ApplicationFailureInfo()
            ),
        )
    )
    await service.respond_workflow_task_completed(
        RespondWorkflowTaskCompletedRequest(
            namespace="default", task_token=task.task_token, identity="raw", messages=[rejection]
        )
    )
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await asyncio.wait_for(update, 10)
    assert isinstance(err.value.cause, ApplicationError)
    assert err.value.cause.message == "fixed worker says no"
    # The first failure is in history (the speculative task became a normal one); the later attempts are
    # transient: the rejecting one is written as a completed task.
    assert await event_types(handle) == [
        STARTED,
        *WT,
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_FAILED",
        *WT,
    ]
    await handle.terminate()
