"""Frontend checks of the activity operator APIs, and the `*ActivityExecution` forms the CLI sends.

PauseActivity, UnpauseActivity, ResetActivity and UpdateActivityOptions name a workflow's activity by id,
type or all. The newer PauseActivityExecution, UnpauseActivityExecution, ResetActivityExecution and
UpdateActivityExecutionOptions (what `temporal activity pause|unpause|reset|update-options` call) name one
by workflow id and activity id; the reference turns them into the former, and so does this module. Without
a workflow id they name a standalone activity, which this server has none of. Each check is the
reference's, in its order, with its message.
"""

from __future__ import annotations

import uuid

from google.protobuf.duration_pb2 import Duration
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from hourglass.cluster.errors import InvalidArgument
from hourglass.cluster.frontend.validation import MAX_ID_LENGTH, check_priority
from hourglass.cluster.history import activity_ops, standalone_ids
from hourglass.cluster.history.transition import default_retry_policy

# The update_mask paths UpdateActivityExecutionOptions accepts (camelCase, as the reference lists them).
SUPPORTED_UPDATE_PATHS = frozenset(
    {
        "taskQueue.name",
        "scheduleToCloseTimeout",
        "scheduleToStartTimeout",
        "startToCloseTimeout",
        "heartbeatTimeout",
        "priority",
        "priority.priorityKey",
        "priority.fairnessKey",
        "priority.fairnessWeight",
        "retryPolicy",
        "retryPolicy.initialInterval",
        "retryPolicy.backoffCoefficient",
        "retryPolicy.maximumInterval",
        "retryPolicy.maximumAttempts",
        "startDelay",
    }
)


# ---- PauseActivity, UnpauseActivity, ResetActivity, UpdateActivityOptions ---------------------------------
def check_request(request) -> None:
    if not request.execution.workflow_id:
        raise InvalidArgument("WorkflowId is not set on request.")
    if request.WhichOneof("activity") is None:
        raise InvalidArgument(activity_ops.ACTIVITY_NOT_SET)
    if isinstance(request, rr.UpdateActivityOptionsRequest):
        check_priority(request.activity_options.priority)
        activity_ops.check_update_request(request)
    if request.execution.run_id and not _is_uuid(request.execution.run_id):
        raise InvalidArgument("RunId is not valid UUID.")


# ---- the *ActivityExecution forms ----------------------------------------------------------------------
def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _negative(d: Duration) -> bool:
    return d.seconds < 0 or d.nanos < 0


def check_execution_request(request) -> None:
    """What the reference checks first in every *ActivityExecution request (it gives a missing request id
    one, so a repeated pause without one is a second pause)."""
    if not request.request_id:
        request.request_id = str(uuid.uuid4())
    if len(request.request_id) > MAX_ID_LENGTH:
        raise InvalidArgument(
            f"request ID exceeds length limit. Length={len(request.request_id)} Limit={MAX_ID_LENGTH}"
        )
    if not request.activity_id:
        raise InvalidArgument("activity ID is required")
    if len(request.activity_id) > MAX_ID_LENGTH:
        raise InvalidArgument(
            f"activity ID exceeds length limit. Length={len(request.activity_id)} Limit={MAX_ID_LENGTH}"
        )
    if len(request.identity) > MAX_ID_LENGTH:
        raise InvalidArgument(
            f"identity exceeds length limit. Length={len(request.identity)} Limit={MAX_ID_LENGTH}"
        )
    if request.run_id and not _is_uuid(request.run_id):
        raise InvalidArgument("invalid run id: must be a valid UUID")
    if hasattr(request, "jitter") and _negative(request.jitter):
        raise InvalidArgument("invalid jitter: negative duration")
    if isinstance(request, rr.UpdateActivityExecutionOptionsRequest):
        _check_update_execution_request(request)


def _check_update_execution_request(request: rr.UpdateActivityExecutionOptionsRequest) -> None:
    """UpdateActivityExecutionOptions' own checks of the mask and the options (the masked fields only); a
    whole retry policy gets the server's defaults for what it leaves out, as on the reference."""
    paths = list(request.update_mask.paths)
    if paths and request.restore_original:
        raise InvalidArgument("Both UpdateMask and RestoreOriginal are provided")
    if request.restore_original:
        return
    if not request.HasField("activity_options"):
        raise InvalidArgument("ActivityOptions are not provided")
    if not request.HasField("update_mask"):
        raise InvalidArgument("UpdateMask is not provided")
    if not paths:
        raise InvalidArgument("UpdateMask must specify at least one path")
    for path in paths:
        if activity_ops.camel_path(path) not in SUPPORTED_UPDATE_PATHS:
            raise InvalidArgument(f'unsupported update_mask path: "{path}"')
    opts = request.activity_options
    fields = activity_ops.camel_paths(request.update_mask)
    if "taskQueue.name" in fields:
        if not opts.HasField("task_queue"):
            raise InvalidArgument("taskQueue is not set")
        if not opts.task_queue.name:
            raise InvalidArgument("missing task queue name")
        if len(opts.task_queue.name) > MAX_ID_LENGTH:
            raise InvalidArgument("taskQueue length exceeds limit")
        if opts.task_queue.name.startswith("/_sys/"):
            raise InvalidArgument("task queue name cannot start with reserved prefix /_sys/")
    for path, name, field in (
        ("scheduleToCloseTimeout", "ScheduleToCloseTimeout", opts.schedule_to_close_timeout),
        ("scheduleToStartTimeout", "ScheduleToStartTimeout", opts.schedule_to_start_timeout),
        ("startToCloseTimeout", "StartToCloseTimeout", opts.start_to_close_timeout),
        ("heartbeatTimeout", "HeartbeatTimeout", opts.heartbeat_timeout),
    ):
        if path in fields and _negative(field):
            raise InvalidArgument(f"invalid {name}: negative duration")
    if "priority" in fields:
        check_priority(opts.priority)
    if "priority.priorityKey" in fields and opts.priority.priority_key < 0:
        raise InvalidArgument("priority key can't be negative")
    if "priority.fairnessKey" in fields and len(opts.priority.fairness_key) > 64:
        raise InvalidArgument("fairness key length exceeds limit")
    if "priority.fairnessWeight" in fields and opts.priority.fairness_weight < 0:
        raise InvalidArgument("must be greater than zero")
    if "retryPolicy" in fields:
        opts.retry_policy.CopyFrom(default_retry_policy(opts.retry_policy))
        activity_ops.validate_retry_policy(opts.retry_policy)
    policy = opts.retry_policy
    if "retryPolicy.initialInterval" in fields and _negative(policy.initial_interval):
        raise InvalidArgument("invalid InitialInterval set on retry policy: negative duration")
    if "retryPolicy.backoffCoefficient" in fields and policy.backoff_coefficient < 1:
        raise InvalidArgument("BackoffCoefficient cannot be less than 1 on retry policy.")
    if "retryPolicy.maximumInterval" in fields and _negative(policy.maximum_interval):
        raise InvalidArgument("invalid MaximumInterval set on retry policy: negative duration")
    if "retryPolicy.maximumAttempts" in fields and policy.maximum_attempts < 0:
        raise InvalidArgument("MaximumAttempts cannot be negative on retry policy.")


def require_workflow_activity(request) -> WorkflowExecution:
    """The workflow the request names; without one it names a standalone activity: its hidden run (see
    history/standalone_ids.py), whose one activity has the same id."""
    if not request.workflow_id:
        return WorkflowExecution(
            workflow_id=standalone_ids.workflow_id(request.activity_id), run_id=request.run_id
        )
    return WorkflowExecution(workflow_id=request.workflow_id, run_id=request.run_id)


def as_pause(request: rr.PauseActivityExecutionRequest) -> rr.PauseActivityRequest:
    return rr.PauseActivityRequest(
        namespace=request.namespace,
        execution=require_workflow_activity(request),
        id=request.activity_id,
        reason=request.reason,
        identity=request.identity,
        request_id=request.request_id,
    )


def as_unpause(request: rr.UnpauseActivityExecutionRequest) -> rr.UnpauseActivityRequest:
    return rr.UnpauseActivityRequest(
        namespace=request.namespace,
        execution=require_workflow_activity(request),
        id=request.activity_id,
        jitter=request.jitter,
        identity=request.identity,
    )


def as_reset(request: rr.ResetActivityExecutionRequest) -> rr.ResetActivityRequest:
    return rr.ResetActivityRequest(
        namespace=request.namespace,
        execution=require_workflow_activity(request),
        id=request.activity_id,
        reset_heartbeat=request.reset_heartbeat,
        restore_original_options=request.restore_original_options,
        keep_paused=request.keep_paused,
        jitter=request.jitter,
        identity=request.identity,
    )


def as_update(request: rr.UpdateActivityExecutionOptionsRequest) -> rr.UpdateActivityOptionsRequest:
    update = rr.UpdateActivityOptionsRequest(
        namespace=request.namespace,
        execution=require_workflow_activity(request),
        id=request.activity_id,
        restore_original=request.restore_original,
        identity=request.identity,
    )
    if request.HasField("activity_options"):
        update.activity_options.CopyFrom(request.activity_options)
    if request.HasField("update_mask"):
        update.update_mask.CopyFrom(request.update_mask)
    return update
