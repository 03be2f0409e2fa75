"""Replay protection for sealed gossip: a datagram recorded off the wire and sent again later must not
count (an old "alive" would undo a death, an old "left" would make a member leave again).

Every sealed payload carries its sender's wall-clock time in ms. A datagram is accepted only within
`window_s` (30 s by default) of this node's clock, either way, and only once: its nonce is remembered
until its timestamp leaves the window, after which the timestamp alone rejects it. The nodes' clocks must
therefore agree within the window (NTP does far better). Memory is bounded: only datagrams that opened
with a key of the ring are remembered, and beyond `max_entries` the oldest are forgotten first (logged;
a node gets there only under a flood from a key holder).
"""

from __future__ import annotations

import heapq
import logging
import struct
import time

from hourglass.cluster.membership.keyring import Rejected

log = logging.getLogger(__name__)

DEFAULT_WINDOW_S = 30.0
DEFAULT_MAX_ENTRIES = 100_000
_TIMESTAMP = struct.Struct(">Q")
TIMESTAMP_BYTES = _TIMESTAMP.size


def now_ms() -> int:
    return int(time.time() * 1000)


def stamp(body: bytes, at_ms: int | None = None) -> bytes:
    """The plaintext to seal: the sender's wall-clock ms, then the message."""
    return _TIMESTAMP.pack(now_ms() if at_ms is None else at_ms) + body


class ReplayGuard:
    def __init__(self, window_s: float = DEFAULT_WINDOW_S, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.window_ms = int(window_s * 1000)
        self.max_entries = max_entries
        self._seen: set[bytes] = set()
        self._expiry: list[tuple[int, bytes]] = []  # heap of (forget at, nonce)

    def check(self, nonce: bytes, plaintext: bytes, at_ms: int | None = None) -> bytes:
        """The message of an opened datagram, or Rejected("stale" / "replayed" / "malformed")."""
        if len(plaintext) < TIMESTAMP_BYTES:
            raise Rejected("malformed")
        (sent_ms,) = _TIMESTAMP.unpack_from(plaintext)
        now = now_ms() if at_ms is None else at_ms
        if abs(now - sent_ms) > self.window_ms:
            raise Rejected("stale")
        self._forget_expired(now)
        if nonce in self._seen:
            raise Rejected("replayed")
        if len(self._seen) >= self.max_entries:
            _, oldest = heapq.heappop(self._expiry)
            self._seen.discard(oldest)
            log.warning("gossip replay cache full (%d entries): forgetting the oldest", self.max_entries)
        self._seen.add(nonce)
        heapq.heappush(self._expiry, (sent_ms + self.window_ms, nonce))
        return plaintext[TIMESTAMP_BYTES:]

    def _forget_expired(self, now: int) -> None:
        while self._expiry and self._expiry[0][0] < now:
            _, nonce = heapq.heappop(self._expiry)
            self._seen.discard(nonce)

    def __len__(self) -> int:
        return len(self._seen)
