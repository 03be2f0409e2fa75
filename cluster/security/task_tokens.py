"""Sealing task tokens: the token a worker holds carries an HMAC-SHA256 tag under the cluster's secret.

Without it a token is plain JSON naming a namespace id, a run and an attempt: anyone could write one and
complete or fail any activity. The secret is generated once per cluster and kept in the store's cluster
metadata, so every node (and every restart) accepts the tokens any node issued. The tag covers the
format version and the whole serialized token; a token whose tag does not verify is refused as the
reference refuses bytes it cannot deserialize.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from hourglass.cluster.errors import InvalidArgument
from hourglass.cluster.history.tokens import TOKEN_NOT_SET, TOKEN_UNREADABLE, TaskToken

# Wire form: FORMAT (1 byte) || HMAC-SHA256(secret, FORMAT || body) (32 bytes) || body (token JSON).
FORMAT = b"\x01"
_TAG_BYTES = hashlib.sha256().digest_size
SECRET_BYTES = 32


def new_secret() -> bytes:
    """A fresh cluster secret (recorded once in the store; see Store.init_cluster_metadata)."""
    return secrets.token_bytes(SECRET_BYTES)


class TaskTokenCodec:
    """Seals tokens this cluster issues and opens only those: one instance per node, built from the
    secret the store holds."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < SECRET_BYTES:
            raise ValueError(f"a task token secret needs at least {SECRET_BYTES} bytes, got {len(secret)}")
        self._secret = secret

    def _tag(self, body: bytes) -> bytes:
        return hmac.new(self._secret, FORMAT + body, hashlib.sha256).digest()

    def encode(self, token: TaskToken) -> bytes:
        body = token.to_json()
        return FORMAT + self._tag(body) + body

    def decode(self, data: bytes) -> TaskToken:
        """The token, or INVALID_ARGUMENT with the reference's message: not set, or not one we issued
        (forged, tampered with, truncated, from another cluster, or the old unsigned form)."""
        if not data:
            raise InvalidArgument(TOKEN_NOT_SET)
        header = len(FORMAT) + _TAG_BYTES
        if len(data) <= header or not data.startswith(FORMAT):
            raise InvalidArgument(TOKEN_UNREADABLE)
        tag, body = data[len(FORMAT) : header], data[header:]
        if not hmac.compare_digest(tag, self._tag(body)):
            raise InvalidArgument(TOKEN_UNREADABLE)
        return TaskToken.from_json(body)
