"""The older build-id versioning APIs (issue 15): refused as the reference 1.32 refuses them by default.

Version sets (v0.1: UpdateWorkerBuildIdCompatibility, GetWorkerBuildIdCompatibility) and assignment rules
(v0.2: Update/GetWorkerVersioningRules, GetWorkerTaskReachability) are deprecated in favour of Worker
Deployments; the reference's start-dev keeps both switched off (`frontend.workerVersioningDataAPIs`,
`frontend.workerVersioningRuleAPIs`) and answers PERMISSION_DENIED after the namespace checks. The SDKs
probe exactly that (the Python SDK's `worker_versioning_enabled` skips on it), so Hourglass answers the same
status and words rather than UNIMPLEMENTED.
"""

from __future__ import annotations

from hourglass.cluster.errors import PermissionDenied

VERSION_SETS_DISABLED = (
    "Worker versioning v0.1 (Version Set-based, deprecated) is disabled on this namespace."
)
RULES_DISABLED = "Worker versioning v0.2 (Rules-based, deprecated) is disabled on this namespace."

# Each RPC with the generation of the API it belongs to (the reference's words for that generation).
REFUSALS: dict[str, str] = {
    "UpdateWorkerBuildIdCompatibility": VERSION_SETS_DISABLED,
    "GetWorkerBuildIdCompatibility": VERSION_SETS_DISABLED,
    "UpdateWorkerVersioningRules": RULES_DISABLED,
    "GetWorkerVersioningRules": RULES_DISABLED,
    "GetWorkerTaskReachability": RULES_DISABLED,
}


def refuse(rpc_name: str) -> PermissionDenied:
    """The error for `rpc_name` once its namespace exists (the reference checks the namespace first)."""
    return PermissionDenied(REFUSALS[rpc_name])
