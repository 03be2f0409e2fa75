"""Test Temporal workflows against a real, embedded Hourglass: no binary, no download, time skipping.

- `HourglassServer`: `async with HourglassServer.start() as server:` then `await server.client()`.
- `start_time_skipping()` / `start_local()`: the SDK's `WorkflowEnvironment`s on an embedded server.
- The pytest plugin (loaded automatically when hourglass is installed): fixtures `hourglass_server`,
  `hourglass_client`, `hourglass_env` (time skipping); see pytest_plugin.py.
"""

from hourglass.sdk.testing.environment import (
    HourglassLocalEnvironment,
    HourglassTimeSkippingEnvironment,
    start_local,
    start_time_skipping,
)
from hourglass.sdk.testing.server import HourglassServer

__all__ = [
    "HourglassLocalEnvironment",
    "HourglassServer",
    "HourglassTimeSkippingEnvironment",
    "start_local",
    "start_time_skipping",
]
