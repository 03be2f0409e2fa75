"""TLS from Hourglass to Cassandra: the driver's SSLContext, and what a failed handshake means.

Verification is on whenever TLS is: the node's certificate must chain to the configured CA (or the
system's CAs without one) and name the address connected to, or `tls_server_name` when given (one name
for every node, as the reference's `serverName`). Turning host verification off still verifies the chain.
A client certificate and key, when given, are presented to nodes that require them (mutual TLS).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable


class CassandraTLSError(ValueError):
    """A TLS file is missing or unusable; the message names the configuration key."""


def client_ssl_context(
    *,
    ca_file: str | None,
    cert_file: str | None,
    key_file: str | None,
    verify_hostname: bool = True,
) -> ssl.SSLContext:
    """A client context: TLS 1.2 or newer, certificates always verified, host names unless turned off."""
    if (cert_file is None) != (key_file is None):
        raise CassandraTLSError("tls_cert_file and tls_key_file go together: give both or neither")
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    except FileNotFoundError:
        raise CassandraTLSError(f"tls_ca_file: {ca_file} does not exist") from None
    except (OSError, ssl.SSLError) as e:
        raise CassandraTLSError(f"tls_ca_file: cannot load CA certificates from {ca_file}: {e}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = verify_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    if cert_file is not None and key_file is not None:
        _load_client_certificate(context, cert_file, key_file)
    return context


def _load_client_certificate(context: ssl.SSLContext, cert_file: str, key_file: str) -> None:
    for key, path in (("tls_cert_file", cert_file), ("tls_key_file", key_file)):
        try:
            with open(path, "rb"):
                pass
        except OSError as e:
            raise CassandraTLSError(f"{key}: cannot read {path}: {e.strerror or e}") from None
    try:
        context.load_cert_chain(cert_file, key_file)
    except ssl.SSLError as e:
        if "KEY_VALUES_MISMATCH" in str(e):
            raise CassandraTLSError(
                f"tls_key_file: {key_file} is not the key of the certificate in {cert_file}"
            ) from None
        raise CassandraTLSError(
            f"tls_cert_file / tls_key_file: cannot load {cert_file} with {key_file} "
            f"(PEM certificate and unencrypted PEM key expected): {e}"
        ) from None


def driver_ssl_options(*, server_name: str | None, verify_hostname: bool) -> dict[str, str] | None:
    """cassandra-driver's `ssl_options`: only the name checked in every node's certificate, if overridden."""
    if server_name and verify_hostname:
        return {"server_hostname": server_name}
    return None


def tls_failure_hint(errors: Iterable[BaseException], *, client_certificate: bool) -> str | None:
    """A sentence saying which TLS setting to look at, if any of a TLS connect attempt's errors is TLS's.

    Matched on the text: the driver re-raises a failed handshake as a plain OSError naming the reason. A
    node refusing the client's certificate (or its absence) ends the handshake with an alert or, under
    TLS 1.3, often just closes the connection, so both read as a client-certificate problem.
    """
    for error in errors:
        if not isinstance(error, OSError):
            continue
        text = str(error)
        if "certificate verify failed" in text:
            if "mismatch" in text or "hostname" in text.lower():
                return (
                    f"TLS: the node's certificate does not name the address connected to ({text}); "
                    "connect by a name in the certificate, or set tls_server_name"
                )
            return (
                f"TLS: the node's certificate is not trusted ({text}); "
                "tls_ca_file must hold the CA that signed the nodes' certificates"
            )
        if "WRONG_VERSION_NUMBER" in text or "RECORD_LAYER_FAILURE" in text:
            return f"TLS: the node does not speak TLS on this port ({text})"
        refused = "ALERT" in text or isinstance(error, (ssl.SSLEOFError, ConnectionResetError))
        if not refused:
            continue
        if client_certificate:
            return (
                f"TLS: the node refused the handshake ({text}); it did not accept the client certificate "
                "(tls_cert_file): it must be signed by a CA the node trusts"
            )
        return (
            f"TLS: the node refused the handshake ({text}); it requires a client certificate: "
            "set tls_cert_file and tls_key_file to one signed by a CA the node trusts"
        )
    return None
