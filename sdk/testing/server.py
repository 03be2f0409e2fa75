"""An embedded Hourglass for tests: `async with HourglassServer.start() as server: ...`.

The server runs in this process, on its own thread and event loop. That needs no binary (unlike the SDK's
`WorkflowEnvironment.start_local()`, which downloads and spawns the Temporal CLI), starts in a fraction of
a second, and outlives the test's event loops: pytest-asyncio may give every test its own loop, and a
server living on one would stop with it, while the synchronous calls of the SQLite store would stall the
workers and clients running on it. The store is an in-memory SQLite database unless a file is given.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Generator, Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import temporalio.client
    from temporalio.testing import WorkflowEnvironment

    from hourglass.cluster.node import Node

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


class HourglassServer:
    """A single Hourglass node (frontend, history, matching) serving on `target`."""

    def __init__(
        self,
        *,
        namespaces: Sequence[str] = ("default",),
        dynamic_config: Mapping[str, Any] | None = None,
        time_skipping: bool = False,
        ip: str = "127.0.0.1",
        port: int = 0,
        history_shards: int = 1,
        db_filename: str | None = None,
    ) -> None:
        """namespaces: created at start ("default" always is). dynamic_config: the reference's keys Hourglass
        takes, as `--dynamic-config-value` (a bad value fails the start with a ValueError naming the key;
        the history limits among them are process-wide, as on a node: they apply to every embedded server
        of this process). time_skipping: run on a virtual clock and serve the TestService (see
        `time_skipping_environment`). port 0: a free port. db_filename: None keeps state in memory."""
        self.namespaces = ["default", *[n for n in namespaces if n != "default"]]
        self.dynamic_config = dict(dynamic_config or {})
        self.time_skipping = time_skipping
        self.ip = ip
        self.port = port
        self.history_shards = history_shards
        self.db_filename = db_filename
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._node: Node | None = None

    # ---- starting and stopping -------------------------------------------------------------------------
    @classmethod
    def start(cls, **options: Any) -> _Starting:
        """Start a server: `async with HourglassServer.start(...) as server` stops it at the end of the block,
        `server = await HourglassServer.start(...)` leaves that to `await server.stop()`."""
        return _Starting(cls(**options))

    def start_blocking(self) -> HourglassServer:
        """Start from synchronous code (a session fixture, a script); returns once the frontend listens."""
        if self._thread is not None:
            raise RuntimeError("this server is already started")
        self._loop = _new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hourglass-server", daemon=True)
        self._thread.start()
        try:
            self._call(self._start_node(), START_TIMEOUT_S)
        except BaseException:
            self._stop_loop()
            raise
        return self

    def stop_blocking(self) -> None:
        """Stop the node and its thread (idempotent)."""
        if self._thread is None:
            return
        try:
            if self._node is not None:
                self._call(self._node.stop(grace=0.5), STOP_TIMEOUT_S)
        finally:
            self._node = None
            self._stop_loop()

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_blocking)

    async def __aenter__(self) -> HourglassServer:
        if self._thread is None:
            await asyncio.to_thread(self.start_blocking)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- what tests use --------------------------------------------------------------------------------
    @property
    def target(self) -> str:
        """host:port of the frontend, for `Client.connect` or `temporal --address`."""
        if self._node is None:
            raise RuntimeError("the server is not started")
        return f"{self.ip}:{self._node.bound_port}"

    async def client(self, namespace: str = "default", **kwargs: Any) -> temporalio.client.Client:
        """A new `temporalio` client of this server (keyword arguments go to `Client.connect`)."""
        from temporalio.client import Client

        return await Client.connect(self.target, namespace=namespace, **kwargs)

    async def time_skipping_environment(
        self, namespace: str = "default", **kwargs: Any
    ) -> WorkflowEnvironment:
        """temporalio's time-skipping `WorkflowEnvironment` on this server (started with time_skipping=True).

        Its shutdown leaves the server running: many environments can share one server, one at a time (time
        is global to the server, as on the SDKs' test server)."""
        from hourglass.sdk.testing.environment import time_skipping_environment

        if not self.time_skipping:
            raise RuntimeError("this server runs on the wall clock: start it with time_skipping=True")
        return time_skipping_environment(await self.client(namespace, **kwargs), None)

    # ---- the server thread -----------------------------------------------------------------------------
    async def _start_node(self) -> None:
        from hourglass.cluster.node import Node, NodeConfig
        from hourglass.persistence.sqlite.store import SQLiteStore

        config = NodeConfig(
            ip=self.ip,
            port=self.port,
            history_shard_count=self.history_shards,
            namespaces=self.namespaces,
            dynamic_config=dict(self.dynamic_config),
            time_skipping=self.time_skipping,
        )
        store = await SQLiteStore.open(self.db_filename)
        node = Node(config, store)
        try:
            await node.start()
        except BaseException:
            await node.stop(grace=0)
            raise
        self._node = node

    def _call(self, coro: Any, timeout: float) -> Any:
        assert self._loop is not None
        future: Future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(STOP_TIMEOUT_S)
        if not thread.is_alive():
            loop.close()


class _Starting:
    """What `HourglassServer.start()` returns: awaitable, or an async context manager."""

    def __init__(self, server: HourglassServer) -> None:
        self.server = server

    def __await__(self) -> Generator[Any, None, HourglassServer]:
        return self.server.__aenter__().__await__()

    async def __aenter__(self) -> HourglassServer:
        return await self.server.__aenter__()

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop()


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
