"""Routing proxies: the history, matching and schedule engines as every caller on a node sees them in a
cluster.

The frontend, matching (recording task starts), and history itself (child starts, external signals and
cancels) call these proxies with the engines' own method names and arguments; each call runs on the member
that owns the run's shard or the task queue's partition: here if that is this node, otherwise over the
internal RPC. A call that meets a shard in motion is retried once, on the owner the ring names then; if it
still cannot be served the caller gets a retryable UNAVAILABLE that says why.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import random
from collections.abc import Callable

from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType

from hourglass.cluster.batcher.engine import BatchEngine
from hourglass.cluster.errors import NodeUnreachable, ShardNotOwned, Unavailable
from hourglass.cluster.history import standalone_ids
from hourglass.cluster.history.engine import HistoryEngine, shard_id_for
from hourglass.cluster.matching import sticky_placement
from hourglass.cluster.matching.engine import MatchingEngine
from hourglass.cluster.placement import Placement
from hourglass.cluster.rpc.client import DEFAULT_TIMEOUT_S, InternalClient
from hourglass.cluster.scheduler.engine import ScheduleEngine

log = logging.getLogger(__name__)

WORKFLOW = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
ACTIVITY = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
NEXUS = TaskQueueType.TASK_QUEUE_TYPE_NEXUS
STICKY = TaskQueueKind.TASK_QUEUE_KIND_STICKY
# Long enough for a new owner to take a shard (one LWT) after the ring moved it.
RETRY_DELAY_S = 0.5
# How much longer than a long poll's own timeout its owner may take to answer it: room for a task it
# matched at the last moment to be recorded as started in history, even on a loaded node.
LONG_CALL_GRACE_S = 10.0


def _by_execution(i: int) -> Callable[[tuple], tuple[str, str]]:
    return lambda a: (a[0], a[i].workflow_id)


def _by_token(a: tuple) -> tuple[str, str]:
    return a[0].namespace_id, a[0].workflow_id


def _by_request(a: tuple) -> tuple[str, str]:
    return a[0], a[1].execution.workflow_id


def _by_state(a: tuple) -> tuple[str, str]:
    return a[0].info.namespace_id, a[0].info.workflow_id


# History operations callers may invoke on any node -> (namespace id, workflow id) from their arguments.
HISTORY_ROUTES: dict[str, Callable[[tuple], tuple[str, str]]] = {
    "complete_nexus_operation": _by_execution(1),
    "start_workflow": _by_execution(2),  # the request carries workflow_id like an execution does
    "signal_with_start": _by_execution(2),
    "signal": _by_execution(1),
    "request_cancel": _by_execution(1),
    "terminate": _by_execution(1),
    "get_mutable_state": _by_execution(1),
    "delete_workflow": _by_execution(1),
    "reset_workflow": _by_execution(2),
    "record_workflow_task_started": _by_execution(1),
    "record_activity_task_started": _by_execution(2),
    "respond_workflow_task_completed": _by_token,
    "respond_workflow_task_failed": _by_token,
    "respond_activity_completed": _by_token,
    "respond_activity_failed": _by_token,
    "respond_activity_canceled": _by_token,
    "record_activity_heartbeat": _by_token,
    "get_workflow_history": lambda a: (a[0], a[1].execution.workflow_id),
    "read_history": _by_state,
    "read_history_page": _by_state,
    "read_history_response": _by_state,
    "wait_for_change": _by_state,
    "notify_parent_of_child_close": lambda a: (a[0].namespace_id, a[0].workflow_id),
    "reset_sticky_task_queue": _by_execution(1),
    "update_workflow": _by_execution(1),
    "poll_update": _by_execution(1),
    "update_with_start": _by_execution(2),  # the start request carries workflow_id
    "consistent_query": _by_execution(1),
    "pause_activity": _by_request,
    "unpause_activity": _by_request,
    "reset_activity": _by_request,
    "update_activity_options": _by_request,
    "start_activity_execution": lambda a: (a[0], standalone_ids.workflow_id(a[2].activity_id)),
    "request_cancel_activity_execution": _by_execution(1),
    "start_nexus_operation_execution": lambda a: (a[0], standalone_ids.nexus_workflow_id(a[2].operation_id)),
    "request_cancel_nexus_operation_execution": _by_execution(1),
    "pause_workflow": lambda a: (a[0], a[1].workflow_id),
    "update_workflow_options": _by_execution(1),
    "unpause_workflow": lambda a: (a[0], a[1].workflow_id),
}

# The pseudo task queue whose partition owner keeps a namespace's worker heartbeats: one member per
# namespace, so a heartbeat sent to any node and a ListWorkers asked of any node meet on the same registry.
WORKER_REGISTRY = "/_sys/worker-registry"

# Matching operations -> (namespace id, task queue name, task queue type). An operation with a
# `partition` argument runs on that partition's owner; one without (or -1 for an add or a poll, which then
# picks one, see PARTITION_CHOICE) on the root partition's owner.
MATCHING_ROUTES: dict[str, Callable[[tuple], tuple[str, str, int]]] = {
    "add_workflow_task": lambda a: (a[0], a[1], WORKFLOW),
    "add_activity_task": lambda a: (a[0], a[1], ACTIVITY),
    "poll_workflow_task": lambda a: (a[0], a[1], WORKFLOW),
    "poll_activity_task": lambda a: (a[0], a[2], ACTIVITY),
    "offer_task": lambda a: (a[0], a[1], a[2]),
    "load_partition": lambda a: (a[0], a[1], a[2]),
    "query_workflow": lambda a: (a[0], a[1], WORKFLOW),
    "dispatch_nexus_task": lambda a: (a[0], a[1], NEXUS),
    "poll_nexus_task": lambda a: (a[0], a[1], NEXUS),
    "partition_pollers": lambda a: (a[0], a[1], a[2]),
    "versions_polled": lambda a: (a[0], a[1], WORKFLOW),
    "partition_stats": lambda a: (a[0], a[1], a[2]),
    "queue_status": lambda a: (a[0], a[1], a[2]),
    "queue_config": lambda a: (a[0], a[1], a[2]),
    "update_queue_config": lambda a: (a[0], a[1], a[2]),
    # Sticky queues live where their worker polls (sticky_placement.py): ShutdownWorker's unload goes to
    # every member, a versioned worker's note to the member its sticky polls go to.
    "unload_sticky_queue": lambda a: (a[0], a[1], WORKFLOW),
    "note_sticky_version": lambda a: (a[0], a[1], WORKFLOW),
    "redirect_backlog": lambda a: (a[0], a[1], a[2]),
    "complete_worker_polls": lambda a: (a[0], a[1], a[2]),
    "record_worker_heartbeats": lambda a: (a[0], WORKER_REGISTRY, WORKFLOW),
    "list_workers": lambda a: (a[0], WORKER_REGISTRY, WORKFLOW),
    "count_workers": lambda a: (a[0], WORKER_REGISTRY, WORKFLOW),
    "describe_worker": lambda a: (a[0], WORKER_REGISTRY, WORKFLOW),
}
# Operations that pick a partition when the caller names none: True for a write (add), False for a read.
PARTITION_CHOICE = {
    "add_workflow_task": True,
    "add_activity_task": True,
    "poll_workflow_task": False,
    "poll_activity_task": False,
}

# Schedule operations -> (namespace id, schedule id): a schedule lives in the shard of that pair.
SCHEDULE_ROUTES: dict[str, Callable[[tuple], tuple[str, str]]] = {
    "create": lambda a: (a[1], a[2]),  # (namespace, namespace id, schedule id, ...)
    "describe": lambda a: (a[0], a[1]),
    "update": lambda a: (a[0], a[1]),
    "patch": lambda a: (a[0], a[1]),
    "delete": lambda a: (a[0], a[1]),
    "matching_times": lambda a: (a[0], a[1].schedule_id),
}


class Router:
    """Runs an operation on its owner (here or remote), retrying once if ownership moves under it."""

    def __init__(self, member_id: str, placement: Placement, client: InternalClient) -> None:
        self.member_id = member_id
        self.placement = placement
        self.client = client

    async def run(
        self,
        what: str,
        find_owner: Callable[[], str | None],
        local: Callable,
        service: str,
        method: str,
        args: tuple,
        timeout: float,
    ) -> object:
        for attempt in range(2):
            owner = find_owner()
            try:
                if owner is None:
                    raise ShardNotOwned(f"no member serves {what} right now")
                if owner == self.member_id:
                    return await local(*args)
                return await self.client.invoke(owner, service, method, args, timeout)
            except (ShardNotOwned, NodeUnreachable) as e:
                if attempt == 1:
                    raise Unavailable(
                        f"{what} is moving between cluster members, try again: {e.message}"
                    ) from None
                log.debug("%s: %s; retrying", what, e.message)
                await asyncio.sleep(RETRY_DELAY_S)
        raise AssertionError("unreachable")


_SIGNATURES: dict[object, inspect.Signature] = {}


def _signature(fn: Callable) -> inspect.Signature:
    """The (bound) method's signature, computed once per method: inspect.signature on every routed call
    cost more CPU than the rest of the routing."""
    key = getattr(fn, "__func__", fn)
    sig = _SIGNATURES.get(key)
    if sig is None:
        sig = _SIGNATURES[key] = inspect.signature(fn)
    return sig


def _bind(fn: Callable, args: tuple, kwargs: dict, pick=None) -> tuple[tuple, float]:
    """Positional arguments in the method's order (keyword and default ones included) for the envelope,
    and how long to wait for the owner's reply.

    A long poll (any operation with a `timeout` argument) gets its own timeout plus a grace: the owner
    answers by then unless it is frozen or gone, and then the caller should hear so and try the shard's
    next owner, not hang in a call to a paused process for a fixed minute and a half.
    """
    bound = _signature(fn).bind(*args, **kwargs)
    bound.apply_defaults()
    if pick is not None:
        pick(bound.arguments)
    own_timeout = bound.arguments.get("timeout")
    rpc_timeout = DEFAULT_TIMEOUT_S if own_timeout is None else float(own_timeout) + LONG_CALL_GRACE_S
    return bound.args, rpc_timeout


def _arguments(fn: Callable, args: tuple, kwargs: dict) -> dict:
    """Every argument of a call to `fn` by name, defaults included, in the method's order."""
    bound = _signature(fn).bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


class RoutedHistory:
    def __init__(self, engine: HistoryEngine, router: Router) -> None:
        self.engine = engine
        self.router = router

    def __getattr__(self, name: str):
        if name not in HISTORY_ROUTES:
            return getattr(self.engine, name)
        return functools.partial(self._call, name)

    async def _call(self, name: str, *args, **kwargs):
        local = getattr(self.engine, name)
        args, timeout = _bind(
            local, args, kwargs, self._name_sticky_home if name == "respond_workflow_task_completed" else None
        )
        namespace_id, workflow_id = HISTORY_ROUTES[name](args)
        shard_id = shard_id_for(namespace_id, workflow_id, self.engine.shard_count)
        return await self.router.run(
            f"history shard {shard_id}",
            lambda: self.router.placement.shard_owner(shard_id),
            local,
            "history",
            name,
            args,
            timeout,
        )

    def _name_sticky_home(self, arguments: dict) -> None:
        """A completion that makes the run sticky names the member that serves the worker's sticky queue:
        the one it polls through, which is the one its completion came through (sticky_placement.py)."""
        request = arguments["request"]
        if not arguments["sticky_member"] and request.sticky_attributes.worker_task_queue.name:
            arguments["sticky_member"] = (
                sticky_placement.home(
                    self.router,
                    arguments["token"].namespace_id,
                    request.sticky_attributes.worker_task_queue.name,
                )
                or ""
            )


class RoutedSchedules:
    """Schedule operations run on the member whose shard holds the schedule (its engine runs it there);
    listing reads every shard from wherever it is called (ScheduleEngine.list)."""

    routes = SCHEDULE_ROUTES
    service = "schedules"

    def __init__(self, engine: ScheduleEngine, router: Router) -> None:
        self.engine = engine
        self.router = router

    def __getattr__(self, name: str):
        if name not in self.routes:
            return getattr(self.engine, name)
        return functools.partial(self._call, name)

    async def _call(self, name: str, *args, **kwargs):
        local = getattr(self.engine, name)
        args, timeout = _bind(local, args, kwargs)
        namespace_id, schedule_id = self.routes[name](args)
        shard_id = shard_id_for(namespace_id, schedule_id, self.engine.history.shard_count)
        return await self.router.run(
            f"history shard {shard_id}",
            lambda: self.router.placement.shard_owner(shard_id),
            local,
            self.service,
            name,
            args,
            timeout,
        )


# Batch operations -> (namespace id, job id): a batch lives in the shard of that pair.
BATCH_ROUTES: dict[str, Callable[[tuple], tuple[str, str]]] = {
    "start_batch": lambda a: (a[1], a[2].job_id),  # (namespace, namespace id, request)
    "stop_batch": lambda a: (a[0], a[1]),
    "describe": lambda a: (a[0], a[1]),
}


class RoutedBatches(RoutedSchedules):
    """Batch operations run on the member whose shard holds the batch (its engine runs it there);
    listing reads every shard from wherever it is called (BatchEngine.list)."""

    routes = BATCH_ROUTES
    service = "batches"

    def __init__(self, engine: BatchEngine, router: Router) -> None:
        self.engine = engine  # type: ignore[assignment]
        self.router = router


class RoutedMatching:
    def __init__(self, engine: MatchingEngine, router: Router) -> None:
        self.engine = engine
        self.router = router
        self.sticky = sticky_placement.StickyRoutes(engine, router)

    def __getattr__(self, name: str):
        if name not in MATCHING_ROUTES:
            return getattr(self.engine, name)
        return functools.partial(self._call, name)

    async def add_workflow_task(self, *args, **kwargs) -> None:
        """A sticky task goes to the member serving its sticky queue (sticky_placement.py); any other as
        routed."""
        arguments = _arguments(self.engine.add_workflow_task, args, kwargs)
        if arguments["kind"] == STICKY:
            return await self.sticky.add(tuple(arguments.values()), arguments["member"])
        return await self._call("add_workflow_task", **arguments)

    async def query_workflow(self, *args, **kwargs):
        """A sticky run's query is asked of its sticky queue's member first, then of the normal queue."""
        arguments = _arguments(self.engine.query_workflow, args, kwargs)
        if arguments["sticky_queue"] and arguments["sticky_member"]:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + arguments["timeout"]
            answer = await self.sticky.query(
                arguments["sticky_member"],
                arguments["namespace_id"],
                arguments["sticky_queue"],
                arguments["execution"],
                arguments["query"],
                min(arguments["sticky_timeout"], arguments["timeout"]),
            )
            if answer is not None:
                return answer
            arguments.update(sticky_queue="", sticky_member="", timeout=max(deadline - loop.time(), 0.0))
        return await self._call("query_workflow", **arguments)

    async def unload_sticky_queue(self, namespace_id: str, name: str) -> None:
        await self.sticky.unload(namespace_id, name)

    async def sticky_pollers(self, namespace_id: str, name: str) -> list[tuple[str, float, str, float]]:
        return await self.sticky.pollers(namespace_id, name)

    async def _call(self, name: str, *args, **kwargs):
        local = getattr(self.engine, name)

        def pick(arguments: dict) -> None:
            if name in PARTITION_CHOICE and arguments["partition"] < 0:
                namespace_id, queue, task_type = MATCHING_ROUTES[name](tuple(arguments.values()))
                arguments["partition"] = self.choose_partition(
                    namespace_id, queue, task_type, arguments.get("kind", 0), PARTITION_CHOICE[name]
                )

        args, timeout = _bind(local, args, kwargs, pick)
        namespace_id, queue, task_type = MATCHING_ROUTES[name](args)
        signature = _signature(local).parameters
        number = args[list(signature).index("partition")] if "partition" in signature else 0
        sticky = name == "note_sticky_version" or (
            name == "poll_workflow_task" and args[list(signature).index("kind")] == STICKY
        )
        return await self.router.run(
            f"task queue {queue}" if number == 0 else f"task queue partition /_sys/{queue}/{number}",
            (
                (lambda: self.sticky.home(namespace_id, queue))
                if sticky
                else (lambda: self.router.placement.partition_owner(namespace_id, queue, task_type, number))
            ),
            local,
            "matching",
            name,
            args,
            timeout,
        )

    def choose_partition(self, namespace_id: str, queue: str, task_type: int, kind: int, write: bool) -> int:
        """The partition an add (write) or a poll (read) that names none goes to: one this member owns if
        any, the root first (where tasks and polls of every partition meet), so the call itself takes no
        internal hop and at most one more up the tree; else one at random (the reference's load balancer
        picks at random: any partition is correct, tasks and polls meet at the root whichever they take).
        """
        engine = self.engine
        count = (engine.write_partitions if write else engine.read_partitions)(
            namespace_id, queue, task_type, kind
        )
        if count <= 1:
            return 0
        me, owner = self.router.member_id, self.router.placement.partition_owner
        local = [n for n in range(count) if owner(namespace_id, queue, task_type, n) == me]
        if not local:
            return engine.choose_partition(namespace_id, queue, task_type, kind, write)
        return 0 if local[0] == 0 else random.choice(local)

    async def respond_nexus_task(self, task_id: str, response) -> bool:
        """The answer goes to the member whose matching dispatched the task: its id prefixes the task id."""
        member_id, sep, _ = task_id.partition("|")
        if not sep or member_id == self.router.member_id:
            return await self.engine.respond_nexus_task(task_id, response)
        try:
            return await self.router.client.invoke(
                member_id, "matching", "respond_nexus_task", (task_id, response)
            )
        except NodeUnreachable:
            return False

    async def respond_query_task_completed(self, query_id: str, request) -> bool:
        """The answer goes to the member whose matching waits for it: its id prefixes the query id."""
        member_id, sep, _ = query_id.partition("|")
        if not sep or member_id == self.router.member_id:
            return await self.engine.respond_query_task_completed(query_id, request)
        try:
            return await self.router.client.invoke(
                member_id, "matching", "respond_query_task_completed", (query_id, request)
            )
        except NodeUnreachable:
            return False
