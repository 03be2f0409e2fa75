"""The default authorizer's decisions and the claim mapper's reading of `permissions`, without a server:
the reference's rules (common/authorization/default_authorizer.go, common/api/metadata.go)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from temporalio.api.operatorservice.v1 import service_pb2 as operator_pb2
from temporalio.api.workflowservice.v1 import service_pb2 as workflow_pb2

from hourglass.cluster.config import AuthorizationSection
from hourglass.cluster.security.authorization import (
    METHOD_METADATA,
    OPERATOR_SERVICE,
    WORKFLOW_SERVICE,
    CallTarget,
    DefaultAuthorizer,
    Scope,
)
from hourglass.cluster.security.claims import Claims, Role, parse_permissions

WF, OP = WORKFLOW_SERVICE, OPERATOR_SERVICE


def test_every_public_method_has_a_scope_and_access_level() -> None:
    """A method without one is denied to everyone, system admin included: none may be missing."""
    services = [
        (WF, workflow_pb2.DESCRIPTOR.services_by_name["WorkflowService"]),
        (OP, operator_pb2.DESCRIPTOR.services_by_name["OperatorService"]),
    ]
    missing = [p + m.name for p, s in services for m in s.methods if p + m.name not in METHOD_METADATA]
    assert missing == []
    # A namespace-scoped method's request names its namespace (that is what the role is looked up by).
    for prefix, service in services:
        for method in service.methods:
            scope, _ = METHOD_METADATA[prefix + method.name]
            has_field = "namespace" in method.input_type.fields_by_name
            assert has_field == (scope is Scope.NAMESPACE), method.full_name


def claims(*permissions: str) -> Claims:
    c = Claims(subject="s")
    parse_permissions(list(permissions), c)
    return c


CASES = [
    # (permissions, method, namespace, allowed)
    ((), WF + "GetSystemInfo", "", True),
    ((), WF + "DescribeNamespace", "default", False),
    (("default:read",), WF + "DescribeNamespace", "default", True),
    (("default:read",), WF + "QueryWorkflow", "default", True),
    (("default:read",), WF + "SignalWorkflowExecution", "default", False),
    (("default:read",), WF + "DescribeNamespace", "Default", False),
    (("default:read",), WF + "ListNamespaces", "", False),
    (
        ("default:worker",),
        WF + "PollWorkflowTaskQueue",
        "default",
        False,
    ),  # worker < reader, as the reference
    (("default:write",), WF + "PollWorkflowTaskQueue", "default", True),
    (("default:write",), WF + "TerminateWorkflowExecution", "default", True),
    (("default:write",), WF + "UpdateNamespace", "default", False),
    (("default:write",), OP + "AddSearchAttributes", "default", False),
    (("default:admin",), OP + "AddSearchAttributes", "default", True),
    (("default:admin",), OP + "ListClusters", "", False),
    (("default:admin",), "/hourglass.internal.v1.ClusterService/Status", "", False),
    (("temporal-system:read",), WF + "ListNamespaces", "", True),
    (("temporal-system:read",), WF + "DescribeWorkflowExecution", "any", True),
    (("temporal-system:read",), WF + "StartWorkflowExecution", "any", False),
    (("temporal-system:write",), WF + "StartWorkflowExecution", "any", True),
    (("temporal-system:write",), WF + "RegisterNamespace", "new", False),
    (("temporal-system:admin",), WF + "RegisterNamespace", "new", True),
    (("temporal-system:admin",), "/hourglass.internal.v1.ClusterService/Status", "", True),
    # Not a public method: denied to everyone (the test hooks on the frontend port, among others).
    (("temporal-system:admin",), "/hourglass.internal.v1.ClusterService/SetGossipBlocked", "", False),
    (("temporal-system:admin",), "/temporal.server.api.historyservice.v1.HistoryService/Invoke", "", False),
]


@pytest.mark.parametrize(("permissions", "method", "namespace", "allowed"), CASES)
async def test_default_authorizer(
    permissions: tuple[str, ...], method: str, namespace: str, allowed: bool
) -> None:
    result = await DefaultAuthorizer().authorize(claims(*permissions), CallTarget(method, namespace))
    assert result.allowed is allowed


async def test_no_claims_only_health_checks() -> None:
    authorizer = DefaultAuthorizer()
    assert (await authorizer.authorize(None, CallTarget("/grpc.health.v1.Health/Check"))).allowed
    assert (await authorizer.authorize(None, CallTarget(WF + "GetSystemInfo"))).allowed
    assert not (await authorizer.authorize(None, CallTarget(WF + "GetClusterInfo"))).allowed


def test_permissions_are_roles_per_namespace_and_for_the_system() -> None:
    c = claims(
        "default:read", "default:WRITE", "temporal-system:admin", "orders:worker", "bad", 7, "x:unknown"
    )
    assert c.namespaces == {"default": Role.READER | Role.WRITER, "orders": Role.WORKER, "x": Role.UNDEFINED}
    assert c.system == Role.ADMIN


def test_config_refuses_half_an_authorization_setup() -> None:
    with pytest.raises(ValidationError, match="must both be 'default' or both be empty"):
        AuthorizationSection(authorizer="default", jwt_key_provider={"key_source_uris": ["file:///k.pem"]})
    with pytest.raises(ValidationError, match="needs jwt_key_provider.key_source_uris"):
        AuthorizationSection(authorizer="default", claim_mapper="default")
    with pytest.raises(ValidationError, match="is not a file://, http:// or https:// URI"):
        AuthorizationSection(jwt_key_provider={"key_source_uris": ["/etc/keys/k.pem"]})
    assert not AuthorizationSection().enabled
