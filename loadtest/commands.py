"""Protobuf builders for the raw driver: the few commands and payloads a scenario's raw logic replies with.

The raw driver talks to the server without an SDK worker, so it builds the same messages the SDK would,
by hand and with as little work as possible (no data converter, no replay).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from google.protobuf.duration_pb2 import Duration
from temporalio.api.command.v1 import (
    Command,
    CompleteWorkflowExecutionCommandAttributes,
    ScheduleActivityTaskCommandAttributes,
    StartChildWorkflowExecutionCommandAttributes,
    StartTimerCommandAttributes,
)
from temporalio.api.common.v1 import ActivityType, Payload, Payloads, WorkflowType
from temporalio.api.enums.v1 import CommandType
from temporalio.api.taskqueue.v1 import TaskQueue

_JSON = {"encoding": b"json/plain"}

ACTIVITY_TIMEOUT = timedelta(seconds=30)


def payloads(*values: Any) -> Payloads:
    """JSON payloads, exactly as the SDK's default converter writes simple values."""
    return Payloads(
        payloads=[Payload(metadata=_JSON, data=json.dumps(v, separators=(",", ":")).encode()) for v in values]
    )


def _duration(value: timedelta) -> Duration:
    d = Duration()
    d.FromTimedelta(value)
    return d


def schedule_activity(
    activity_id: str, activity_type: str, task_queue: str, *args: Any, timeout: timedelta = ACTIVITY_TIMEOUT
) -> Command:
    return Command(
        command_type=CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
        schedule_activity_task_command_attributes=ScheduleActivityTaskCommandAttributes(
            activity_id=activity_id,
            activity_type=ActivityType(name=activity_type),
            task_queue=TaskQueue(name=task_queue),
            input=payloads(*args),
            start_to_close_timeout=_duration(timeout),
        ),
    )


def start_timer(timer_id: str, fire_after: timedelta) -> Command:
    return Command(
        command_type=CommandType.COMMAND_TYPE_START_TIMER,
        start_timer_command_attributes=StartTimerCommandAttributes(
            timer_id=timer_id, start_to_fire_timeout=_duration(fire_after)
        ),
    )


def start_child(namespace: str, workflow_id: str, workflow_type: str, task_queue: str, *args: Any) -> Command:
    return Command(
        command_type=CommandType.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION,
        start_child_workflow_execution_command_attributes=StartChildWorkflowExecutionCommandAttributes(
            namespace=namespace,
            workflow_id=workflow_id,
            workflow_type=WorkflowType(name=workflow_type),
            task_queue=TaskQueue(name=task_queue),
            input=payloads(*args),
        ),
    )


def complete_workflow(result: Any = None) -> Command:
    return Command(
        command_type=CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
        complete_workflow_execution_command_attributes=CompleteWorkflowExecutionCommandAttributes(
            result=payloads(result)
        ),
    )


def first_value(p: Payloads) -> Any:
    """The first JSON value of a Payloads (None when empty): enough to echo what a scenario was given."""
    if not p.payloads:
        return None
    return json.loads(p.payloads[0].data or b"null")
