"""Group commit: the transitions of one shard that are ready together go to the store as ONE commit.

On Cassandra every commit is a Paxos round on the shard's partition, and concurrent rounds on one
partition contend (they retry each other's ballots): one batch of N transitions costs about what one
transition did, N batches cost far more. On SQLite a group is one transaction instead of N.

Each request may bring the history nodes its writes commit, to be appended before its batch. That is a
pipeline of two stages: the nodes of every request made ready in the same turn of the event loop are
appended together (as few store requests as the store allows: Store.append_history_nodes; appends are not
conditional, so any number may be out at once), and each request then joins the batch queue below, where
it is grouped again with the requests whose appends ended meanwhile. A failed append is told to the
requests of that append (nothing of theirs reached a batch); a value no store can encode sends each again
alone, so only the bad one fails.

No latency is added when idle: the first request is sent at once (at the end of the event loop's turn, so
requests made ready in the same turn go together). With `linger` (seconds), a request that arrives while a
batch of the shard is out waits for that batch to end, or at most `linger`, whichever comes first: what
arrives meanwhile goes along, at a cost of at most `linger` per transition, and only under load. Requests
that arrive while `max_in_flight` batches are out wait for one to end. Waiting requests form the next group (at most `max_writes` writes and about `max_bytes` of state and task
data; a request is never split). The outcome of a group is told to each request:

- applied: every request succeeds;
- a condition failed (ConditionFailedError): the store names the failing writes, nothing was applied;
  each request with a failing write gets the error (with its own write indices), and the others are sent
  again at once as a group of their own, which shrinks each time, so they end;
- the shard's fence failed (ShardOwnershipLostError): every request gets it;
- a write no store can encode (UnencodableWriteError, ValueError): nothing was sent, and the error belongs
  to one request's values: each request is sent again alone, so only the bad one fails;
- anything else (timeout, lost connection: the outcome is unknown) is told to every request of the group,
  whose callers apply today's fencing rules to each (see cluster/history/shard.py).

Nodes are appended once per request: a request sent again in a smaller group does not write them again.

A caller cancelled while its request still waits is removed before it is sent (nothing written); once
sent, the batch runs to its end in its own task, whatever happens to the callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from hourglass.persistence.errors import ConditionFailedError, StoreUnavailableError, UnencodableWriteError
from hourglass.persistence.records import ExecutionWrite, HistoryNode
from hourglass.persistence.store import Store

log = logging.getLogger(__name__)

# A group's caps. Cassandra checks batch size thresholds only for batches spanning several partitions; a
# commit is one partition, so the byte cap only bounds one Paxos proposal (and a group's memory).
MAX_WRITES = 32
MAX_BYTES = 512 * 1024
# Batches of one shard in flight at once. One gives the most grouping, but one slow batch (a latency
# tail of the database) then holds up every transition of the shard; a few in flight keep the others
# moving and still group everything that arrives while they are all out (loadtest/RESULTS-cassandra.md).
MAX_IN_FLIGHT = 4
# No linger by default (hourglass.groupCommit.lingerMs): see loadtest/RESULTS-cassandra.md.
LINGER_S = 0.0


def write_size(write: ExecutionWrite) -> int:
    """Approximate bytes a write adds to a batch: its state and its tasks' data."""
    size = len(write.record.state) + 64
    for task in write.transfer_tasks:
        size += len(task.data) + 48
    for timer in write.timer_tasks:
        size += len(timer.data) + 56
    return size


class _Request:
    __slots__ = ("writes", "nodes", "size", "future", "sent", "abandoned")

    def __init__(
        self, writes: Sequence[ExecutionWrite], nodes: Sequence[HistoryNode], future: asyncio.Future[None]
    ) -> None:
        self.writes = list(writes)
        self.nodes = list(nodes)  # emptied once appended
        self.size = sum(write_size(w) for w in self.writes)
        self.future = future
        self.sent = False  # its batch was sent: it runs to its end whatever the caller does
        self.abandoned = False  # the caller was cancelled before that: never sent


class GroupCommitter:
    """Merges concurrent commits of one shard into as few store commits as possible (module docstring).

    `range_id` and `check` are called just before each batch is sent: the batch carries the shard's range
    id of that moment, and `check` may raise (e.g. the shard was released) to fail the whole group unsent.
    """

    def __init__(
        self,
        store: Store,
        shard_id: int,
        range_id: Callable[[], int],
        check: Callable[[], None] | None = None,
        *,
        max_writes: int = MAX_WRITES,
        max_bytes: int = MAX_BYTES,
        max_in_flight: int = MAX_IN_FLIGHT,
        linger: float = LINGER_S,
    ) -> None:
        if max_writes < 1 or max_bytes < 1 or max_in_flight < 1:
            raise ValueError("group commit caps must be positive")
        if linger < 0:
            raise ValueError("group commit linger must not be negative")
        self._store = store
        self._shard_id = shard_id
        self._range_id = range_id
        self._check = check
        self._max_writes = max_writes
        self._max_bytes = max_bytes
        self._max_in_flight = max_in_flight
        self._linger = linger
        self._linger_timer: asyncio.TimerHandle | None = None
        self._queue: deque[_Request] = deque()
        self._to_append: list[_Request] = []
        self._append_scheduled = False
        self._in_flight = 0
        self._kick_scheduled = False
        self._senders: set[asyncio.Task[None]] = set()

    async def commit(self, writes: Sequence[ExecutionWrite], nodes: Sequence[HistoryNode] = ()) -> None:
        """Append `nodes` (Store.append_history_nodes), then commit `writes` atomically (as Store.commit),
        both possibly together with other callers'.

        Raises what Store.commit would have raised for these writes alone (or what the append raised); a
        ConditionFailedError's indices are those of `writes`.
        """
        request = _Request(writes, nodes, asyncio.get_running_loop().create_future())
        # A caller that stopped waiting never reads its outcome: read here, so asyncio logs no warning.
        request.future.add_done_callback(_retrieve)
        if request.nodes:
            self._to_append.append(request)
            if not self._append_scheduled:
                # At the end of this turn of the loop: the nodes made ready in the same turn go together.
                self._append_scheduled = True
                asyncio.get_running_loop().call_soon(self._start_append)
        else:
            self._queue.append(request)
            self._schedule()
        try:
            # shield: a cancelled caller must not cancel the append or batch it shares with others.
            await asyncio.shield(request.future)
        except asyncio.CancelledError:
            if not request.sent:
                request.abandoned = True
                with contextlib.suppress(ValueError):
                    self._queue.remove(request)
                with contextlib.suppress(ValueError):
                    self._to_append.remove(request)
            raise

    def _start_append(self) -> None:
        self._append_scheduled = False
        requests, self._to_append = self._to_append, []
        if requests:
            self._spawn(self._append_then_queue(requests))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro, name=f"group-commit-{self._shard_id}")
        self._senders.add(task)
        task.add_done_callback(self._senders.discard)

    async def _append_then_queue(self, requests: list[_Request]) -> None:
        """Append the requests' nodes together, then queue them for their batch."""
        try:
            if self._check is not None:
                self._check()
            await self._append(requests)
        except UnencodableWriteError as e:
            if len(requests) == 1:
                _resolve(requests[0], e)
                return
            for request in requests:  # one request's value: find which, each alone
                await self._append_then_queue([request])
            return
        except asyncio.CancelledError:
            unknown = StoreUnavailableError("group commit cancelled during its history append")
            for request in requests:
                _resolve(request, unknown)
            raise
        except Exception as e:  # unavailable, the shard released: no batch of theirs was sent
            for request in requests:
                _resolve(request, e)
            return
        waiting = [r for r in requests if not r.abandoned and not r.future.done()]
        if waiting:
            self._queue.extend(waiting)
            self._schedule()

    def _schedule(self) -> None:
        """Arrange for the waiting requests to be sent: at the end of this turn of the loop (the commits
        made ready in the same turn go together), or, while a batch is out and `linger` is set, when it ends
        or the linger expires. While `max_in_flight` batches are out, the next one to end sends them."""
        if self._kick_scheduled or self._in_flight >= self._max_in_flight:
            return
        loop = asyncio.get_running_loop()
        if self._in_flight == 0 or self._linger <= 0:
            self._kick_scheduled = True
            loop.call_soon(self._kick)
        elif self._linger_timer is None:
            self._linger_timer = loop.call_later(self._linger, self._kick)

    def _kick(self) -> None:
        """Send waiting requests as groups while fewer than `max_in_flight` batches are out."""
        self._kick_scheduled = False
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        while self._queue and self._in_flight < self._max_in_flight:
            group = self._take_group()
            for request in group:
                request.sent = True
            self._in_flight += 1
            self._spawn(self._run(group))

    async def _run(self, group: list[_Request]) -> None:
        try:
            await self._send(group)
        finally:
            self._in_flight -= 1
            self._kick()

    def _take_group(self) -> list[_Request]:
        group = [self._queue.popleft()]
        writes, size = len(group[0].writes), group[0].size
        while self._queue:
            nxt = self._queue[0]
            if writes + len(nxt.writes) > self._max_writes or size + nxt.size > self._max_bytes:
                break
            group.append(self._queue.popleft())
            writes += len(nxt.writes)
            size += nxt.size
        return group

    async def _send(self, group: list[_Request]) -> None:
        """One group to its end: every request's future is resolved, or re-sent in a smaller group."""
        while group:
            group = [r for r in group if not r.future.done()]
            if not group:
                return
            try:
                if self._check is not None:
                    self._check()
                writes = [w for request in group for w in request.writes]
                await self._store.commit(self._shard_id, self._range_id(), writes)
            except ConditionFailedError as e:
                group = self._fail_named(group, e)
                continue
            except (UnencodableWriteError, ValueError) as e:
                if len(group) == 1:
                    _resolve(group[0], e)
                    return
                for request in group:  # one request's value: find which, each alone
                    await self._send([request])
                return
            except asyncio.CancelledError:
                # This task was cancelled (the loop is closing) with the batch maybe sent: outcome unknown.
                unknown = StoreUnavailableError("group commit cancelled: the outcome of its batch is unknown")
                for request in group:
                    _resolve(request, unknown)
                raise
            except Exception as e:  # timeout, lost connection, fence: every request of the group learns it
                for request in group:
                    _resolve(request, e)
                return
            for request in group:
                _resolve(request, None)
            return

    async def _append(self, group: list[_Request]) -> None:
        """The history nodes of the requests (before their batch)."""
        nodes = [node for request in group for node in request.nodes]
        try:
            await self._store.append_history_nodes(nodes)
        except (OverflowError, ValueError) as e:  # a value no column holds: that request's, sent alone
            raise UnencodableWriteError(str(e)) from e
        for request in group:
            request.nodes = []

    @staticmethod
    def _fail_named(group: list[_Request], e: ConditionFailedError) -> list[_Request]:
        """Tell the requests with a failing write; return the others, to be sent again."""
        if not e.failures:
            for request in group:
                _resolve(request, e)
            return []
        innocent: list[_Request] = []
        offset = 0
        for request in group:
            n = len(request.writes)
            own = {i - offset: reason for i, reason in e.failures.items() if offset <= i < offset + n}
            offset += n
            if own:
                _resolve(request, e if len(group) == 1 else ConditionFailedError(own, "in a group commit"))
            else:
                innocent.append(request)
        if innocent:
            log.debug(
                "group commit: %d of %d re-sent after others' conditions failed", len(innocent), len(group)
            )
        return innocent


def _resolve(request: _Request, error: Exception | None) -> None:
    if request.future.done():
        return
    if error is None:
        request.future.set_result(None)
    else:
        request.future.set_exception(error)


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
