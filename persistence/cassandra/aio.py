"""cassandra-driver's callback futures, awaited from asyncio without blocking the event loop.

The driver runs its own I/O thread (libev when compiled, else asyncio/asyncore): `execute_async` returns a
ResponseFuture whose callbacks fire on that thread. Each request here gets an asyncio future that the
callback settles through `loop.call_soon_threadsafe`, so the event loop only ever waits on its own future.
Pages are fetched one request at a time with the previous page's paging state (the driver's blocking
`fetch_next_page` is never used).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from cassandra.cluster import ResponseFuture, ResultSet, Session


async def execute(
    session: Session,
    statement: Any,
    parameters: Any = None,
    *,
    paging_state: bytes | None = None,
    timeout: float | None = None,
) -> ResultSet:
    """Run one request; returns its ResultSet (use `.current_rows`, never iterate past the page)."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[ResultSet] = loop.create_future()
    kwargs: dict[str, Any] = {"paging_state": paging_state}
    if timeout is not None:
        kwargs["timeout"] = timeout
    response: ResponseFuture = session.execute_async(statement, parameters, **kwargs)

    def on_result(_rows: Any) -> None:
        _settle_threadsafe(loop, waiter, response, None)

    def on_error(error: BaseException) -> None:
        _settle_threadsafe(loop, waiter, response, error)

    response.add_callbacks(on_result, on_error)
    return await waiter


async def pages(
    session: Session, statement: Any, parameters: Any = None, *, timeout: float | None = None
) -> AsyncIterator[list[Any]]:
    """Every page of a query's rows, fetched one request per page as the caller advances."""
    paging_state: bytes | None = None
    while True:
        result = await execute(session, statement, parameters, paging_state=paging_state, timeout=timeout)
        yield list(result.current_rows)
        paging_state = result.paging_state
        if not paging_state:
            return


def _settle_threadsafe(
    loop: asyncio.AbstractEventLoop,
    waiter: asyncio.Future[ResultSet],
    response: ResponseFuture,
    error: BaseException | None,
) -> None:
    try:
        loop.call_soon_threadsafe(_settle, waiter, response, error)
    except RuntimeError:
        pass  # the loop was closed while the request ran: nobody is waiting any more


def _settle(waiter: asyncio.Future[ResultSet], response: ResponseFuture, error: BaseException | None) -> None:
    if waiter.done():  # the awaiting task was cancelled
        return
    if error is not None:
        waiter.set_exception(error)
    else:
        # The driver sets its event before running callbacks, so result() returns at once.
        waiter.set_result(response.result())
