"""JWT authorization on the public port (issue 13, item 3): the reference's default claim mapper and
authorizer. Before it, any caller with any token, or none, could do anything (start, terminate, register
namespaces); each test below that expects PERMISSION_DENIED got an answer instead."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import jwt
import pytest
from temporalio import activity, workflow
from temporalio.api.command.v1 import Command, StartChildWorkflowExecutionCommandAttributes
from temporalio.api.common.v1 import WorkflowType
from temporalio.api.enums.v1 import CommandType
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import (
    CreateNexusEndpointRequest,
    DeleteNexusEndpointRequest,
    ListNexusEndpointsRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.operatorservice.v1.service_pb2_grpc import OperatorServiceStub
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    GetSystemInfoRequest,
    RegisterNamespaceRequest,
    RespondWorkflowTaskCompletedRequest,
    StartWorkflowExecutionRequest,
)
from temporalio.api.workflowservice.v1.service_pb2_grpc import WorkflowServiceStub
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from hourglass.cluster.config import AuthorizationSection
from hourglass.cluster.node import Node, NodeConfig
from hourglass.persistence.sqlite.store import SQLiteStore

from .jwt_helpers import JWTKeys, SigningKey, ec_key, rsa_key

DENIED = "Request unauthorized."
REFRESH_S = 0.3


# ---- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def address(keys: JWTKeys) -> AsyncIterator[str]:
    """An in-process node on in-memory SQLite whose frontend runs the default authorizer."""
    authorization = AuthorizationSection(
        authorizer="default",
        claim_mapper="default",
        jwt_key_provider={"key_source_uris": keys.key_source_uris(), "refresh_interval_s": REFRESH_S},
    )
    node = Node(
        NodeConfig(port=0, namespaces=["default", "other"], authorization=authorization),
        await SQLiteStore.open(None),
    )
    await node.start()
    yield f"127.0.0.1:{node.bound_port}"
    await node.stop()


async def connect(address: str, token: str | None, *, metadata: bool = False) -> Client:
    """The SDK as a user writes it: `api_key=` (the SDK then turns TLS on unless told, hence tls=False:
    this port is plaintext) or `rpc_metadata={"authorization": "Bearer ..."}`."""
    if metadata:
        return await Client.connect(address, rpc_metadata={"authorization": f"Bearer {token}"})
    return await Client.connect(address, api_key=token, tls=False)


async def raw(address: str, method: str, request, token: str | None = None, *, operator: bool = False):
    """One gRPC call with an exact `authorization` header (or none)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = OperatorServiceStub(channel) if operator else WorkflowServiceStub(channel)
        metadata = (("authorization", token),) if token is not None else None
        return await getattr(stub, method)(request, metadata=metadata, timeout=10)


async def assert_raw_denied(address: str, method: str, request, token: str | None = None, **kw) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await raw(address, method, request, token, **kw)
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.PERMISSION_DENIED, DENIED)


def assert_sdk_denied(err: pytest.ExceptionInfo[RPCError]) -> None:
    assert (err.value.status, err.value.message) == (RPCStatusCode.PERMISSION_DENIED, DENIED)


def bearer(token: str) -> str:
    return f"Bearer {token}"


# ---- a workflow the writer runs -----------------------------------------------------------------------


@activity.defn
async def greet(name: str) -> str:
    return f"Hello, {name}!"


@workflow.defn
class GreetAfterSignal:
    def __init__(self) -> None:
        self.name: str | None = None

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.name is not None)
        return await workflow.execute_activity(greet, self.name, start_to_close_timeout=timedelta(seconds=10))

    @workflow.signal
    def named(self, name: str) -> None:
        self.name = name


def worker(client: Client, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[GreetAfterSignal],
        activities=[greet],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def start_request(namespace: str = "default") -> StartWorkflowExecutionRequest:
    return StartWorkflowExecutionRequest(
        namespace=namespace,
        workflow_id=new_id("raw"),
        workflow_type=WorkflowType(name="GreetAfterSignal"),
        task_queue={"name": "nobody"},
        request_id=str(uuid.uuid4()),
    )


# ---- no token, bad tokens -----------------------------------------------------------------------------


async def test_no_token_is_denied_everything_but_health_checks(
    address: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="hourglass.cluster.security.interceptor"):
        await assert_raw_denied(address, "StartWorkflowExecution", start_request())
    await assert_raw_denied(address, "DescribeNamespace", DescribeNamespaceRequest(namespace="default"))
    await assert_raw_denied(
        address, "ListSearchAttributes", ListSearchAttributesRequest(namespace="default"), operator=True
    )
    # The SDK connects (GetSystemInfo and the health check are open to anyone, as on the reference)...
    client = await Client.connect(address)
    assert await client.service_client.check_health()
    assert (await raw(address, "GetSystemInfo", GetSystemInfoRequest())).capabilities.signal_and_query_header
    # ...and is refused what it then asks.
    with pytest.raises(RPCError) as err:
        await client.start_workflow("GreetAfterSignal", id=new_id("anon"), task_queue="nobody")
    assert_sdk_denied(err)
    lines = [r.getMessage() for r in caplog.records if "request unauthorized" in r.getMessage()]
    assert len(lines) == 1 and "StartWorkflowExecution" in lines[0] and "namespace=default" in lines[0]
    assert all(r.exc_info is None for r in caplog.records)


def _bad_tokens(keys: JWTKeys) -> dict[str, str]:
    admin = ["temporal-system:admin", "default:admin"]
    secret = keys.rsa.public_pem()
    now = int(time.time())
    return {
        "signed by an unknown key under a published kid": bearer(keys.stranger.token(admin)),
        "expired": bearer(keys.rsa.token(admin, expires_in=-60)),
        "unknown kid": bearer(ec_key("nobody-knows").token(admin)),
        "unknown kid, RSA (tried against the kid-less PEM key)": bearer(rsa_key("nope").token(admin)),
        "no sub claim": bearer(
            jwt.encode(
                {"exp": now + 60, "permissions": admin}, keys.rsa.private, "RS256", headers={"kid": "rsa-1"}
            )
        ),
        "alg none": bearer(jwt.encode({"sub": "x", "permissions": admin}, None, "none")),
        # Algorithm confusion: the RSA public key used as an HMAC secret.
        "HS256 with the public key": bearer(_hs256({"sub": "x", "permissions": admin}, secret)),
        "not a bearer token": f"Basic {keys.rsa.token(admin)}",
        "garbage": "Bearer not.a.jwt",
        "tampered payload": bearer(_tamper(keys.rsa.token(["default:read"]))),
    }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256(claims: dict, secret: bytes) -> str:
    """What an attacker forges (PyJWT itself refuses to): an HMAC token keyed with the public key."""
    signing_input = (
        f"{_b64(json.dumps({'alg': 'HS256', 'kid': 'rsa-1'}).encode())}.{_b64(json.dumps(claims).encode())}"
    )
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["permissions"] = ["temporal-system:admin"]
    forged = _b64(json.dumps(claims).encode())
    return f"{header}.{forged}.{signature}"


BAD_TOKEN_CASES = [
    "signed by an unknown key under a published kid",
    "expired",
    "unknown kid",
    "unknown kid, RSA (tried against the kid-less PEM key)",
    "no sub claim",
    "alg none",
    "HS256 with the public key",
    "not a bearer token",
    "garbage",
    "tampered payload",
]


@pytest.mark.parametrize("case", BAD_TOKEN_CASES)
async def test_a_token_that_cannot_be_trusted_is_denied(address: str, keys: JWTKeys, case: str) -> None:
    token = _bad_tokens(keys)[case]
    await assert_raw_denied(
        address, "DescribeNamespace", DescribeNamespaceRequest(namespace="default"), token
    )
    await assert_raw_denied(address, "StartWorkflowExecution", start_request(), token)


# ---- roles ---------------------------------------------------------------------------------------------


async def test_reader_can_describe_list_and_count_but_not_start(address: str, keys: JWTKeys) -> None:
    client = await connect(address, keys.rsa.token(["default:read"], subject="reader"))
    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace="default")
    )
    assert described.namespace_info.name == "default"
    assert [w async for w in client.list_workflows("WorkflowType = 'NoSuchType'")] == []
    assert (await client.count_workflows("WorkflowType = 'NoSuchType'")).count == 0
    with pytest.raises(RPCError) as err:
        await client.start_workflow("GreetAfterSignal", id=new_id("reader"), task_queue="nobody")
    assert_sdk_denied(err)
    # A role in `default` is no role in `other`.
    await assert_raw_denied(
        address,
        "DescribeNamespace",
        DescribeNamespaceRequest(namespace="other"),
        bearer(keys.rsa.token(["default:read"])),
    )


@pytest.mark.parametrize("how", ["api_key", "rpc_metadata"])
async def test_writer_starts_signals_and_runs_a_worker(address: str, keys: JWTKeys, how: str) -> None:
    token = keys.ec.token(["default:write"], subject="writer")
    client = await connect(address, token, metadata=how == "rpc_metadata")
    task_queue = new_id("tq")
    async with worker(client, task_queue):
        handle = await client.start_workflow(GreetAfterSignal.run, id=new_id("writer"), task_queue=task_queue)
        await handle.signal(GreetAfterSignal.named, "Writer")
        assert await asyncio.wait_for(handle.result(), 30) == "Hello, Writer!"
    # Registering a namespace is an admin act.
    with pytest.raises(RPCError) as err:
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=new_id("ns"), workflow_execution_retention_period=timedelta(days=1)
            )
        )
    assert_sdk_denied(err)


async def test_writer_of_one_namespace_cannot_start_in_another(address: str, keys: JWTKeys) -> None:
    token = bearer(keys.rsa.token(["default:write"]))
    await assert_raw_denied(address, "StartWorkflowExecution", start_request("other"), token)
    # Nor through a workflow task's command: a child in `other` is a start in `other`.
    child = Command(
        command_type=CommandType.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION,
        start_child_workflow_execution_command_attributes=StartChildWorkflowExecutionCommandAttributes(
            namespace="other", workflow_id="child", workflow_type=WorkflowType(name="X")
        ),
    )
    request = RespondWorkflowTaskCompletedRequest(namespace="default", task_token=b"x", commands=[child])
    await assert_raw_denied(address, "RespondWorkflowTaskCompleted", request, token)
    # The same token can start in `default`.
    assert (await raw(address, "StartWorkflowExecution", start_request(), token)).run_id


async def test_system_admin_registers_a_namespace_writer_cannot(address: str, keys: JWTKeys) -> None:
    name = new_id("ns")
    request = RegisterNamespaceRequest(namespace=name, workflow_execution_retention_period=timedelta(days=1))
    await assert_raw_denied(address, "RegisterNamespace", request, bearer(keys.rsa.token(["default:write"])))
    await assert_raw_denied(
        address, "RegisterNamespace", request, bearer(keys.rsa.token(["temporal-system:write"]))
    )
    await raw(address, "RegisterNamespace", request, bearer(keys.rsa.token(["temporal-system:admin"])))
    described = await raw(
        address,
        "DescribeNamespace",
        DescribeNamespaceRequest(namespace=name),
        bearer(keys.rsa.token([f"{name}:read"])),
    )
    assert described.namespace_info.name == name


async def test_only_a_system_admin_manages_nexus_endpoints(address: str, keys: JWTKeys) -> None:
    """Endpoints are cluster-wide: every *NexusEndpoint RPC is a cluster admin's, as on the reference."""
    spec = EndpointSpec(
        name=new_id("ep").replace("_", "-"),
        target=EndpointTarget(worker=EndpointTarget.Worker(namespace="default", task_queue="tq")),
    )
    create = CreateNexusEndpointRequest(spec=spec)
    for permissions in (["default:admin"], ["temporal-system:write"]):
        token = bearer(keys.rsa.token(permissions))
        await assert_raw_denied(address, "CreateNexusEndpoint", create, token, operator=True)
        await assert_raw_denied(
            address, "ListNexusEndpoints", ListNexusEndpointsRequest(), token, operator=True
        )
    admin = bearer(keys.rsa.token(["temporal-system:admin"]))
    created = await raw(address, "CreateNexusEndpoint", create, admin, operator=True)
    listed = await raw(
        address, "ListNexusEndpoints", ListNexusEndpointsRequest(name=spec.name), admin, operator=True
    )
    assert [e.id for e in listed.endpoints] == [created.endpoint.id]
    delete = DeleteNexusEndpointRequest(id=created.endpoint.id, version=1)
    await assert_raw_denied(
        address, "DeleteNexusEndpoint", delete, bearer(keys.rsa.token(["default:admin"])), operator=True
    )
    await raw(address, "DeleteNexusEndpoint", delete, admin, operator=True)


# ---- keys ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "which",
    ["rsa", "ec", "ec_file", "rsa_file"],
    ids=["RS256-jwks", "ES256-jwks", "ES256-pem-kid", "RS256-pem"],
)
async def test_rs256_and_es256_from_jwks_and_pem_files(address: str, keys: JWTKeys, which: str) -> None:
    key: SigningKey = getattr(keys, which)
    token = bearer(key.token(["default:read"]))
    described = await raw(address, "DescribeNamespace", DescribeNamespaceRequest(namespace="default"), token)
    assert described.namespace_info.name == "default"


async def test_jwks_is_re_read_so_keys_rotate(address: str, keys: JWTKeys) -> None:
    new = ec_key("rotated-in")
    request = DescribeNamespaceRequest(namespace="default")
    token = bearer(new.token(["default:read"]))
    await assert_raw_denied(address, "DescribeNamespace", request, token)
    keys.jwks.keys = [*keys.jwks.keys, new]
    try:
        assert await _eventually_allowed(address, request, token)
    finally:
        keys.jwks.keys = [k for k in keys.jwks.keys if k is not new]
    deadline = time.monotonic() + 20 * REFRESH_S
    while time.monotonic() < deadline:  # removed from the JWKS: refused again after the next refresh
        try:
            await raw(address, "DescribeNamespace", request, token)
        except grpc.aio.AioRpcError as e:
            assert e.code() == grpc.StatusCode.PERMISSION_DENIED
            return
        await asyncio.sleep(REFRESH_S / 3)
    raise AssertionError("a key removed from the JWKS is still accepted")


async def _eventually_allowed(address: str, request, token: str) -> bool:
    deadline = time.monotonic() + 20 * REFRESH_S
    while time.monotonic() < deadline:
        try:
            await raw(address, "DescribeNamespace", request, token)
            return True
        except grpc.aio.AioRpcError as e:
            assert e.code() == grpc.StatusCode.PERMISSION_DENIED
        await asyncio.sleep(REFRESH_S / 3)
    return False


async def test_a_token_is_refused_once_it_expires_even_after_it_was_accepted(
    address: str, keys: JWTKeys
) -> None:
    """Verified tokens are remembered (a worker repeats its token on every poll), never past their `exp`."""
    token = bearer(keys.rsa.token(["default:read"], expires_in=2))
    request = DescribeNamespaceRequest(namespace="default")
    assert (await raw(address, "DescribeNamespace", request, token)).namespace_info.name == "default"
    exp = jwt.decode(token.split()[1], options={"verify_signature": False})["exp"]
    await asyncio.sleep(max(0.0, exp - time.time()) + 0.5)
    await assert_raw_denied(address, "DescribeNamespace", request, token)
