"""A batch operation's durable state: the request, and how far it got (page token, the page in hand and
the index of its next execution, success/failure counts). Serialized as JSON into the store's batch row."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import asdict, dataclass, field

from temporalio.api.enums.v1 import BatchOperationState
from temporalio.api.workflowservice.v1 import StartBatchOperationRequest

RUNNING = BatchOperationState.BATCH_OPERATION_STATE_RUNNING
COMPLETED = BatchOperationState.BATCH_OPERATION_STATE_COMPLETED
FAILED = BatchOperationState.BATCH_OPERATION_STATE_FAILED


@dataclass
class BatchState:
    namespace: str
    namespace_id: str
    job_id: str
    operation_type: int  # temporal.api.enums.v1.BatchOperationType
    request: bytes  # the StartBatchOperationRequest as received
    identity: str
    query: str  # the visibility query the batch lists ("" when it was given executions)
    start_ms: int
    state: int = RUNNING
    close_ms: int = 0
    total: int = 0  # estimate (count of the query, or the executions given)
    success: int = 0
    failure: int = 0
    page: list[list[str]] = field(default_factory=list)  # [workflow id, run id] of the page in hand
    index: int = 0  # the next execution of `page` to handle
    page_token: bytes = b""  # of the page after `page`
    listed: bool = False  # the first page has been fetched (or the executions were given)
    version: int = 0

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    def start_request(self) -> StartBatchOperationRequest:
        return StartBatchOperationRequest.FromString(self.request)

    def clone(self) -> BatchState:
        return copy.deepcopy(self)

    def serialize(self) -> bytes:
        data = asdict(self)
        data.pop("version")
        data["request"] = base64.b64encode(self.request).decode()
        data["page_token"] = base64.b64encode(self.page_token).decode()
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def deserialize(cls, raw: bytes, version: int) -> BatchState:
        data = json.loads(raw)
        data["request"] = base64.b64decode(data["request"])
        data["page_token"] = base64.b64decode(data["page_token"])
        return cls(**data, version=version)
