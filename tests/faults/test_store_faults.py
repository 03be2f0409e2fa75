"""Store faults injected around the real SQLite store: users must see nothing of them but retried RPCs.

- Commits whose outcome the node cannot know: the batch was applied, but the store reported a timeout.
  That is what a Cassandra LWT timeout looks like to the node (the write may land after the coordinator
  gave up). No task the lost acknowledgement left in the store may be forgotten (a workflow task dispatched
  by no one, a timer never fired).
- Reads of timer tasks failing for a while (the database unreachable): timers still fire.
- Deletes of fired timer tasks failing for a while: they are deleted later, none is left behind.
- A commit whose reply is lost and that lands later, when the next conditional write reaches its shard's
  partition (Cassandra completes a batch Paxos had accepted before a crash so): nothing read before it
  landed is acted on after, neither the tasks it wrote nor the events of the next transition.

Every workflow completes with its result and a sound history.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.command.v1 import Command, ScheduleActivityTaskCommandAttributes
from temporalio.api.common.v1 import ActivityType, Payloads
from temporalio.api.enums.v1 import CommandType, EventType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    PollActivityTaskQueueRequest,
    PollWorkflowTaskQueueRequest,
    RespondActivityTaskCompletedRequest,
    RespondWorkflowTaskCompletedRequest,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from hourglass.cluster.history import queues
from hourglass.cluster.history.tasks import TimerKind, TransferKind
from hourglass.cluster.history.timeutil import now_ms
from hourglass.cluster.node import Node, NodeConfig
from hourglass.persistence.errors import StoreUnavailableError
from hourglass.persistence.records import ExecutionWrite
from hourglass.persistence.sqlite.store import SQLiteStore
from hourglass.persistence.store import Store

from .workflows import ActivitiesAndTimer, assert_history_sound, double, expected_result

WORKFLOWS = 12
# Faults are drawn with a seeded generator: a fixed period could fall into step with a workflow's own
# cycle of store calls and starve it.
SEED = 7


class FaultyStore:
    """Delegates to a real store, injecting the failures a remote database shows under faults.

    - commit_lost_reply: probability that a conditional batch is applied and then reported unavailable
      (a Cassandra LWT that timed out at the coordinator but landed);
    - shard_update_lost_reply: the same for writes of the shard row (the fence that follows a lost reply
      bumps the range id: a bump that landed unbeknown is still this node's, not another owner's);
    - timer_read_failure: probability that reading timer tasks fails (the database is unreachable);
    - timer_delete_failure: the same for deleting fired timer tasks.
    """

    def __init__(
        self,
        inner: Store,
        commit_lost_reply: float = 0.0,
        timer_read_failure: float = 0.0,
        shard_update_lost_reply: float = 0.0,
        timer_delete_failure: float = 0.0,
    ) -> None:
        self._inner = inner
        self._timer_delete_failure = timer_delete_failure
        self._commit_lost_reply = commit_lost_reply
        self._shard_update_lost_reply = shard_update_lost_reply
        self._timer_read_failure = timer_read_failure
        self._random = random.Random(SEED)
        self.faults = 0
        self.armed = False  # faults start once the node is up: a node that cannot start just says so
        # See delay_next_commit: which batch to queue, and the batches queued.
        self._delay: Callable[[Sequence[ExecutionWrite]], bool] | None = None
        self._queued: list[tuple[int, int, list[ExecutionWrite]]] = []
        self.landed = 0
        self.shard_updates = 0

    def delay_next_commit(self, matching: Callable[[Sequence[ExecutionWrite]], bool]) -> None:
        """The next batch `matching` accepts is held and its caller told the database is unavailable. It
        lands just before the next conditional write to its shard (a commit, a shard row update), as the
        next Paxos round on a Cassandra partition first completes a proposal accepted before a crash.
        Reads meanwhile do not see it."""
        self._delay = matching

    async def _land_held(self, shard_id: int) -> None:
        for held in [h for h in self._queued if h[0] == shard_id]:
            self._queued.remove(held)
            await self._inner.commit(*held)
            self.landed += 1

    def _fault(self, probability: float) -> bool:
        hit = self.armed and self._random.random() < probability
        self.faults += hit
        return hit

    async def commit(self, shard_id: int, range_id: int, writes: Sequence[ExecutionWrite]) -> None:
        if self._delay is not None and self._delay(writes):
            self._delay = None
            self._queued.append((shard_id, range_id, list(writes)))
            raise StoreUnavailableError("injected: batch accepted by the database, the reply timed out")
        await self._land_held(shard_id)
        await self._inner.commit(shard_id, range_id, writes)
        if self._fault(self._commit_lost_reply):
            raise StoreUnavailableError("injected: batch applied, then the reply was lost")

    async def get_timer_tasks(self, *args, **kwargs):
        if self._fault(self._timer_read_failure):
            raise StoreUnavailableError("injected: timer tasks unreadable")
        return await self._inner.get_timer_tasks(*args, **kwargs)

    async def delete_fired_timer_tasks(self, *args, **kwargs):
        if self._fault(self._timer_delete_failure):
            raise StoreUnavailableError("injected: fired timer tasks not deleted")
        return await self._inner.delete_fired_timer_tasks(*args, **kwargs)

    async def update_shard(self, info, expected_range_id: int) -> None:
        self.shard_updates += 1
        await self._land_held(info.shard_id)
        await self._inner.update_shard(info, expected_range_id)
        if self._fault(self._shard_update_lost_reply):
            raise StoreUnavailableError("injected: shard row written, then the reply was lost")

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


@contextlib.asynccontextmanager
async def node_on(store: FaultyStore, dynamic_config: dict | None = None) -> AsyncIterator[Node]:
    node = Node(NodeConfig(port=0, dynamic_config=dynamic_config or {}), store)  # type: ignore[arg-type]  # duck-typed like MeteredStore
    await node.start()
    store.armed = True
    try:
        yield node
    finally:
        await node.stop(grace=0.5)


async def run_workload(node: Node) -> None:
    """WORKFLOWS workflows with activities and a timer: all complete, with their results and sound histories."""
    client = await Client.connect(f"127.0.0.1:{node.bound_port}")
    queue = f"faults-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[ActivitiesAndTimer], activities=[double]):
        handles = [
            await client.start_workflow(
                ActivitiesAndTimer.run,
                seed,
                id=f"{queue}-{seed}",
                task_queue=queue,
                # A lost reply to a poll leaves its task started with no worker: it is retried on timeout.
                task_timeout=timedelta(seconds=2),
            )
            for seed in range(WORKFLOWS)
        ]
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), timeout=90)
    assert results == [expected_result(seed) for seed in range(WORKFLOWS)]
    for handle in handles:
        await assert_history_sound(client, handle.id)


async def test_every_workflow_completes_when_commit_replies_are_lost() -> None:
    store = FaultyStore(await SQLiteStore.open(None), commit_lost_reply=0.25, shard_update_lost_reply=0.25)
    async with node_on(store) as node:
        await run_workload(node)
    assert store.faults >= WORKFLOWS, f"only {store.faults} faults injected: nothing tested"


async def test_timers_fire_when_reading_them_fails_for_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    # A look-ahead window shorter than the workflows' timers: they are only ever seen through reads of the
    # window (every ~0.2 s per shard), half of which fail.
    monkeypatch.setattr(queues, "TIMER_LOOKAHEAD_MS", 400)
    store = FaultyStore(await SQLiteStore.open(None), timer_read_failure=0.5)
    async with node_on(store) as node:
        await run_workload(node)
    assert store.faults >= 3, f"only {store.faults} timer reads failed: nothing tested"


async def test_fired_timers_are_deleted_when_deleting_fails_for_a_while() -> None:
    """Fired timers are deleted in batches, later than they fire; a failed batch is tried again, so the
    store ends with no timer that was due (only those still to come, such as the closed runs' retention)."""
    store = FaultyStore(await SQLiteStore.open(None), timer_delete_failure=0.5)
    async with node_on(store) as node:
        await run_workload(node)
        finished = now_ms()
        shards = node.config.history_shard_count
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            due = now_ms() - 3000  # fired by now, and deleted by a later batch than the failed ones
            left = [
                timer
                for shard in range(shards + 1)
                for timer in await store.get_timer_tasks(shard, 0, due, 1000)
            ]
            if (due >= finished and not left) or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.5)
        store.armed = False
    assert left == [], f"{len(left)} fired timer tasks left in the store, e.g. {left[:3]}"
    assert store.faults >= 3, f"only {store.faults} timer deletes failed: nothing tested"


async def test_executed_transfer_tasks_are_deleted_and_the_ack_level_saved_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Executed transfer tasks are range-deleted every ack interval; the shard row gets the ack level
    only every ACK_SAVE_INTERVAL_S (not one conditional write per shard and second), and catches up."""
    monkeypatch.setattr(queues, "ACK_SAVE_INTERVAL_S", 3.0)
    store = FaultyStore(await SQLiteStore.open(None))
    async with node_on(store) as node:
        shards = dict(node.history.shards)
        began = asyncio.get_running_loop().time()
        await run_workload(node)
        await run_workload(node)
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            left = [t for s in shards for t in await store.get_transfer_tasks(s, 0, 2**62, 1000)]
            rows = {s: (await store.get_or_create_shard(s)).transfer_ack_level for s in shards}
            in_memory = {s: shard.transfer_ack_level for s, shard in shards.items()}
            if (not left and rows == in_memory) or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.5)
        elapsed = asyncio.get_running_loop().time() - began
    assert left == [], f"{len(left)} executed transfer tasks left in the store"
    assert rows == in_memory
    assert any(in_memory.values())
    # Per shard: its acquire, then a save per save interval at most, not one per second of work.
    assert store.shard_updates <= len(shards) * (2 + elapsed / 3.0), (store.shard_updates, elapsed)


# ---- a lost commit that lands after the run was read again ------------------------------------------------


def _writes_task(kind: str) -> Callable[[Sequence[ExecutionWrite]], bool]:
    return lambda writes: any(
        task.kind == kind for write in writes for task in [*write.transfer_tasks, *write.timer_tasks]
    )


async def _first_task_completed_late(
    client: Client, store: FaultyStore, queue: str, seed: int
) -> WorkflowHandle:
    """Start a workflow with no worker yet, take its first workflow task by hand and complete it as the
    workflow would (schedule `double(seed)`, activity id 1 for the SDK); the store holds that batch back
    (it lands with the next conditional write) and the completion fails with UNAVAILABLE."""
    handle = await client.start_workflow(
        ActivitiesAndTimer.run,
        seed,
        id=f"{queue}-{seed}",
        task_queue=queue,
        task_timeout=timedelta(seconds=1),
    )
    task = await client.workflow_service.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(
            namespace="default", task_queue=TaskQueue(name=queue), identity="by-hand"
        ),
        timeout=timedelta(seconds=10),
    )
    assert task.task_token
    store.delay_next_commit(_writes_task(TransferKind.ACTIVITY_TASK))
    schedule = Command(
        command_type=CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
        schedule_activity_task_command_attributes=ScheduleActivityTaskCommandAttributes(
            activity_id="1",
            activity_type=ActivityType(name="double"),
            task_queue=TaskQueue(name=queue),
            input=Payloads(payloads=await client.data_converter.encode([seed])),
            start_to_close_timeout=Duration(seconds=2),
        ),
    )
    with pytest.raises(RPCError) as failure:
        await client.workflow_service.respond_workflow_task_completed(
            RespondWorkflowTaskCompletedRequest(
                task_token=task.task_token, commands=[schedule], identity="by-hand"
            ),
            retry=False,
        )
    assert failure.value.status == RPCStatusCode.UNAVAILABLE
    return handle


async def test_an_activity_scheduled_by_a_commit_that_landed_late_is_dispatched() -> None:
    """The worker's completion (scheduling an activity) times out while a user looks at the workflow, and
    the batch lands later: the activity still reaches a worker, and the workflow completes."""
    store = FaultyStore(await SQLiteStore.open(None))
    async with node_on(store) as node:
        client = await Client.connect(f"127.0.0.1:{node.bound_port}")
        queue, seed = f"late-activity-{uuid.uuid4()}", 3
        handle = await _first_task_completed_late(client, store, queue, seed)
        await handle.describe()

        activity = await client.workflow_service.poll_activity_task_queue(
            PollActivityTaskQueueRequest(
                namespace="default", task_queue=TaskQueue(name=queue), identity="by-hand"
            ),
            timeout=timedelta(seconds=10),
        )
        assert activity.activity_type.name == "double", "the activity was never dispatched"
        await client.workflow_service.respond_activity_task_completed(
            RespondActivityTaskCompletedRequest(
                task_token=activity.task_token,
                result=Payloads(payloads=await client.data_converter.encode([seed * 2])),
                identity="by-hand",
            )
        )
        async with Worker(client, task_queue=queue, workflows=[ActivitiesAndTimer], activities=[double]):
            assert await asyncio.wait_for(handle.result(), timeout=30) == expected_result(seed)
        await assert_history_sound(client, handle.id)
    assert store.landed == 1


async def test_a_workflow_task_started_by_a_commit_that_landed_late_times_out() -> None:
    """A poll's start of a workflow task times out while a user looks at the workflow, and the batch lands
    later: the task, started for no worker, times out and goes to the next worker; the workflow completes."""
    store = FaultyStore(await SQLiteStore.open(None))
    # One partition: the poll must reach the commit it starts. (A poll forwarded from another partition
    # answers empty when its parent's start fails, instead of passing UNAVAILABLE on.)
    async with node_on(store, {"matching.numTaskqueueReadPartitions": 1}) as node:
        client = await Client.connect(f"127.0.0.1:{node.bound_port}")
        queue, seed = f"late-start-{uuid.uuid4()}", 5
        handle = await client.start_workflow(
            ActivitiesAndTimer.run,
            seed,
            id=f"{queue}-{seed}",
            task_queue=queue,
            task_timeout=timedelta(seconds=1),
        )
        store.delay_next_commit(_writes_task(TimerKind.WORKFLOW_TASK_TIMEOUT))
        with pytest.raises(RPCError) as failure:
            await client.workflow_service.poll_workflow_task_queue(
                PollWorkflowTaskQueueRequest(
                    namespace="default", task_queue=TaskQueue(name=queue), identity="by-hand"
                ),
                retry=False,
                timeout=timedelta(seconds=10),
            )
        assert failure.value.status == RPCStatusCode.UNAVAILABLE
        await handle.describe()

        # No worker polls until the start-to-close timeout had its time: nothing else touches the run.
        timed_out = False
        for _ in range(100):
            history = await handle.fetch_history()
            timed_out = any(
                e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT for e in history.events
            )
            if timed_out:
                break
            await asyncio.sleep(0.1)
        assert timed_out, "the workflow task started for no worker never timed out"
        async with Worker(client, task_queue=queue, workflows=[ActivitiesAndTimer], activities=[double]):
            assert await asyncio.wait_for(handle.result(), timeout=30) == expected_result(seed)
        await assert_history_sound(client, handle.id)
    assert store.landed == 1


async def test_a_transition_after_a_commit_that_landed_late_follows_it_in_history() -> None:
    """The worker's completion times out and the user terminates the workflow; the completion lands first
    (when the termination's batch reaches the shard). The history shows the completion, then the
    termination, once: nothing of a termination built on the state before the completion."""
    store = FaultyStore(await SQLiteStore.open(None))
    async with node_on(store) as node:
        client = await Client.connect(f"127.0.0.1:{node.bound_port}")
        queue, seed = f"late-then-terminate-{uuid.uuid4()}", 7
        handle = await _first_task_completed_late(client, store, queue, seed)
        await handle.terminate("by hand")

        history = await handle.fetch_history()
        assert [EventType.Name(e.event_type) for e in history.events] == [
            "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
            "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
            "EVENT_TYPE_WORKFLOW_TASK_STARTED",
            "EVENT_TYPE_WORKFLOW_TASK_COMPLETED",
            "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED",
            "EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED",
        ]
        assert [e.event_id for e in history.events] == list(range(1, 7))
    assert store.landed == 1
