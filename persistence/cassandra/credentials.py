"""Where the Cassandra password and the Astra DB token come from: a file, an environment variable, or
(discouraged) the configuration itself.

Secrets must never be required in a YAML file or on a command line (both end up in repositories, process
lists and shell histories). A secret has at most one source: the key itself (`password`, logged as a
warning), a file (`password_file`, e.g. a mounted Kubernetes or Docker secret; one trailing newline is
dropped), or a named environment variable (`password_env`). With none of them, the default environment
variable is used when it is set: HOURGLASS_CASSANDRA_PASSWORD for the password, HOURGLASS_ASTRA_TOKEN for
the Astra token. A source that is named but unusable (missing or empty file, unset variable) is an error
naming the key, never a silent fallback to no secret.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

logger = logging.getLogger(__name__)

PASSWORD_ENV = "HOURGLASS_CASSANDRA_PASSWORD"
TOKEN_ENV = "HOURGLASS_ASTRA_TOKEN"


class SecretError(ValueError):
    """A secret's source is unusable or ambiguous; the message names the configuration key or flag."""


@dataclass(frozen=True)
class SecretKeys:
    """How the three sources of one secret are named to the user (YAML keys or command-line flags)."""

    value: str
    file: str
    env: str

    @classmethod
    def yaml(cls, name: str, prefix: str = "store.cassandra.") -> SecretKeys:
        return cls(f"{prefix}{name}", f"{prefix}{name}_file", f"{prefix}{name}_env")

    @classmethod
    def flags(cls, name: str) -> SecretKeys:
        return cls(f"--{name}", f"--{name}-file", f"--{name}-env")


def check_single_source(keys: SecretKeys, value: object, file: str | None, env: str | None) -> None:
    """At most one source per secret: two would leave it unclear which one is in force."""
    given = [key for key, source in ((keys.value, value), (keys.file, file), (keys.env, env)) if source]
    if len(given) > 1:
        raise SecretError(f"{' and '.join(given)} are both given; use only one source for this secret")


def resolve_secret(
    keys: SecretKeys,
    *,
    value: str | None,
    file: str | None,
    env: str | None,
    default_env: str | None,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """The secret from its one source, or from `default_env` when no source is named; None when neither."""
    environ = os.environ if environ is None else environ
    check_single_source(keys, value, file, env)
    if value:
        logger.warning(
            "%s gives the secret in clear text; move it to %s or the %s environment variable",
            keys.value,
            keys.file,
            default_env or keys.env,
        )
        return value
    if file:
        return _read_secret_file(keys.file, file)
    if env:
        secret = environ.get(env, "")
        if not secret:
            raise SecretError(f"{keys.env}: the environment variable {env} is not set or is empty")
        return secret
    if default_env:
        return environ.get(default_env) or None
    return None


def _read_secret_file(key: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as e:
        raise SecretError(f"{key}: cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise SecretError(f"{key}: {path} is not UTF-8 text") from None
    secret = text[:-1] if text.endswith("\n") else text
    secret = secret[:-1] if secret.endswith("\r") else secret
    if not secret.strip():
        raise SecretError(f"{key}: {path} is empty")
    return secret
