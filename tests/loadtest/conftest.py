"""A Hourglass start-dev on free ports (metrics included, when the build has them) for the load tool's tests.

The tests check that the tool works, never how fast the server is.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from hourglass.loadtest.servers import ManagedServer, hourglass_server

DEFAULT_TEST_TIMEOUT_S = 180


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if (
            "tests/loadtest" in str(item.path).replace(os.sep, "/")
            and item.get_closest_marker("timeout") is None
        ):
            item.add_marker(pytest.mark.timeout(DEFAULT_TEST_TIMEOUT_S))


@pytest.fixture(scope="session")
async def hourglass(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ManagedServer]:
    srv = hourglass_server(tmp_path_factory.mktemp("loadtest-hourglass"))
    try:
        await srv.start()
        yield srv
    finally:
        srv.stop()
