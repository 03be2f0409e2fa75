"""A workflow task completed with a command type the API does not define: the reference's
INVALID_ARGUMENT, nothing applied, and the task still open for a proper completion (found by the fuzzer:
naming the unknown enum value used to raise INTERNAL)."""

from __future__ import annotations

import uuid

import pytest
from temporalio.api.command.v1 import Command, CompleteWorkflowExecutionCommandAttributes
from temporalio.api.enums.v1 import CommandType, EventType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    PollWorkflowTaskQueueRequest,
    RespondWorkflowTaskCompletedRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from .helpers import new_id


async def test_an_unknown_command_type_is_refused_and_nothing_is_applied(client: Client) -> None:
    service = client.workflow_service
    tq = new_id("tq-unknown-command")
    handle = await client.start_workflow("RawUnknownCommand", id=str(uuid.uuid4()), task_queue=tq)
    task = await service.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=tq), identity="raw")
    )
    bogus = RespondWorkflowTaskCompletedRequest(
        namespace="default",
        task_token=task.task_token,
        identity="raw",
        commands=[Command(command_type=2147483647)],
    )
    with pytest.raises(RPCError) as refused:
        await service.respond_workflow_task_completed(bogus)
    assert refused.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert refused.value.message == "unknown command type: 2147483647"
    # The same task still completes the workflow.
    done = Command(
        command_type=CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
        complete_workflow_execution_command_attributes=CompleteWorkflowExecutionCommandAttributes(),
    )
    await service.respond_workflow_task_completed(
        RespondWorkflowTaskCompletedRequest(
            namespace="default", task_token=task.task_token, identity="raw", commands=[done]
        )
    )
    events = [e.event_type async for e in handle.fetch_history_events()]
    assert events[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in events
