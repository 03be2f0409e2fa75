"""A node that gives a shard up (to another member, or after a stall) ends the long polls on its runs at
once: a client waiting for a result is sent to read again, from the shard's next owner, instead of waiting
out the poll on a state this node no longer changes."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.api.enums.v1 import HistoryEventFilterType
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from hourglass.cluster.history.engine import shard_id_for
from hourglass.cluster.node import Node, NodeConfig
from hourglass.persistence.sqlite.store import SQLiteStore

# The server's own bound on a history long poll (frontend HISTORY_LONG_POLL_S); the poll must end well
# before it.
LONG_POLL_S = 20.0


async def test_a_result_long_poll_ends_when_its_shard_is_released() -> None:
    node = Node(NodeConfig(port=0), await SQLiteStore.open(None))
    await node.start()
    try:
        client = await Client.connect(f"127.0.0.1:{node.bound_port}")
        workflow_id = f"released-{uuid.uuid4()}"
        # No worker polls this queue: the run stays open, so only the shard's release can end the poll.
        handle = await client.start_workflow("Waits", id=workflow_id, task_queue=f"nobody-{uuid.uuid4()}")
        request = GetWorkflowExecutionHistoryRequest(
            namespace="default",
            execution={"workflow_id": workflow_id, "run_id": handle.result_run_id},
            wait_new_event=True,
            history_event_filter_type=HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT,
        )
        poll = asyncio.create_task(client.workflow_service.get_workflow_execution_history(request))
        await asyncio.sleep(0.5)
        assert not poll.done()  # a running workflow's result poll waits

        namespace_id = (await node.namespaces.get("default")).id
        await node.history.release_shard(shard_id_for(namespace_id, workflow_id, node.history.shard_count))
        try:
            response = await asyncio.wait_for(poll, LONG_POLL_S / 4)
        except RPCError as e:  # answered from no owner: the SDK retries this
            assert e.status == RPCStatusCode.UNAVAILABLE
        else:  # answered from the owner that took the shard back: still running, no close event yet
            assert list(response.history.events) == [] and response.next_page_token
    finally:
        await node.stop(grace=0.5)
