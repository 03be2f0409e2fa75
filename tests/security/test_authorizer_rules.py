"""The default authorizer's decisions and the claim mapper's reading of `permissions`, without a server:
the reference's rules (common/authorization/default_authorizer.go, common/api/metadata.go)."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
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
from hourglass.cluster.security.claims import AuthInfo, Claims, DefaultJWTClaimMapper, Role, parse_permissions
from hourglass.cluster.security.jwt_keys import JWTKeyProvider, KeySourceError, load_keys

from .jwt_helpers import SigningKey, ec_key, rsa_key

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


def _self_signed(key: SigningKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key.private, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_a_certificate_file_is_a_key_source_and_the_claim_name_is_configurable(tmp_path: Path) -> None:
    key = ec_key("cert")
    (tmp_path / "cert.pem").write_bytes(_self_signed(key))
    provider = JWTKeyProvider([(tmp_path / "cert.pem").as_uri()], 60)
    provider.refresh()
    claim = "https://example.com/temporal-permissions"
    mapper = DefaultJWTClaimMapper(provider, claim)
    mapped = mapper.get_claims(AuthInfo("Bearer " + key.token(["default:write"], claim=claim)))
    assert (mapped.subject, mapped.namespaces) == ("tester", {"default": Role.WRITER})
    # The default claim name is then not read.
    assert (
        DefaultJWTClaimMapper(provider, claim)
        .get_claims(AuthInfo("Bearer " + key.token(["x:admin"])))
        .namespaces
        == {}
    )


def test_key_sources_that_cannot_verify_are_refused_by_name(tmp_path: Path) -> None:
    key = rsa_key("k")
    private = tmp_path / "private.pem"
    private.write_bytes(
        key.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(KeySourceError, match="holds a PRIVATE KEY; give the public key or certificate"):
        load_keys([private.as_uri()])
    p384 = tmp_path / "p384.pem"
    p384.write_bytes(SigningKey("x", "ES384", ec.generate_private_key(ec.SECP384R1())).public_pem())
    with pytest.raises(KeySourceError, match="only RSA and EC P-256 keys"):
        load_keys([p384.as_uri()])
    empty = tmp_path / "empty.json"
    empty.write_text('{"nothing": []}')
    with pytest.raises(KeySourceError, match='not a JWKS document \\(no "keys" list\\)'):
        load_keys([empty.as_uri()])
    with pytest.raises(KeySourceError, match="cannot read JWT keys from http://127.0.0.1:9/jwks.json"):
        load_keys(["http://127.0.0.1:9/jwks.json"])
