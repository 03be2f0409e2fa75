"""The client TLS options of Hourglass's commands, named as the `temporal` CLI's: `--tls-cert-path`,
`--tls-key-path`, `--tls-ca-path`, `--tls-server-name` (and `--tls` for TLS with the system's roots)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # grpc and cryptography load when a command uses TLS (`hourglass` must start fast)
    from hourglass.cluster.security.tls import ClientTLS


def tls_client_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the TLS options; the command receives them as tls, tls_cert_path, tls_key_path, tls_ca_path,
    tls_server_name (pass them on to `client_tls_from_options`)."""
    options = [
        click.option("--tls", "tls", is_flag=True, help="Connect over TLS (implied by any --tls-* option)."),
        click.option(
            "--tls-cert-path", type=click.Path(dir_okay=False), help="Client certificate (PEM), for mTLS."
        ),
        click.option(
            "--tls-key-path", type=click.Path(dir_okay=False), help="The client certificate's key (PEM)."
        ),
        click.option(
            "--tls-ca-path",
            type=click.Path(dir_okay=False),
            help="CA (PEM) that signed the server's certificate (default: the system's roots).",
        ),
        click.option(
            "--tls-server-name", help="Name to check in the server's certificate (default: the host)."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def client_tls_from_options(
    tls: bool = False,
    tls_cert_path: str | None = None,
    tls_key_path: str | None = None,
    tls_ca_path: str | None = None,
    tls_server_name: str | None = None,
) -> ClientTLS | None:
    """The options as a ClientTLS (files read and checked now), or None for plaintext."""
    if not (tls or tls_cert_path or tls_key_path or tls_ca_path or tls_server_name):
        return None
    from hourglass.cluster.security.tls import TLSConfigError, load_client_tls

    try:
        return load_client_tls(tls_ca_path, tls_cert_path, tls_key_path, tls_server_name)
    except TLSConfigError as e:
        raise click.UsageError(str(e)) from None
