"""pytest fixtures for testing workflows on an embedded Hourglass.

Loaded automatically when hourglass is installed (the `pytest11` entry point), like any pytest plugin:

- `hourglass_server` (session): a wall-clock server, shared by the session's tests.
- `hourglass_client` (function): a new `temporalio` client of it, namespace "default".
- `hourglass_time_skipping_server` (session): a second server, on a virtual clock.
- `hourglass_env` (function): temporalio's time-skipping `WorkflowEnvironment` on that server: awaiting a
  workflow's result skips its timers; `env.sleep()` and `env.get_current_time()` use its clock.
- `hourglass_server_options` (session): override it to configure both servers (namespaces,
  dynamic_config, history_shards: the keyword arguments of `HourglassServer`).

The servers run on their own threads, so the session fixtures are plain (synchronous) ones and work with
any event-loop scope; the client and environment fixtures need pytest-asyncio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

try:
    import pytest_asyncio

    _async_fixture = pytest_asyncio.fixture
except ImportError:  # the async fixtures then need another plugin that runs coroutine fixtures
    _async_fixture = pytest.fixture

if TYPE_CHECKING:
    import temporalio.client
    from temporalio.testing import WorkflowEnvironment

    from hourglass.sdk.testing.server import HourglassServer


@pytest.fixture(scope="session")
def hourglass_server_options() -> dict[str, Any]:
    return {}


def _serve(options: dict[str, Any], time_skipping: bool) -> Iterator[HourglassServer]:
    from hourglass.sdk.testing.server import HourglassServer

    server = HourglassServer(**{**options, "time_skipping": time_skipping}).start_blocking()
    try:
        yield server
    finally:
        server.stop_blocking()


@pytest.fixture(scope="session")
def hourglass_server(hourglass_server_options: dict[str, Any]) -> Iterator[HourglassServer]:
    yield from _serve(hourglass_server_options, time_skipping=False)


@pytest.fixture(scope="session")
def hourglass_time_skipping_server(hourglass_server_options: dict[str, Any]) -> Iterator[HourglassServer]:
    yield from _serve(hourglass_server_options, time_skipping=True)


@_async_fixture
async def hourglass_client(hourglass_server: HourglassServer) -> temporalio.client.Client:
    return await hourglass_server.client()


@_async_fixture
async def hourglass_env(
    hourglass_time_skipping_server: HourglassServer,
) -> AsyncIterator[WorkflowEnvironment]:
    env = await hourglass_time_skipping_server.time_skipping_environment()
    try:
        yield env
    finally:
        await env.shutdown()
