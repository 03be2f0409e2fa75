"""Request validation with the messages the reference gives, so clients see familiar errors."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message

from hourglass.cluster.errors import InvalidArgument
from hourglass.cluster.history.cron import valid_cron

MAX_ID_LENGTH = 1000


def require_id(value: str, field_name: str) -> None:
    if not value:
        raise InvalidArgument(f"{field_name} is not set on request.")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgument(f"{field_name} length exceeds limit.")


def require_non_negative(d: Duration, field_name: str) -> None:
    if d.seconds < 0 or d.nanos < 0:
        raise InvalidArgument(f"Invalid {field_name}: it must not be negative.")


def check_blob_size(message: Message | None, limit: int, what: str = "Blob data") -> None:
    if message is not None and message.ByteSize() > limit:
        raise InvalidArgument(f"{what} size exceeds limit.")


def check_start_request(request, limit: int) -> None:
    """Fields shared by StartWorkflowExecution and SignalWithStartWorkflowExecution."""
    require_id(request.workflow_id, "WorkflowId")
    if not request.workflow_type.name:
        raise InvalidArgument("WorkflowType is not set on request.")
    if len(request.workflow_type.name) > MAX_ID_LENGTH:
        raise InvalidArgument("WorkflowType length exceeds limit.")
    if not request.task_queue.name:
        raise InvalidArgument("TaskQueue is not set on request.")
    if len(request.task_queue.name) > MAX_ID_LENGTH:
        raise InvalidArgument("TaskQueue length exceeds limit.")
    if len(request.request_id) > MAX_ID_LENGTH:
        raise InvalidArgument("RequestId length exceeds limit.")
    require_non_negative(request.workflow_execution_timeout, "WorkflowExecutionTimeout")
    require_non_negative(request.workflow_run_timeout, "WorkflowRunTimeout")
    require_non_negative(request.workflow_task_timeout, "WorkflowTaskTimeout")
    if request.cron_schedule and not valid_cron(request.cron_schedule):
        raise InvalidArgument(f"Invalid CronSchedule: {request.cron_schedule!r}.")
    if request.HasField("input"):
        check_blob_size(request.input, limit)
    if request.HasField("memo"):
        check_blob_size(request.memo, limit, "Memo")
