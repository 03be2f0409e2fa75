"""A worker in its own process, for tests that kill it: `python -m compat.sticky_worker ADDRESS TASK_QUEUE`.

It runs the compat workflows with a short sticky schedule-to-start timeout and prints `ready` once
polling; killed with SIGKILL it never tells the server it left (no ShutdownWorker).
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from .workflows import ALL_WORKFLOWS

STICKY_TIMEOUT = timedelta(seconds=2)


async def main(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=ALL_WORKFLOWS,
        sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT,
    ):
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
