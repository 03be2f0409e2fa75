"""Frontend checks of PauseWorkflowExecution / UnpauseWorkflowExecution (`temporal workflow pause|unpause`),
the reference's, in its order and with its messages.

Pause is gated by `frontend.WorkflowPauseEnabled` (off by default, as on the reference, which also
advertises the namespace capability `workflow_pause` from it); unpause is not gated, so a run paused
while the flag was on can always be resumed.
"""

from __future__ import annotations

import uuid

from hourglass.cluster.errors import InvalidArgument, Unimplemented
from hourglass.cluster.frontend.validation import MAX_ID_LENGTH
from hourglass.cluster.history.limits import LIMITS


def check_enabled(namespace: str) -> None:
    if not LIMITS.workflow_pause_enabled:
        raise Unimplemented(f"workflow pause is not enabled for namespace: {namespace}")


def check_request(request) -> None:
    """Lengths of the free-text fields, then the run the request names."""
    if len(request.reason) > MAX_ID_LENGTH:
        raise InvalidArgument("reason is too long.")
    if len(request.request_id) > MAX_ID_LENGTH:
        raise InvalidArgument("request id is too long.")
    if len(request.identity) > MAX_ID_LENGTH:
        raise InvalidArgument("identity is too long.")
    if not request.workflow_id:
        raise InvalidArgument("Can't load workflow execution.  WorkflowId not set.")
    if request.run_id:
        try:
            uuid.UUID(request.run_id)
        except ValueError:
            raise InvalidArgument("RunId is not valid UUID.") from None
