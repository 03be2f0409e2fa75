"""A task token names its namespace: presented in a request naming another namespace, it is refused.

The reference checks this in its namespace validator (INVALID_ARGUMENT "Operation requested with a token
from a different namespace."), before the task is looked at; the activity or workflow task stays as it
was for the worker of its own namespace.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.command.v1 import Command, ScheduleActivityTaskCommandAttributes
from temporalio.api.common.v1 import ActivityType, Payload, Payloads
from temporalio.api.enums.v1 import CommandType, EventType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    PollActivityTaskQueueRequest,
    PollWorkflowTaskQueueRequest,
    RecordActivityTaskHeartbeatRequest,
    RegisterNamespaceRequest,
    RespondActivityTaskCompletedRequest,
    RespondWorkflowTaskCompletedRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from .helpers import new_id

MISMATCH = "Operation requested with a token from a different namespace."
RESULT = Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=b'"done"')])


@pytest.fixture(scope="module")
async def other_namespace(server) -> str:
    """A second namespace of the server under test (the reference wants a retention of a day or more)."""
    client = await Client.connect(server.address, namespace="default")
    name = new_id("other")
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=name, workflow_execution_retention_period=Duration(seconds=86400))
    )
    return name


def _schedule_activity(tq: str) -> Command:
    return Command(
        command_type=CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
        schedule_activity_task_command_attributes=ScheduleActivityTaskCommandAttributes(
            activity_id="a1",
            activity_type=ActivityType(name="raw-activity"),
            task_queue=TaskQueue(name=tq),
            start_to_close_timeout=Duration(seconds=60),
        ),
    )


async def _refused(call) -> tuple[RPCStatusCode, str]:
    with pytest.raises(RPCError) as info:
        await call
    return info.value.status, info.value.message


async def test_tokens_are_refused_through_another_namespace(client: Client, other_namespace: str) -> None:
    service = client.workflow_service
    tq = new_id("tokens")
    handle = await client.start_workflow("RawTokens", id=str(uuid.uuid4()), task_queue=tq)
    workflow_task = await service.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=tq), identity="raw"),
        timeout=timedelta(seconds=10),
    )
    respond = RespondWorkflowTaskCompletedRequest(
        task_token=workflow_task.task_token, identity="raw", commands=[_schedule_activity(tq)]
    )
    respond.namespace = other_namespace
    assert await _refused(service.respond_workflow_task_completed(respond)) == (
        RPCStatusCode.INVALID_ARGUMENT,
        MISMATCH,
    )
    respond.namespace = "default"
    await service.respond_workflow_task_completed(respond)

    activity_task = await service.poll_activity_task_queue(
        PollActivityTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=tq), identity="raw"),
        timeout=timedelta(seconds=10),
    )
    token = activity_task.task_token
    for call in (
        service.respond_activity_task_completed(
            RespondActivityTaskCompletedRequest(
                namespace=other_namespace, task_token=token, identity="raw", result=RESULT
            )
        ),
        service.record_activity_task_heartbeat(
            RecordActivityTaskHeartbeatRequest(namespace=other_namespace, task_token=token, identity="raw")
        ),
    ):
        assert await _refused(call) == (RPCStatusCode.INVALID_ARGUMENT, MISMATCH)
    pending = (await handle.describe()).raw_description.pending_activities
    assert [(p.activity_id, p.attempt) for p in pending] == [("a1", 1)]

    # The token still works in its own namespace, and the request may leave the namespace out.
    await service.respond_activity_task_completed(
        RespondActivityTaskCompletedRequest(task_token=token, identity="raw", result=RESULT)
    )
    events = [e.event_type for e in (await handle.fetch_history()).events]
    assert events.count(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) == 1
    await handle.terminate()
