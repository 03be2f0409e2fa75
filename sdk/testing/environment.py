"""temporalio's own test environments, pointed at an embedded Hourglass.

`start_time_skipping()` returns the SDK's time-skipping environment class (the one
`WorkflowEnvironment.start_time_skipping()` returns for the Java test server), so `env.client`,
`env.sleep`, `env.get_current_time()` and `env.auto_time_skipping_disabled()` behave exactly as users know
them: the client unlocks time skipping while it waits for a workflow's result. It subclasses a private
class of temporalio, which is why pyproject pins temporalio to one version.
"""

from __future__ import annotations

from typing import Any

import temporalio.client
from temporalio.testing import WorkflowEnvironment
from temporalio.testing._workflow import _NonTsWorkflowEnvironment, _V1WorkflowEnvironment

from hourglass.sdk.testing.server import HourglassServer


class _ServerHandle:
    """The `server` the SDK's environment shuts down: the embedded server it owns, or nothing."""

    def __init__(self, server: HourglassServer | None) -> None:
        self.server = server

    async def shutdown(self) -> None:
        if self.server is not None:
            await self.server.stop()


class HourglassTimeSkippingEnvironment(_V1WorkflowEnvironment):
    """The SDK's time-skipping environment, on Hourglass's TestService instead of the Java test server."""

    def __init__(self, client: temporalio.client.Client, server: HourglassServer | None) -> None:
        super().__init__(client, _ServerHandle(server))  # type: ignore[arg-type]
        self.server = server


class HourglassLocalEnvironment(_NonTsWorkflowEnvironment):
    """The SDK's local (wall clock) environment, on an embedded Hourglass instead of the Temporal CLI."""

    def __init__(self, client: temporalio.client.Client, server: HourglassServer | None) -> None:
        super().__init__(client, _ServerHandle(server))  # type: ignore[arg-type]
        self.server = server


def time_skipping_environment(
    client: temporalio.client.Client, server: HourglassServer | None
) -> WorkflowEnvironment:
    """A time-skipping environment over `client` (of a time-skipping server); shutdown stops `server`."""
    return HourglassTimeSkippingEnvironment(client, server)


async def start_time_skipping(
    *, namespace: str = "default", server_options: dict[str, Any] | None = None, **client_kwargs: Any
) -> WorkflowEnvironment:
    """Like `WorkflowEnvironment.start_time_skipping()`, on an embedded time-skipping Hourglass (no download).

    `server_options` go to `HourglassServer` (namespaces, dynamic_config, ...); other keyword arguments to
    `Client.connect`. `await env.shutdown()` (or `async with`) stops the server."""
    server = await HourglassServer.start(**{**(server_options or {}), "time_skipping": True})
    try:
        client = await server.client(namespace, **client_kwargs)
    except BaseException:
        await server.stop()
        raise
    return HourglassTimeSkippingEnvironment(client, server)


async def start_local(
    *, namespace: str = "default", server_options: dict[str, Any] | None = None, **client_kwargs: Any
) -> WorkflowEnvironment:
    """Like `WorkflowEnvironment.start_local()`, on an embedded Hourglass (wall clock, no download)."""
    server = await HourglassServer.start(**(server_options or {}))
    try:
        client = await server.client(namespace, **client_kwargs)
    except BaseException:
        await server.stop()
        raise
    return HourglassLocalEnvironment(client, server)
