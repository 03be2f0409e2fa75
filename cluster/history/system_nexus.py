"""The server's own Nexus endpoint (`__temporal_system`): operations a workflow asks of the server itself.

The SDKs send a workflow's signal-with-start of another workflow as a Nexus operation on this endpoint
(service temporal.api.workflowservice.v1.WorkflowService, operation SignalWithStartWorkflowExecution, the
request as a protobuf payload). As on the reference 1.32 (chasm/lib/workflow nexus_service.go), the server
runs it itself: the request must name the caller's namespace (or none) and carry no request id or links
(the operation's request id and the link to the caller's NexusOperationScheduled event are set), and the
answer is a synchronous result, the signal-with-start's response, whose signal link the caller's
NexusOperationCompleted keeps.
"""

from __future__ import annotations

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Link, Payload
from temporalio.api.workflowservice.v1 import (
    SignalWithStartWorkflowExecutionRequest,
    SignalWithStartWorkflowExecutionResponse,
)

from hourglass.cluster.errors import InvalidArgument

ENDPOINT = "__temporal_system"
SERVICE = "temporal.api.workflowservice.v1.WorkflowService"
SIGNAL_WITH_START = "SignalWithStartWorkflowExecution"
OPERATIONS = frozenset({(SERVICE, SIGNAL_WITH_START)})


def check_operation(service: str, operation: str) -> str:
    """Why the endpoint cannot run `service`/`operation` ("" when it can), in the reference's words."""
    if (service, operation) in OPERATIONS:
        return ""
    if service != SERVICE:
        return f'nexus service "{service}" not found'
    return f'nexus operation "{operation}" not found'


def decode_request(payload: Payload | None) -> SignalWithStartWorkflowExecutionRequest:
    """The operation's input: a SignalWithStartWorkflowExecutionRequest as binary or JSON protobuf."""
    request = SignalWithStartWorkflowExecutionRequest()
    if payload is None:
        raise InvalidArgument("Request is empty")
    encoding = payload.metadata.get("encoding", b"")
    try:
        if encoding == b"binary/protobuf":
            request.ParseFromString(payload.data)
        elif encoding == b"json/protobuf":
            json_format.Parse(payload.data, request, ignore_unknown_fields=True)
        else:
            raise InvalidArgument(f"payload encoding {encoding.decode(errors='replace')!r} is not protobuf")
    except (DecodeError, json_format.ParseError) as e:
        raise InvalidArgument(f"cannot decode the request: {e}") from None
    return request


def prepare(
    request: SignalWithStartWorkflowExecutionRequest, namespace: str, request_id: str, caller_link: Link
) -> None:
    """Check the request as the reference's SignalWithStartOperationProcessor does and fill in what the
    server sets: the namespace, the operation's request id, the link to the caller."""
    if not request.namespace:
        request.namespace = namespace
    elif request.namespace != namespace:
        raise InvalidArgument(
            f'Namespace in request "{request.namespace}" does not match namespace in context "{namespace}"'
        )
    if request.request_id:
        raise InvalidArgument("RequestID should not be set on the request")
    if request.links:
        raise InvalidArgument("Links should not be set on the request")
    request.request_id = request_id
    request.links.append(caller_link)
    if not request.workflow_id:
        raise InvalidArgument("WorkflowId is not set on request.")
    if not request.signal_name:
        raise InvalidArgument("SignalName is not set on request.")
    if not request.workflow_type.name:
        raise InvalidArgument("WorkflowType is not set on request.")
    if not request.task_queue.name:
        raise InvalidArgument("TaskQueue is not set on request.")


def response_payload(response: SignalWithStartWorkflowExecutionResponse) -> Payload:
    """The operation's result: the response as a binary protobuf payload (what the SDKs decode)."""
    return Payload(
        metadata={
            "encoding": b"binary/protobuf",
            "messageType": response.DESCRIPTOR.full_name.encode(),
        },
        data=response.SerializeToString(),
    )
