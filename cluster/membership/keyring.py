"""The gossip keyring: the cluster's shared AES-256 keys, and the AEAD seal every gossip datagram wears.

Whoever can reach a gossip port could otherwise rewrite the membership (invent members, move a member's
RPC address, make it leave), so every datagram is sealed with AES-256-GCM (`cryptography`'s AESGCM) and
anything that does not open with a key of the ring is dropped unread.

The ring is a file, `cluster.gossip_keyring_file`: one base64 32-byte key per line (`#` comments and
blank lines ignored), the first one primary (it seals), every one accepted when opening. It is re-read
when the file changes, so keys rotate without downtime as with memberlist/Serf: add the new key (second
line) on every node, then make it first on every node, then remove the old one.

Wire format (version 1):  version (1 byte) | key id (4 bytes) | nonce (12 bytes) | ciphertext + GCM tag.
The key id is a digest of the key (not its position, which differs between nodes during a rotation) so
the receiver tries the right key at once; the header is the AEAD's associated data, so it cannot be
altered either. The nonce is random (96 bits): with at most a few hundred datagrams a second per node,
collisions under one key are negligible long before a key would be rotated.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import logging
import os
import time
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger(__name__)

VERSION = 1
KEY_BYTES = 32
KEY_ID_BYTES = 4
NONCE_BYTES = 12
HEADER_BYTES = 1 + KEY_ID_BYTES
OVERHEAD = HEADER_BYTES + NONCE_BYTES + 16
RELOAD_CHECK_S = 1.0
_KEY_ID_CONTEXT = b"hourglass gossip key id\x00"


class KeyringError(Exception):
    """The keyring file is missing, unreadable or holds something that is not a key; the message says
    which file and line."""


class Rejected(Exception):
    """A datagram that is dropped unread; `reason` labels hourglass_gossip_datagrams_rejected_total."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def generate_key() -> str:
    """A fresh random key, base64, as one line of a keyring file (`hourglass cluster gossip-key`)."""
    return base64.b64encode(AESGCM.generate_key(bit_length=8 * KEY_BYTES)).decode()


def key_id(key: bytes) -> bytes:
    """A short digest naming a key on the wire without revealing anything usable about it."""
    return hashlib.sha256(_KEY_ID_CONTEXT + key).digest()[:KEY_ID_BYTES]


def parse_keyring(text: str, source: str = "keyring") -> list[bytes]:
    """The keys of a keyring file's text, primary first; KeyringError names the bad line."""
    keys: list[bytes] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            key = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise KeyringError(
                f"{source} line {number}: not a base64 {KEY_BYTES}-byte key "
                "(make one with `hourglass cluster gossip-key`)"
            )
        if key not in keys:
            keys.append(key)
    if not keys:
        raise KeyringError(f"{source} holds no key (make one with `hourglass cluster gossip-key`)")
    return keys


class Keyring:
    """The keys a node seals and opens gossip with; `reload_if_changed()` follows the file."""

    def __init__(self, keys: list[bytes], path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._stamp: tuple[int, int, int] | None = None
        self._checked_at = 0.0
        self._set(keys)

    @classmethod
    def from_file(cls, path: str | Path) -> Keyring:
        ring = cls(cls._read(Path(path)), path)
        ring._stamp = ring._file_stamp()
        ring._checked_at = time.monotonic()
        with contextlib.suppress(OSError):
            if os.stat(path).st_mode & 0o077:
                log.warning("gossip keyring %s is readable by other users; chmod 600 it", path)
        return ring

    @staticmethod
    def _read(path: Path) -> list[bytes]:
        try:
            text = path.read_text()
        except OSError as e:
            raise KeyringError(f"cannot read the gossip keyring {path}: {e.strerror}") from None
        return parse_keyring(text, f"gossip keyring {path}")

    def _set(self, keys: list[bytes]) -> None:
        if not keys:
            raise KeyringError("a gossip keyring needs at least one key")
        self.primary = AESGCM(keys[0])
        self._primary_id = key_id(keys[0])
        self._by_id = {key_id(k): AESGCM(k) for k in keys}
        self.key_ids = [key_id(k) for k in keys]

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def reload_if_changed(self, now: float | None = None) -> bool:
        """Re-read the file if it changed (looked at no more than once a second). A file that became
        unreadable or invalid is logged and the keys in use are kept: a half-written file during a
        rotation must not cut the node off."""
        if self.path is None:
            return False
        now = time.monotonic() if now is None else now
        if now - self._checked_at < RELOAD_CHECK_S:
            return False
        self._checked_at = now
        stamp = self._file_stamp()
        if stamp is None or stamp == self._stamp:
            return False
        try:
            keys = self._read(self.path)
        except KeyringError as e:
            log.error("gossip keyring not reloaded, the keys in use are kept: %s", e)
            return False
        self._stamp = stamp
        self._set(keys)
        log.info("gossip keyring %s reloaded: %d key(s)", self.path, len(keys))
        return True

    def seal(self, plaintext: bytes) -> bytes:
        """Encrypt and authenticate with the primary key."""
        header = bytes([VERSION]) + self._primary_id
        nonce = os.urandom(NONCE_BYTES)
        return header + nonce + self.primary.encrypt(nonce, plaintext, header)

    def open(self, datagram: bytes) -> tuple[bytes, bytes]:
        """(nonce, plaintext) of a sealed datagram, or Rejected: malformed, unknown_key or invalid."""
        if len(datagram) < OVERHEAD or datagram[0] != VERSION:
            raise Rejected("malformed")
        header = datagram[:HEADER_BYTES]
        aead = self._by_id.get(header[1:])
        if aead is None:
            raise Rejected("unknown_key")
        nonce = datagram[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES]
        try:
            return nonce, aead.decrypt(nonce, datagram[HEADER_BYTES + NONCE_BYTES :], header)
        except InvalidTag:
            raise Rejected("invalid") from None
