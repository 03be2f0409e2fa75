"""Findings of the fuzzer not fixed yet: the ONE place the fuzzer tolerates them.

Each entry: the RPC, the status it answers, a piece of its message, and why it is still tolerated (which
work fixes it). Empty: every finding so far is fixed. An entry that no longer matches anything should go.
Nothing else in the fuzzer waives a property.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KnownFinding:
    method: str  # RPC name, e.g. "ListWorkflowExecutions"
    status: str  # gRPC status name, e.g. "INTERNAL"
    message: str  # a substring of the status message ("" matches any)
    reason: str  # one line: what is wrong and which part of issue 14 fixes it

    def matches(self, method: str, status: str, message: str) -> bool:
        return self.method == method and self.status == status and self.message in message


KNOWN_FINDINGS: tuple[KnownFinding, ...] = ()


def known(method: str, status: str, message: str) -> KnownFinding | None:
    return next((k for k in KNOWN_FINDINGS if k.matches(method, status, message)), None)


def method_has_known_findings(method: str) -> bool:
    """Its server-side tracebacks are tolerated too (an INTERNAL logs one)."""
    return any(k.method == method for k in KNOWN_FINDINGS)


# RPCs whose batches hold the node's event loop long enough to push the GetSystemInfo probe's p99 past 100 ms:
# the probe's calls during their batches are left out of the p99 (method -> why, and which branch fixes it).
KNOWN_SLOW_METHODS: dict[str, str] = {}
