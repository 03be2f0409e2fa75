"""The reference's retry-policy checks (common/retrypolicy.Validate), shared by the frontend and commands.

A policy that passes them cannot make a run or an activity retry without pause: a negative interval or
a backoff coefficient below 1 would shrink the delay to nothing.
"""

from __future__ import annotations

import math

from temporalio.api.common.v1 import RetryPolicy

from hourglass.cluster.history.timeutil import MAX_DURATION_MS, duration_ms

TIMEOUT_FAILURE_TYPE_PREFIX = "TemporalTimeout:"
_TIMEOUT_TYPES = {
    "StartToClose",
    "ScheduleToStart",
    "ScheduleToClose",
    "Heartbeat",
    "TIMEOUT_TYPE_START_TO_CLOSE",
    "TIMEOUT_TYPE_SCHEDULE_TO_START",
    "TIMEOUT_TYPE_SCHEDULE_TO_CLOSE",
    "TIMEOUT_TYPE_HEARTBEAT",
}


def _negative(seconds: int, nanos: int) -> bool:
    return seconds < 0 or nanos < 0


def retry_policy_error(policy: RetryPolicy) -> str | None:
    """The reference's message for the first problem of `policy`, or None when it is valid."""
    if policy.maximum_attempts == 1:
        return None  # one attempt: no retry, the rest does not matter (as on the reference)
    initial, maximum = policy.initial_interval, policy.maximum_interval
    if _negative(initial.seconds, initial.nanos):
        return "invalid InitialInterval set on retry policy: negative duration"
    if policy.backoff_coefficient != 0 and policy.backoff_coefficient < 1:
        return "BackoffCoefficient cannot be less than 1 on retry policy."
    if _negative(maximum.seconds, maximum.nanos):
        return "invalid MaximumInterval set on retry policy: negative duration"
    max_ms, initial_ms = maximum.ToMilliseconds(), initial.ToMilliseconds()
    if max_ms > 0 and max_ms < initial_ms:
        return "MaximumInterval cannot be less than InitialInterval on retry policy."
    if policy.maximum_attempts < 0:
        return "MaximumAttempts cannot be negative on retry policy."
    for name in policy.non_retryable_error_types:
        if name.startswith(TIMEOUT_FAILURE_TYPE_PREFIX):
            value = name[len(TIMEOUT_FAILURE_TYPE_PREFIX) :]
            if value not in _TIMEOUT_TYPES:
                return f"Invalid timeout type value: {value}."
    return None


def backoff_ms(policy: RetryPolicy, attempt: int) -> int:
    """The delay before the attempt after `attempt`, from a policy with its defaults filled in.

    Bounded by the maximum interval and by MAX_DURATION_MS, and computed without float overflow however
    many attempts ran (2.0 ** 1100 does not fit in a float)."""
    initial = duration_ms(policy.initial_interval)
    ceiling = duration_ms(policy.maximum_interval) or MAX_DURATION_MS
    ceiling = min(ceiling, MAX_DURATION_MS)
    coefficient = max(policy.backoff_coefficient, 1.0)
    if initial <= 0:
        return 0
    exponent = attempt - 1
    if coefficient > 1.0 and exponent * math.log(coefficient) > math.log(ceiling / initial + 1):
        return ceiling
    return min(int(initial * coefficient**exponent), ceiling)
