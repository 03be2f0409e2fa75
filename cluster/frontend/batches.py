"""The batch operation RPCs of WorkflowService: the reference's checks and messages, then the batch engine
(cluster/batcher), on the member that owns the batch's shard: `engine` is the BatchEngine on a single
node, its routing proxy in a cluster (cluster/routing.py)."""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import ExecutionType, ResetType
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from hourglass.cluster.batcher.engine import describe_response, list_response
from hourglass.cluster.errors import InvalidArgument
from hourglass.cluster.frontend.namespaces import NamespaceRegistry
from hourglass.cluster.frontend.search_attributes import SearchAttributeRegistry
from hourglass.cluster.frontend.validation import require_id

# The reference's frontend.visibilityMaxPageSize: ListBatchOperations' page when none (or more) is asked.
MAX_PAGE_SIZE = 1000
EXECUTION_TYPE_WORKFLOW = ExecutionType.EXECUTION_TYPE_WORKFLOW
_ACTIVITY_TYPE_OR_ALL = "Either activity type must be set, or match all should be set to true"


_STANDALONE_ACTIVITY_OPERATIONS = {
    "terminate_activities_operation": "TerminateActivitiesOperation",
    "cancel_activities_operation": "CancelActivitiesOperation",
    "delete_activities_operation": "DeleteActivitiesOperation",
}


def check_request(request: rr.StartBatchOperationRequest) -> None:
    """The reference's checks (its frontend's, then ValidateBatchOperation), in its order and with its
    messages."""
    operation = request.WhichOneof("operation")
    if operation in _STANDALONE_ACTIVITY_OPERATIONS:
        # Batches over standalone activity executions: not enabled here (nor on the reference's default).
        name = _STANDALONE_ACTIVITY_OPERATIONS[operation]
        raise InvalidArgument(
            f"The operation type *workflowservice.StartBatchOperationRequest_{name} is not supported for this namespace"
        )
    selectors = sum(1 for x in (request.visibility_query, request.executions, request.target_executions) if x)
    if operation is None or not request.reason or not request.namespace or selectors == 0:
        raise InvalidArgument(
            "must provide required parameters: BatchType,Reason,Namespace, AND one of "
            "(Query OR Executions OR TargetExecutions)"
        )
    if not request.job_id:
        raise InvalidArgument("JobId is not set on request.")
    if selectors > 1:
        raise InvalidArgument("visibility query, executions, and target executions are mutually exclusive")
    for i, execution in enumerate(request.target_executions):
        if execution.type != EXECUTION_TYPE_WORKFLOW:
            raise InvalidArgument(
                f"target_executions[{i}] has type {ExecutionType.Name(execution.type)}, but operation "
                f"*workflowservice.StartBatchOperationRequest_{_go_name(operation)} requires EXECUTION_TYPE_WORKFLOW"
            )
    if operation == "signal_operation" and not request.signal_operation.signal:
        raise InvalidArgument("must provide signal name")
    if operation == "update_workflow_options_operation":
        op = request.update_workflow_options_operation
        if not op.HasField("workflow_execution_options"):
            raise InvalidArgument("must provide UpdateOptions")
        if not op.HasField("update_mask"):
            raise InvalidArgument("must provide UpdateMask")
    if operation == "reset_operation":
        op = request.reset_operation
        if op.HasField("options"):
            if op.options.WhichOneof("target") is None:
                raise InvalidArgument("batch reset missing target")
        elif op.reset_type not in ResetType.values() or op.reset_type == 0:
            name = (
                ResetType.Name(op.reset_type) if op.reset_type in ResetType.values() else str(op.reset_type)
            )
            raise InvalidArgument(f"unknown batch reset type {name}")
    if operation == "unpause_activities_operation":
        op = request.unpause_activities_operation
        which = op.WhichOneof("activity")
        if which is None:
            raise InvalidArgument("activity filter must be set")
        if (which == "type" and not op.type) or (which == "match_all" and not op.match_all):
            raise InvalidArgument(_ACTIVITY_TYPE_OR_ALL)
    if operation == "reset_activities_operation":
        op = request.reset_activities_operation
        which = op.WhichOneof("activity")
        if which is None:
            raise InvalidArgument("must provide ActivityType or MatchAll")
        if (which == "type" and not op.type) or (which == "match_all" and not op.match_all):
            raise InvalidArgument(_ACTIVITY_TYPE_OR_ALL)
    if operation == "update_activity_options_operation":
        op = request.update_activity_options_operation
        if op.HasField("activity_options") and op.restore_original:
            raise InvalidArgument("cannot set both activity options and restore original")
        if not op.HasField("activity_options") and not op.restore_original:
            raise InvalidArgument(
                "Either activity type must be set, or restore original should be set to true"
            )
        which = op.WhichOneof("activity")
        if (which == "type" and not op.type) or (which == "match_all" and not op.match_all):
            raise InvalidArgument(_ACTIVITY_TYPE_OR_ALL)


def _go_name(field: str) -> str:
    return "".join(part.capitalize() for part in field.split("_"))


class BatchHandlers:
    """WorkflowService delegates its batch operation RPCs here."""

    def __init__(
        self,
        namespaces: NamespaceRegistry,
        engine: Any,
        search_attributes: SearchAttributeRegistry,
        frontend: Any,
    ) -> None:
        self.namespaces = namespaces
        self.engine = engine
        self.search_attributes = search_attributes
        self.frontend = frontend

    async def start(self, request: rr.StartBatchOperationRequest) -> rr.StartBatchOperationResponse:
        check_request(request)
        ns = await self.namespaces.get(request.namespace)
        require_id(request.job_id, "JobId")
        if request.visibility_query:
            # A bad query is refused now, not retried by the batch for ever (as the reference does).
            try:
                await self.search_attributes.parse_query(ns.id, request.visibility_query)
            except InvalidArgument as e:
                raise InvalidArgument(f"invalid visibility query: {e.message}") from None
        await self.engine.start_batch(ns.name, ns.id, request)
        return rr.StartBatchOperationResponse()

    async def stop(self, request: rr.StopBatchOperationRequest) -> rr.StopBatchOperationResponse:
        if not request.job_id:
            raise InvalidArgument("JobId is not set on request.")
        if not request.namespace:
            raise InvalidArgument("Namespace is not set on request.")
        if not request.reason:
            raise InvalidArgument("Reason is not set on request.")
        ns = await self.namespaces.get(request.namespace)
        await self.engine.stop_batch(ns.id, request.job_id, request.reason, request.identity)
        return rr.StopBatchOperationResponse()

    async def describe(self, request: rr.DescribeBatchOperationRequest) -> rr.DescribeBatchOperationResponse:
        if not request.job_id:
            raise InvalidArgument("JobId is not set on request.")
        if not request.namespace:
            raise InvalidArgument("Namespace is not set on request.")
        ns = await self.namespaces.get(request.namespace)
        return await self.engine.describe(ns.id, request.job_id)

    async def list(self, request: rr.ListBatchOperationsRequest) -> rr.ListBatchOperationsResponse:
        if not request.namespace:
            raise InvalidArgument("Namespace is not set on request.")
        ns = await self.namespaces.get(request.namespace)
        page_size = request.page_size if 0 < request.page_size <= MAX_PAGE_SIZE else MAX_PAGE_SIZE
        return list_response(await self.engine.list(ns.id), page_size, request.next_page_token)


__all__ = ["BatchHandlers", "check_request", "describe_response"]
