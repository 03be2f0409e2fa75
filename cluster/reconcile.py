"""The loop both shard-ownership keepers run: reconcile now, then again when woken or after an interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def reconcile_forever(
    reconcile: Callable[[], Awaitable[None]], wake: asyncio.Event, interval_s: float
) -> None:
    """Run `reconcile` until cancelled; a failure is logged and retried at the next round, never fatal."""
    while True:
        try:
            await reconcile()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("shard ownership reconciliation failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), interval_s)
        wake.clear()
