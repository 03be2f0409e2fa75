"""Which completion callbacks a start may attach, as the reference 1.32's frontend checks them.

A callback to an http(s) URL makes this server POST to that address when the run closes, so, as on the
reference, only addresses the operator allows are accepted: `callback.allowedAddresses` (also read under
its older name `component.callbacks.allowedAddresses`) is a list of `{Pattern: "host:port pattern",
AllowInsecure: bool}`, `*` matching any characters, http allowed only with AllowInsecure. With no rules (the
default, as on the reference) only `temporal://system` callbacks, which stay in the cluster, are accepted.
The reference's limits apply too: 32 callbacks per run, URLs of 1000 characters, 8 KiB of headers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hourglass.cluster.errors import InvalidArgument
from hourglass.cluster.history.limits import LIMITS
from hourglass.cluster.history.nexus_dispatch import SYSTEM_CALLBACK_URL

MAX_CALLBACKS = 32
MAX_URL_LENGTH = 1000
MAX_HEADER_BYTES = 8 * 1024


@dataclass(frozen=True)
class AddressRule:
    pattern: re.Pattern[str]
    allow_insecure: bool


def address_rules(value: Any) -> tuple[AddressRule, ...]:
    """The dynamic config value as rules; entries without a usable Pattern are ignored (as the reference)."""
    if not isinstance(value, list):
        raise ValueError(f"must be a list of {{Pattern, AllowInsecure}} entries, not {value!r}")
    rules = []
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("Pattern"), str) or not entry["Pattern"]:
            continue
        regex = "^" + ".*".join(re.escape(part) for part in entry["Pattern"].split("*")) + "$"
        rules.append(AddressRule(re.compile(regex), bool(entry.get("AllowInsecure", False))))
    return tuple(rules)


def check_url(url: str, rules: Iterable[AddressRule]) -> None:
    if url == SYSTEM_CALLBACK_URL:
        return
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise InvalidArgument(f"invalid callback url: {e}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidArgument(f"invalid url: unknown scheme: {url}")
    if not parts.netloc:
        raise InvalidArgument("invalid url: missing host")
    for rule in rules:
        if not rule.pattern.match(parts.netloc):
            continue
        if rule.allow_insecure or parts.scheme == "https":
            return
        raise InvalidArgument(f"invalid url: callback address does not allow insecure connections: {url}")
    raise InvalidArgument(f"invalid url: url does not match any configured callback address: {url}")


def check_completion_callbacks(callbacks) -> None:
    """Refuse (InvalidArgument, the reference's messages) callbacks this server must not call; header names
    are lower-cased in place, as the reference stores them."""
    if len(callbacks) > MAX_CALLBACKS:
        raise InvalidArgument(f"cannot attach more than {MAX_CALLBACKS} callbacks to a workflow")
    for callback in callbacks:
        if not callback.HasField("nexus"):
            continue
        nexus = callback.nexus
        if len(nexus.url) > MAX_URL_LENGTH:
            raise InvalidArgument(
                f"invalid url: url length longer than max length allowed of {MAX_URL_LENGTH}"
            )
        check_url(nexus.url, LIMITS.callback_address_rules)
        headers = dict(nexus.header)
        if sum(len(k) + len(v) for k, v in headers.items()) > MAX_HEADER_BYTES:
            raise InvalidArgument(
                f"invalid header: header size longer than max allowed size of {MAX_HEADER_BYTES}"
            )
        nexus.ClearField("header")
        nexus.header.update({k.lower(): v for k, v in headers.items()})
