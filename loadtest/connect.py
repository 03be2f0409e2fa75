"""How the load generator and its worker processes connect: the SDK client, over TLS when asked
(`--tls-ca-path`, `--tls-cert-path`, `--tls-key-path`, `--tls-server-name`, as the `temporal` CLI's),
with a bearer token when asked (`--api-key`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the SDK is imported when a client is made (`hourglass` must start fast)
    from temporalio.client import Client, TLSConfig


@dataclass(frozen=True)
class TLSPaths:
    """Picklable (worker processes get it): file paths, read where the client is made."""

    ca_path: str | None = None
    cert_path: str | None = None
    key_path: str | None = None
    server_name: str | None = None

    def sdk_config(self) -> TLSConfig:
        from temporalio.client import TLSConfig

        def read(path: str | None) -> bytes | None:
            return Path(path).read_bytes() if path else None

        return TLSConfig(
            server_root_ca_cert=read(self.ca_path),
            domain=self.server_name,
            client_cert=read(self.cert_path),
            client_private_key=read(self.key_path),
        )


def split_addresses(address: str) -> list[str]:
    """The frontends of `--address a,b,c`: each client of the run sticks to one of them."""
    return [a.strip() for a in address.split(",") if a.strip()]


async def connect(
    address: str, namespace: str, tls: TLSPaths | None = None, api_key: str | None = None
) -> Client:
    """`api_key` is sent as `authorization: Bearer <key>`; it never turns TLS on by itself (the SDK's
    default with an API key), the --tls-* options do."""
    from temporalio.client import Client

    return await Client.connect(
        address,
        namespace=namespace,
        api_key=api_key,
        tls=tls.sdk_config() if tls is not None else False,
    )
