"""Request validation with the messages the reference gives, so clients see familiar errors."""

from __future__ import annotations

import logging
import uuid

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from temporalio.api.common.v1 import Priority, WorkflowExecution
from temporalio.api.enums.v1 import CommandType, WorkflowIdConflictPolicy, WorkflowIdReusePolicy

from hourglass.cluster.errors import InvalidArgument
from hourglass.cluster.frontend.callbacks import check_completion_callbacks
from hourglass.cluster.history import standalone_ids
from hourglass.cluster.history.commands import RESERVED_TASK_QUEUE_PREFIX
from hourglass.cluster.history.cron import cron_error
from hourglass.cluster.history.limits import LIMITS
from hourglass.cluster.history.retry import retry_policy_error

log = logging.getLogger(__name__)

MAX_ID_LENGTH = 1000


# The reference's limit on namespace names (its namespace validator interceptor checks every request).
MAX_NAMESPACE_LENGTH = 1000


def check_namespace_length(request) -> None:
    """Every request naming a namespace: a name past the limit is refused before anything echoes it."""
    namespace = getattr(request, "namespace", "")
    if isinstance(namespace, str) and len(namespace) > MAX_NAMESPACE_LENGTH:
        raise InvalidArgument("Namespace length exceeds limit.")


def require_id(value: str, field_name: str) -> None:
    if not value:
        raise InvalidArgument(f"{field_name} is not set on request.")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgument(f"{field_name} length exceeds limit.")


def require_workflow_id(value: str) -> None:
    if not value:
        raise InvalidArgument("WorkflowId is not set on request.")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgument(f"WorkflowId exceeds maximum allowed length ({len(value)}/{MAX_ID_LENGTH})")
    if standalone_ids.is_hidden(value):
        # Standalone activities and Nexus operations are kept as runs under these prefixes: no workflow may
        # take or name one.
        prefix = next(p for p in standalone_ids.RESERVED_PREFIXES if value.startswith(p))
        raise InvalidArgument(f"WorkflowId cannot start with the reserved prefix {prefix}")


def require_task_queue(name: str) -> None:
    if not name:
        raise InvalidArgument("missing task queue name")
    if len(name) > MAX_ID_LENGTH:
        raise InvalidArgument("taskQueue length exceeds limit")


def require_user_task_queue(name: str) -> None:
    """A task queue a workflow is started on: not one of the server's own (polls and describes may name
    a partition, `/_sys/<name>/<n>`, as on the reference)."""
    require_task_queue(name)
    if name.startswith(RESERVED_TASK_QUEUE_PREFIX):
        raise InvalidArgument(
            f"task queue name cannot start with reserved prefix {RESERVED_TASK_QUEUE_PREFIX}"
        )


def require_execution(request, field_name: str = "workflow_execution") -> WorkflowExecution:
    """The request's execution: present, with a workflow id and, if given, a well-formed run id."""
    if not request.HasField(field_name):
        raise InvalidArgument("Execution is not set on request.")
    execution = getattr(request, field_name)
    require_workflow_id(execution.workflow_id)
    if execution.run_id:
        try:
            uuid.UUID(execution.run_id)
        except ValueError:
            raise InvalidArgument("Invalid RunId.") from None
    return execution


def check_priority(p: Priority) -> None:
    """The reference's priority checks (priorities.Validate)."""
    if p.priority_key < 0:
        raise InvalidArgument("priority key can't be negative")
    if len(p.fairness_key) > 64:
        raise InvalidArgument("fairness key length exceeds limit")
    if p.fairness_weight < 0:
        raise InvalidArgument("must be greater than zero")


def require_non_negative(d: Duration, field_name: str) -> None:
    if d.seconds < 0 or d.nanos < 0:
        raise InvalidArgument(f"An invalid {field_name}Seconds is set on request. cause: negative duration")


def check_retry_policy(request, field_name: str = "retry_policy") -> None:
    """The reference's retry policy checks, so a policy cannot make a run retry without pause."""
    if request.HasField(field_name):
        problem = retry_policy_error(getattr(request, field_name))
        if problem is not None:
            raise InvalidArgument(problem)


def check_blob_size(message: Message | None, limit: int, what: str = "Blob data") -> None:
    """The reference's blob limits: over `limit` refused; over `limit.blobSize.warn` logged."""
    if message is None:
        return
    size = message.ByteSize()
    if size > limit:
        raise InvalidArgument(f"{what} size exceeds limit.")
    if size > LIMITS.blob_size_warn_bytes:
        log.info("%s size %d exceeds the warning limit of %d bytes", what, size, LIMITS.blob_size_warn_bytes)


def check_start_request(request, limit: int) -> None:
    """Fields shared by StartWorkflowExecution and SignalWithStartWorkflowExecution."""
    require_workflow_id(request.workflow_id)
    if not request.workflow_type.name:
        raise InvalidArgument("WorkflowType is not set on request.")
    if len(request.workflow_type.name) > MAX_ID_LENGTH:
        raise InvalidArgument("WorkflowType length exceeds limit.")
    require_user_task_queue(request.task_queue.name)
    if len(request.request_id) > MAX_ID_LENGTH:
        raise InvalidArgument("RequestId length exceeds limit.")
    if (
        request.workflow_id_reuse_policy
        == WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING
        and request.workflow_id_conflict_policy
    ):
        raise InvalidArgument(
            "Invalid WorkflowIDReusePolicy: WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING cannot be used "
            "together with a WorkflowIDConflictPolicy"
        )
    if "completion_callbacks" in request.DESCRIPTOR.fields_by_name:
        check_completion_callbacks(request.completion_callbacks)
    require_non_negative(request.workflow_execution_timeout, "WorkflowExecutionTimeout")
    require_non_negative(request.workflow_run_timeout, "WorkflowRunTimeout")
    require_non_negative(request.workflow_task_timeout, "WorkflowTaskTimeout")
    require_non_negative(request.workflow_start_delay, "WorkflowStartDelay")
    check_retry_policy(request)
    if request.cron_schedule:
        problem = cron_error(request.cron_schedule)
        if problem is not None:
            raise InvalidArgument(problem)
    if request.HasField("input"):
        check_blob_size(request.input, limit)
    if request.HasField("memo"):
        check_blob_size(request.memo, limit, "Memo")


def check_signal_with_start_policies(request) -> None:
    """SignalWithStart always signals a running workflow: failing on it is not an option (reference)."""
    if request.workflow_id_conflict_policy == WorkflowIdConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_FAIL:
        raise InvalidArgument(
            "Invalid WorkflowIDConflictPolicy: WORKFLOW_ID_CONFLICT_POLICY_FAIL is not supported for this "
            "operation."
        )


def check_update_request(request, limit: int) -> None:
    """The update.v1.Request inside UpdateWorkflowExecution (an empty update id gets a generated one)."""
    if not request.HasField("request") or not request.request.HasField("meta"):
        raise InvalidArgument("Update meta is not set on request.")
    if not request.request.HasField("input"):
        raise InvalidArgument("Update input is not set on request.")
    if not request.request.input.name:
        raise InvalidArgument("Update name is not set on request.")
    if not request.request.meta.update_id:
        request.request.meta.update_id = str(uuid.uuid4())
    if len(request.request.meta.update_id) > MAX_ID_LENGTH:
        raise InvalidArgument("UpdateId length exceeds limit.")
    check_blob_size(request.request.input.args, limit)


def check_command_types(commands) -> None:
    """A command type this API does not define is the client's mistake, refused before anything is
    applied (the reference's "unknown command type")."""
    for command in commands:
        if command.command_type not in CommandType.values():
            raise InvalidArgument(f"unknown command type: {command.command_type}")
