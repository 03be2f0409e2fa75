"""The public keys that sign bearer tokens, read from `authorization.jwt_key_provider.key_source_uris` and
re-read every `refresh_interval_s`, so an identity provider can rotate its keys without a restart.

A URI is `https://...` / `http://...` (a JWKS document, as the reference reads) or `file:///path`: a JWKS
document, or PEM public keys / certificates. A JWKS key is found by the token's `kid`; a PEM key has the
URI's fragment as its kid (`file:///keys/idp.pem#key-1`), or, without one, is tried for any token whose
kid no JWKS key has. Parsing and signature checks are PyJWT's and cryptography's, not ours.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 10.0
# A JWKS is a few KiB; refuse to buffer an endless response from a misconfigured URL.
MAX_DOCUMENT_BYTES = 1024 * 1024
SCHEMES = ("file", "http", "https")

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----", re.DOTALL)

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


class KeySourceError(Exception):
    """A key source could not be read or holds no usable key; the message names the URI."""


def check_key_source_uri(uri: str) -> str:
    """Raise ValueError naming the problem if `uri` is not a key source this provider reads."""
    parts = urlsplit(uri)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"{uri!r} is not a file://, http:// or https:// URI")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"{uri!r}: a file URI must be local (file:///path)")
        if not parts.path:
            raise ValueError(f"{uri!r} names no file")
    elif not parts.netloc:
        raise ValueError(f"{uri!r} names no host")
    return uri


@dataclass
class KeySet:
    """Keys by kid, plus the PEM keys that have none (tried for any kid not found)."""

    by_kid: dict[str, PublicKey] = field(default_factory=dict)
    unnamed: list[PublicKey] = field(default_factory=list)

    def candidates(self, kid: str | None) -> list[PublicKey]:
        if kid is not None and kid in self.by_kid:
            return [self.by_kid[kid]]
        return list(self.unnamed)

    def __len__(self) -> int:
        return len(self.by_kid) + len(self.unnamed)


def _usable(key: Any) -> bool:
    """RS256 needs an RSA key, ES256 an EC key on P-256; anything else cannot verify our algorithms."""
    if isinstance(key, rsa.RSAPublicKey):
        return True
    return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)


def _read(uri: str) -> bytes:
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return Path(unquote(parts.path)).read_bytes()
    with urllib.request.urlopen(uri, timeout=FETCH_TIMEOUT_S) as resp:  # noqa: S310 (scheme checked)
        data = resp.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise KeySourceError(f"{uri}: larger than {MAX_DOCUMENT_BYTES} bytes, not a key set")
    return data


def _add_jwks(uri: str, document: bytes, keys: KeySet) -> None:
    try:
        jwks = json.loads(document)
    except ValueError as e:
        raise KeySourceError(f"{uri}: not a JWKS document ({e})") from None
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise KeySourceError(f'{uri}: not a JWKS document (no "keys" list)')
    for entry in jwks["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry).key
        except (jwt.PyJWTError, ValueError, TypeError) as e:
            log.warning("%s: skipping a key (kid %s): %s", uri, entry.get("kid"), e)
            continue
        if not _usable(key) or not isinstance(entry.get("kid"), str):
            log.warning("%s: skipping key %s (not RSA / EC P-256, or no kid)", uri, entry.get("kid"))
            continue
        keys.by_kid[entry["kid"]] = key


def _add_pem(uri: str, document: bytes, keys: KeySet) -> None:
    kid = unquote(urlsplit(uri).fragment) or None
    found: list[PublicKey] = []
    for block in _PEM_BLOCK.finditer(document):
        kind = block.group(1)
        try:
            if kind == b"CERTIFICATE":
                key = x509.load_pem_x509_certificate(block.group(0)).public_key()
            elif kind == b"PUBLIC KEY":
                key = load_pem_public_key(block.group(0))
            else:
                raise KeySourceError(f"{uri}: holds a {kind.decode()}; give the public key or certificate")
        except ValueError as e:
            raise KeySourceError(f"{uri}: unreadable PEM {kind.decode()} ({e})") from None
        if not _usable(key):
            raise KeySourceError(f"{uri}: only RSA and EC P-256 keys verify RS256 / ES256 tokens")
        found.append(key)
    if not found:
        raise KeySourceError(f"{uri}: no PEM public key or certificate in it")
    if kid is not None:
        if len(found) > 1:
            raise KeySourceError(f"{uri}: a kid fragment names one key but the file holds {len(found)}")
        keys.by_kid[kid] = found[0]
    else:
        keys.unnamed.extend(found)


def load_keys(uris: list[str]) -> KeySet:
    """Read every source now (blocking I/O); any failure raises KeySourceError naming its URI."""
    keys = KeySet()
    for uri in uris:
        try:
            document = _read(uri)
        except KeySourceError:
            raise
        except Exception as e:  # OSError, URLError, HTTPError, timeouts: the reason is in the message
            raise KeySourceError(f"cannot read JWT keys from {uri}: {e}") from None
        if document.lstrip().startswith(b"{"):
            _add_jwks(uri, document, keys)
        else:
            _add_pem(uri, document, keys)
    return keys


class JWTKeyProvider:
    """The current key set; `start()` reads it once (failing loudly), then refreshes it in the background,
    keeping the previous keys if a refresh fails (a flaky identity provider does not lock everyone out)."""

    def __init__(self, uris: list[str], refresh_interval_s: float) -> None:
        for uri in uris:
            check_key_source_uri(uri)
        self.uris = list(uris)
        self.refresh_interval_s = refresh_interval_s
        self.keys = KeySet()
        self._task: asyncio.Task | None = None

    def refresh(self) -> None:
        self.keys = load_keys(self.uris)

    async def start(self) -> None:
        await asyncio.to_thread(self.refresh)
        log.info("JWT keys: %d from %s", len(self.keys), ", ".join(self.uris))
        self._task = asyncio.create_task(self._refresh_loop(), name="jwt-key-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval_s)
            try:
                await asyncio.to_thread(self.refresh)
            except KeySourceError as e:
                log.error("JWT keys not refreshed, keeping the previous ones: %s", e)
