"""Calls routed to a shard's owner: an owner that does not answer (stopped by SIGSTOP, stuck, a hung host)
holds a long poll for the poll's own timeout and a grace, no longer; then the caller hears UNAVAILABLE
and the client retries, by then against the shard's next owner."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from hourglass.cluster import routing
from hourglass.cluster.errors import Unavailable
from hourglass.cluster.history.engine import HistoryEngine
from hourglass.cluster.membership.members import Member
from hourglass.cluster.placement import Placement
from hourglass.cluster.routing import RoutedHistory, Router
from hourglass.cluster.rpc.client import InternalClient
from hourglass.persistence.sqlite.store import SQLiteStore

from .states import minimal_state

HUNG = "127.0.0.1:1"


async def _hung_owner() -> tuple[grpc.aio.Server, str]:
    """An owner that takes every internal call and never answers it (stopped, or stuck)."""

    async def never_answer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await asyncio.Event().wait()
        return b""

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "hourglass.internal.v1.HistoryService",
                {"Invoke": grpc.unary_unary_rpc_method_handler(never_answer)},
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def test_a_long_poll_on_a_hung_owner_gives_up_after_its_own_timeout(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(routing, "LONG_CALL_GRACE_S", 0.5)
    server, address = await _hung_owner()
    placement = Placement(shard_count=4)
    placement.update([Member(HUNG, rpc_address=address)])  # it owns every shard
    client = InternalClient(lambda member_id: placement.members[member_id].rpc_address)
    history = RoutedHistory(
        HistoryEngine(await SQLiteStore.open(None), 4), Router("here:1", placement, client)
    )
    try:
        with pytest.raises(Unavailable, match="did not answer history.wait_for_change: DEADLINE_EXCEEDED"):
            # Two attempts (the owner, then whoever the ring names by then), each the poll's 1 s and the
            # grace: not the minute and a half a hung owner used to hold every long poll.
            await asyncio.wait_for(history.wait_for_change(minimal_state(), 1.0, True), 10)
    finally:
        await client.close()
        await server.stop(None)
