"""Who may call what: each public method's scope (one namespace or the whole cluster) and access level
(the reference's common/api/metadata.go), the Authorizer interface, and the reference's default
authorizer. Another authorizer is plugged in by passing any object with `authorize` to the interceptor."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

from hourglass.cluster.security.claims import Claims, Role

WORKFLOW_SERVICE = "/temporal.api.workflowservice.v1.WorkflowService/"
OPERATOR_SERVICE = "/temporal.api.operatorservice.v1.OperatorService/"
NEXUS_SERVICE = "/temporal.api.nexusservice.v1.NexusService/"
TEST_SERVICE = "/temporal.api.testservice.v1.TestService/"
CLUSTER_SERVICE = "/hourglass.internal.v1.ClusterService/"

# Read-only health checks with nothing sensitive: allowed to anyone (the reference's healthCheckAPI;
# Watch is the streaming twin of Check).
HEALTH_CHECK_APIS = frozenset(
    {
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        WORKFLOW_SERVICE + "GetSystemInfo",
    }
)


class Scope(enum.Enum):
    UNKNOWN = 0
    NAMESPACE = 1  # the request's `namespace` field names the namespace it acts on
    CLUSTER = 2


class Access(enum.Enum):
    UNKNOWN = 0
    READ_ONLY = 1
    WRITE = 2
    ADMIN = 3


_NS, _CL = Scope.NAMESPACE, Scope.CLUSTER
_R, _W, _A = Access.READ_ONLY, Access.WRITE, Access.ADMIN

_READ_ONLY_NAMESPACE_METHODS = """
DescribeNamespace GetWorkflowExecutionHistory GetWorkflowExecutionHistoryReverse ListOpenWorkflowExecutions
ListClosedWorkflowExecutions ListWorkflowExecutions ListArchivedWorkflowExecutions ScanWorkflowExecutions
CountWorkflowExecutions QueryWorkflow DescribeWorkflowExecution DescribeTaskQueue ListTaskQueuePartitions
DescribeSchedule ListScheduleMatchingTimes ListSchedules CountSchedules GetWorkerBuildIdCompatibility
GetWorkerVersioningRules GetWorkerTaskReachability PollWorkflowExecutionUpdate PollWorkflowExecutionTimeSkipping
DescribeBatchOperation ListBatchOperations DescribeDeployment ListDeployments GetDeploymentReachability
GetCurrentDeployment DescribeWorkerDeploymentVersion DescribeWorkerDeployment
ValidateWorkerDeploymentVersionComputeConfig ListWorkerDeployments DescribeWorkflowRule ListWorkflowRules
ListWorkers CountWorkers DescribeWorker FetchWorkerConfig CountActivityExecutions CountNexusOperationExecutions
DescribeActivityExecution DescribeNexusOperationExecution PollActivityExecution PollNexusOperationExecution
ListActivityExecutions ListNexusOperationExecutions
"""
_WRITE_NAMESPACE_METHODS = """
StartWorkflowExecution ExecuteMultiOperation PollWorkflowTaskQueue RespondWorkflowTaskCompleted
RespondWorkflowTaskFailed PollActivityTaskQueue RecordActivityTaskHeartbeat RecordActivityTaskHeartbeatById
RespondActivityTaskCompleted RespondActivityTaskCompletedById RespondActivityTaskFailed
RespondActivityTaskFailedById RespondActivityTaskCanceled RespondActivityTaskCanceledById
RequestCancelWorkflowExecution SignalWorkflowExecution SignalWithStartWorkflowExecution ResetWorkflowExecution
TerminateWorkflowExecution DeleteWorkflowExecution RespondQueryTaskCompleted ResetStickyTaskQueue ShutdownWorker
CreateSchedule UpdateSchedule PatchSchedule DeleteSchedule UpdateWorkerBuildIdCompatibility
UpdateWorkerVersioningRules UpdateWorkflowExecution StartBatchOperation StopBatchOperation PollNexusTaskQueue
RespondNexusTaskCompleted RespondNexusTaskFailed UpdateActivityOptions UpdateWorkflowExecutionOptions
PauseActivity UnpauseActivity ResetActivity SetCurrentDeployment SetWorkerDeploymentCurrentVersion
SetWorkerDeploymentRampingVersion SetWorkerDeploymentManager CreateWorkerDeployment DeleteWorkerDeployment
CreateWorkerDeploymentVersion UpdateWorkerDeploymentVersionComputeConfig DeleteWorkerDeploymentVersion
UpdateWorkerDeploymentVersionMetadata CreateWorkflowRule DeleteWorkflowRule TriggerWorkflowRule
RecordWorkerHeartbeat UpdateTaskQueueConfig UpdateWorkerConfig PauseWorkflowExecution UnpauseWorkflowExecution
StartActivityExecution StartNexusOperationExecution RequestCancelActivityExecution
RequestCancelNexusOperationExecution TerminateActivityExecution TerminateNexusOperationExecution
DeleteActivityExecution DeleteNexusOperationExecution PauseActivityExecution UnpauseActivityExecution
ResetActivityExecution UpdateActivityExecutionOptions
"""


def _table() -> dict[str, tuple[Scope, Access]]:
    table: dict[str, tuple[Scope, Access]] = {}
    for name in _READ_ONLY_NAMESPACE_METHODS.split():
        table[WORKFLOW_SERVICE + name] = (_NS, _R)
    for name in _WRITE_NAMESPACE_METHODS.split():
        table[WORKFLOW_SERVICE + name] = (_NS, _W)
    for name in ("RegisterNamespace", "UpdateNamespace", "DeprecateNamespace"):
        table[WORKFLOW_SERVICE + name] = (_NS, _A)
    for name in ("ListNamespaces", "GetSearchAttributes", "GetClusterInfo", "GetSystemInfo"):
        table[WORKFLOW_SERVICE + name] = (_CL, _R)
    for name in ("AddSearchAttributes", "RemoveSearchAttributes", "DeleteNamespace"):
        table[OPERATOR_SERVICE + name] = (_NS, _A)
    table[OPERATOR_SERVICE + "ListSearchAttributes"] = (_NS, _R)
    for name in (
        "AddOrUpdateRemoteCluster RemoveRemoteCluster ListClusters "
        "CreateNexusEndpoint UpdateNexusEndpoint DeleteNexusEndpoint GetNexusEndpoint ListNexusEndpoints"
    ).split():
        table[OPERATOR_SERVICE + name] = (_CL, _A)
    # The Nexus HTTP routes (httpapi/nexus_routes.py), by the reference's method names: a completion and an
    # external caller's start or cancel act on the namespace's runs.
    for name in ("CompleteNexusOperation", "DispatchNexusTask"):
        table[NEXUS_SERVICE + name] = (_NS, _W)
    # Hourglass's own: the member table and shard map, for operators (`hourglass cluster status`).
    table[CLUSTER_SERVICE + "Status"] = (_CL, _A)
    # The time-skipping control of a test server: reading the clock is a read, moving it acts on every
    # namespace of the server, so it is an admin's (a test suite's token carries that role).
    table[TEST_SERVICE + "GetCurrentTime"] = (_CL, _R)
    for name in "LockTimeSkipping UnlockTimeSkipping Sleep SleepUntil UnlockTimeSkippingWithSleep".split():
        table[TEST_SERVICE + name] = (_CL, _A)
    # Node lifecycle (`hourglass cluster drain` / `undrain`): admin, as everything cluster-wide.
    table[CLUSTER_SERVICE + "Drain"] = (_CL, _A)
    table[CLUSTER_SERVICE + "Undrain"] = (_CL, _A)
    return table


METHOD_METADATA: dict[str, tuple[Scope, Access]] = _table()


def method_metadata(full_method: str) -> tuple[Scope, Access]:
    """(scope, access) of a full gRPC method name; unknown methods are (UNKNOWN, UNKNOWN): denied."""
    return METHOD_METADATA.get(full_method, (Scope.UNKNOWN, Access.UNKNOWN))


@dataclass(frozen=True)
class CallTarget:
    # The full method name, e.g. "/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution".
    api_name: str
    # "" when the request names no namespace.
    namespace: str = ""
    # The decoded request message.
    request: Any = None


@dataclass(frozen=True)
class Result:
    allowed: bool
    # Sent to the caller in PermissionDeniedFailure.reason when set (the reference's Result.Reason).
    reason: str = ""


ALLOW = Result(True)
DENY = Result(False)


class Authorizer(Protocol):
    async def authorize(self, claims: Claims | None, target: CallTarget) -> Result:
        """Decide one call. `claims` is None when the request presented no credentials."""
        ...


_REQUIRED_ROLE = {Access.READ_ONLY: Role.READER, Access.WRITE: Role.WRITER}


class DefaultAuthorizer:
    """The reference's default: health checks for anyone; cluster-scoped methods by the system role;
    namespace-scoped methods by the system role or the role in that namespace; the method's access level
    (read-only -> reader, write -> writer, admin or unknown -> admin) against that role."""

    async def authorize(self, claims: Claims | None, target: CallTarget) -> Result:
        if target.api_name in HEALTH_CHECK_APIS:
            return ALLOW
        if claims is None:
            return DENY
        scope, access = method_metadata(target.api_name)
        if scope is Scope.CLUSTER:
            has = claims.system
        elif scope is Scope.NAMESPACE:
            has = claims.system | claims.namespaces.get(target.namespace, Role.UNDEFINED)
        else:
            return DENY
        return ALLOW if has >= _REQUIRED_ROLE.get(access, Role.ADMIN) else DENY
