"""History limits the reference reads from its dynamic config, and the part of that config Hourglass takes.

`hourglass server start-dev --dynamic-config-value KEY=VALUE` (and `dynamic_config:` in a node's YAML)
accept the reference's keys; the ones below change Hourglass's behaviour, the others are accepted and
ignored (so a command line written for `temporal server start-dev` works unchanged). The limits are
per process: every node of a process serves the same ones.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from hourglass.persistence.visibility.durations import go_duration_ns

log = logging.getLogger(__name__)


@dataclass
class HistoryLimits:
    """When a workflow task's started event suggests continue-as-new, how much longer a retried workflow
    task may take at most (the reference's defaults), and whether a worker asking to run an activity
    eagerly gets it in its workflow task's reply.

    Eager activities are on by default, as on the reference's dev server: they save the activity's trip
    through matching and a poll, and a worker only asks when it has a free slot for the activity.
    """

    suggest_continue_as_new_count: int = 4 * 1024
    suggest_continue_as_new_size_bytes: int = 4 * 1024 * 1024
    workflow_task_retry_max_interval_ms: int = 10 * 60 * 1000
    enable_activity_eager_execution: bool = True
    # The shortest retention RegisterNamespace/UpdateNamespace accept (the reference's MinRetentionLocal).
    namespace_min_retention_local_ms: int = 60 * 60 * 1000

    def suggest_continue_as_new(self, history_length: int, history_size_bytes: int) -> bool:
        return (
            history_length >= self.suggest_continue_as_new_count
            or history_size_bytes >= self.suggest_continue_as_new_size_bytes
        )


LIMITS = HistoryLimits()

_KEYS = {
    "limit.historyCount.suggestContinueAsNew": "suggest_continue_as_new_count",
    "limit.historySize.suggestContinueAsNew": "suggest_continue_as_new_size_bytes",
    "system.enableActivityEagerExecution": "enable_activity_eager_execution",
}
# Durations, kept in milliseconds.
_DURATION_KEYS = {
    "history.workflowTaskRetryMaxInterval": "workflow_task_retry_max_interval_ms",
    "system.namespaceMinRetentionLocal": "namespace_min_retention_local_ms",
}


def parse_duration_ms(value: Any) -> int:
    """A duration as the reference's dynamic config reads one: a number is seconds, a string is a Go
    duration ("90s", "1m30s", "500ms", also "2d") or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            ns = go_duration_ns(text)
            if ns is None:
                raise ValueError(f"not a duration: {value!r}") from None
            return ns // 1_000_000
    if not math.isfinite(seconds):
        raise ValueError(f"not a duration: {value!r}")
    return int(seconds * 1000)


def parse_dynamic_config_values(values: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings as the reference's CLI takes them; a value is read as YAML (`50`, `true`, `"0s"`)."""
    parsed: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"dynamic config value must be KEY=VALUE, not {item!r}")
        parsed[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return parsed


def apply_dynamic_config(config: Mapping[str, Any]) -> None:
    """Set the limits this process's nodes use; unknown keys are logged and ignored."""
    for key, value in config.items():
        if key in _DURATION_KEYS:
            try:
                ms = parse_duration_ms(value)
            except ValueError:
                raise ValueError(f"dynamic config {key} must be a duration, not {value!r}") from None
            if ms <= 0:
                raise ValueError(f"dynamic config {key} must be a positive duration, not {value!r}")
            setattr(LIMITS, _DURATION_KEYS[key], ms)
            continue
        field = _KEYS.get(key)
        if field is None:
            log.info("dynamic config %s is not used by Hourglass; ignored", key)
            continue
        if isinstance(getattr(LIMITS, field), bool):
            if not isinstance(value, bool):
                raise ValueError(f"dynamic config {key} must be true or false, not {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"dynamic config {key} must be a positive integer, not {value!r}")
        setattr(LIMITS, field, value)
