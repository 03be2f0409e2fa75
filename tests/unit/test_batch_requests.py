"""StartBatchOperation checks (the reference's order and messages), the query a batch lists, and the
batch state's round trip through its stored form."""

from __future__ import annotations

import pytest
from temporalio.api.batch.v1 import (
    BatchOperationReset,
    BatchOperationSignal,
    BatchOperationTermination,
    BatchOperationUnpauseActivities,
)
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import StartBatchOperationRequest

from hourglass.cluster.batcher.engine import adjusted_query
from hourglass.cluster.batcher.state import BatchState
from hourglass.cluster.errors import InvalidArgument
from hourglass.cluster.frontend.batches import check_request

Q = "WorkflowType='x'"


def req(**kw) -> StartBatchOperationRequest:
    base = {"namespace": "default", "job_id": "j", "reason": "r"}
    base.update(kw)
    return StartBatchOperationRequest(**base)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (req(visibility_query=Q), "must provide required parameters: BatchType,Reason,Namespace, AND one of"),
        (
            req(reason="", visibility_query=Q, termination_operation=BatchOperationTermination()),
            "must provide",
        ),
        (req(termination_operation=BatchOperationTermination()), "must provide required parameters"),
        (
            req(job_id="", visibility_query=Q, termination_operation=BatchOperationTermination()),
            "JobId is not set",
        ),
        (
            req(
                visibility_query=Q,
                executions=[WorkflowExecution(workflow_id="w")],
                termination_operation=BatchOperationTermination(),
            ),
            "visibility query, executions, and target executions are mutually exclusive",
        ),
        (req(visibility_query=Q, signal_operation=BatchOperationSignal()), "must provide signal name"),
        (
            req(visibility_query=Q, reset_operation=BatchOperationReset()),
            "unknown batch reset type RESET_TYPE_UNSPECIFIED",
        ),
        (
            req(visibility_query=Q, unpause_activities_operation=BatchOperationUnpauseActivities()),
            "activity filter must be set",
        ),
    ],
)
def test_bad_requests_are_refused_with_the_references_message(request_, message: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_request(request_)
    assert refused.value.message.startswith(message)


def test_good_requests_pass() -> None:
    check_request(req(visibility_query=Q, termination_operation=BatchOperationTermination()))
    check_request(
        req(
            executions=[WorkflowExecution(workflow_id="w")], signal_operation=BatchOperationSignal(signal="s")
        )
    )


def test_operations_on_running_workflows_list_running_ones_only() -> None:
    assert adjusted_query(req(visibility_query=Q, termination_operation=BatchOperationTermination())) == (
        f"({Q}) AND (ExecutionStatus='Running')"
    )
    assert adjusted_query(req(visibility_query=Q, reset_operation=BatchOperationReset(reset_type=1))) == Q
    by_type = req(unpause_activities_operation=BatchOperationUnpauseActivities(type="it's"))
    assert (
        adjusted_query(by_type)
        == "(TemporalPauseInfo = 'property:activityType=it\\'s') AND (ExecutionStatus='Running')"
    )


def test_state_round_trip() -> None:
    state = BatchState(
        namespace="default",
        namespace_id="ns-id",
        job_id="j",
        operation_type=15,
        request=req(
            visibility_query=Q, signal_operation=BatchOperationSignal(signal="s")
        ).SerializeToString(),
        identity="me",
        query=Q,
        start_ms=123,
        page=[["w", "r"]],
        index=1,
        page_token=b"\x00\xff",
        success=1,
    )
    again = BatchState.deserialize(state.serialize(), 7)
    assert again.version == 7
    again.version = state.version
    assert again == state
    assert again.start_request().signal_operation.signal == "s"
