"""Service errors with the gRPC status and typed failure detail a Temporal client decodes.

Any role may raise these; the frontend turns them into the status code, message and
`grpc-status-details-bin` trailer (a google.rpc.Status whose details hold e.g. a
WorkflowExecutionAlreadyStartedFailure) that the SDKs map to their typed exceptions.
"""

from __future__ import annotations

import grpc
from google.protobuf.message import Message
from temporalio.api.errordetails import v1 as errordetails
from temporalio.api.failure.v1 import MultiOperationExecutionAborted


class ServiceError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, detail: Message | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND

    def __init__(self, message: str, detail: Message | None = None) -> None:
        super().__init__(message, detail if detail is not None else errordetails.NotFoundFailure())


class NamespaceNotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND

    def __init__(self, namespace: str) -> None:
        super().__init__(
            f"Namespace {namespace} is not found.", errordetails.NamespaceNotFoundFailure(namespace=namespace)
        )


class NamespaceAlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS

    def __init__(self, namespace: str) -> None:
        super().__init__("Namespace already exists.", errordetails.NamespaceAlreadyExistsFailure())


class WorkflowAlreadyStarted(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS

    def __init__(self, message: str, start_request_id: str, run_id: str) -> None:
        super().__init__(
            message,
            errordetails.WorkflowExecutionAlreadyStartedFailure(
                start_request_id=start_request_id, run_id=run_id
            ),
        )


class ActivityExecutionAlreadyStarted(ServiceError):
    """A standalone activity's id is taken (its conflict or reuse policy says so), with the reference's detail."""

    code = grpc.StatusCode.ALREADY_EXISTS

    def __init__(self, message: str, start_request_id: str, run_id: str) -> None:
        super().__init__(
            message,
            errordetails.ActivityExecutionAlreadyStartedFailure(
                start_request_id=start_request_id, run_id=run_id
            ),
        )


class NexusOperationExecutionAlreadyStarted(ServiceError):
    """A standalone Nexus operation's id is taken (its conflict or reuse policy says so), with the
    reference's detail."""

    code = grpc.StatusCode.ALREADY_EXISTS

    def __init__(self, message: str, start_request_id: str, run_id: str) -> None:
        super().__init__(
            message,
            errordetails.NexusOperationExecutionAlreadyStartedFailure(
                start_request_id=start_request_id, run_id=run_id
            ),
        )


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class AlreadyExists(ServiceError):
    """Something other than a namespace or a run is registered under that name already."""

    code = grpc.StatusCode.ALREADY_EXISTS


class HistoryLimitExceeded(InvalidArgument):
    """The request's transition would have passed a run's history limit: the run was terminated instead."""


class SignalsLimitExceeded(InvalidArgument):
    """The run already received `history.maximumSignalsPerExecution` signals (the reference's error)."""

    def __init__(self) -> None:
        super().__init__("exceeded workflow execution limit for signal events")


class WorkflowNotReady(ServiceError):
    """The run cannot take the request now (its workflow task keeps failing); the reference's
    FAILED_PRECONDITION with a WorkflowNotReadyFailure detail."""

    code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, message: str) -> None:
        super().__init__(message, errordetails.WorkflowNotReadyFailure())


class QueryFailed(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, message: str) -> None:
        super().__init__(message, errordetails.QueryFailedFailure())


class DeadlineExceeded(ServiceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class ShardNotOwned(Unavailable):
    """This node does not own the shard or task-queue partition (it moved, or is moving): retryable."""


class NodeUnreachable(Unavailable):
    """The member that owns what a request needs could not be reached over the internal RPC."""


class ResourceExhausted(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unimplemented(ServiceError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(ServiceError):
    code = grpc.StatusCode.INTERNAL


class ScheduleNotFound(NotFound):
    def __init__(self, schedule_id: str) -> None:
        # The reference runs a schedule as the workflow "temporal-sys-scheduler:<id>" and says so.
        super().__init__(f"workflow not found for ID: temporal-sys-scheduler:{schedule_id}")


class ScheduleAlreadyRegistered(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS

    def __init__(self, schedule_id: str) -> None:
        # The SDKs recognise a duplicate schedule by this detail (ScheduleAlreadyRunningError).
        super().__init__(
            f'schedule "{schedule_id}" is already registered',
            errordetails.WorkflowExecutionAlreadyStartedFailure(),
        )


class StickyWorkerUnavailable(Unavailable):
    """Matching saw no poller on a sticky queue lately: history sends the task to the normal queue."""

    def __init__(self) -> None:
        super().__init__("sticky worker unavailable, please use original task queue.")


class MultiOperationFailed(ServiceError):
    """ExecuteMultiOperation failed: the status of the operation that failed, the others aborted.

    The gRPC status is the failed operation's; the MultiOperationExecutionFailure detail lists one status
    per operation ([start, update]), as the reference sends it. Each operation is given as its error,
    ABORTED (not attempted because the other failed) or None (it succeeded).
    """

    ABORTED = object()

    def __init__(self, start: ServiceError | object | None, update: ServiceError | object | None) -> None:
        failed = start if isinstance(start, ServiceError) else update
        assert isinstance(failed, ServiceError)
        self.code = failed.code
        statuses = []
        for outcome in (start, update):
            status = errordetails.MultiOperationExecutionFailure.OperationStatus()
            if isinstance(outcome, ServiceError):
                status.code = outcome.code.value[0]
                status.message = outcome.message
                if outcome.detail is not None:
                    status.details.add().Pack(outcome.detail)
            elif outcome is MultiOperationFailed.ABORTED:
                status.code = grpc.StatusCode.ABORTED.value[0]
                status.message = "Operation was aborted."
                status.details.add().Pack(MultiOperationExecutionAborted())
            statuses.append(status)
        super().__init__(
            "Update-with-Start could not be executed.",
            errordetails.MultiOperationExecutionFailure(statuses=statuses),
        )


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED

    def __init__(self, message: str) -> None:
        super().__init__(message, errordetails.PermissionDeniedFailure())
