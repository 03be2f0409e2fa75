"""History limits the reference reads from its dynamic config, and the part of that config Hourglass takes.

`hourglass server start-dev --dynamic-config-value KEY=VALUE` (and `dynamic_config:` in a node's YAML)
accept the reference's keys; the ones below, and the frontend's rate limits (frontend/rate_limits.py:
`frontend.rps`, `frontend.namespaceRPS`, `frontend.namespaceCount`, ...) and the task-queue partition keys
(matching/partition_config.py), change Hourglass's behaviour, the others are accepted and
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

from hourglass.cluster.frontend.rate_limits import RATE_LIMIT_KEYS
from hourglass.cluster.matching.partition_config import PARTITION_KEYS
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
    # Standalone activities (StartActivityExecution...): served by default, as issue 15 asks of start-dev.
    enable_standalone_activities: bool = True
    # Standalone Nexus operations (StartNexusOperationExecution...): served by default too.
    enable_standalone_nexus_operations: bool = True
    # Past the error limits a running workflow is terminated (see history_limits.py); past the warn
    # limits it is logged.
    history_count_error: int = 50 * 1024
    history_count_warn: int = 10 * 1024
    history_size_error_bytes: int = 50 * 1024 * 1024
    history_size_warn_bytes: int = 10 * 1024 * 1024
    # Signals one run may receive (0: no limit), and what a run may have pending at once (0: no limit).
    maximum_signals_per_execution: int = 10_000
    num_pending_activities_error: int = 2000
    num_pending_child_executions_error: int = 2000
    num_pending_signals_error: int = 2000
    num_pending_cancel_requests_error: int = 2000
    # Nexus operations one run may have pending (the reference's default).
    max_concurrent_nexus_operations: int = 30
    # The callback URL given to external Nexus endpoints (a Go template with {{.NamespaceName}} and
    # {{.NamespaceID}}); "" (or the reference's "unset"): the node's own HTTP API port.
    nexus_callback_url_template: str = ""
    # The addresses completion callbacks may go to (frontend/callbacks.py); none: only temporal://system.
    callback_address_rules: tuple = ()
    # A payload a request or a command carries (input, signal, query arguments, results): past the error
    # limit it is refused ("Blob data size exceeds limit."), past the warn limit logged.
    blob_size_error_bytes: int = 2 * 1024 * 1024
    blob_size_warn_bytes: int = 512 * 1024
    # A memo set by a start or a command (bytes of the serialized Memo).
    memo_size_error_bytes: int = 2 * 1024 * 1024
    memo_size_warn_bytes: int = 2 * 1024
    # Search attributes a start or a command sets: how many, each value's bytes, the whole map's bytes.
    search_attributes_number_of_keys: int = 100
    search_attributes_size_of_value: int = 2 * 1024
    search_attributes_total_size: int = 40 * 1024
    # Events per page of history (cluster/history/paging.py): in a workflow task (the reference's
    # `limit.historyMaxPageSize`), by default in GetWorkflowExecutionHistory (`frontend.historyMaxPageSize`)
    # and in a legacy query task (`matching.historyMaxPageSize`).
    history_max_page_size: int = 256
    frontend_history_max_page_size: int = 256
    matching_history_max_page_size: int = 256
    # The shortest retention RegisterNamespace/UpdateNamespace accept (the reference's MinRetentionLocal).
    namespace_min_retention_local_ms: int = 60 * 60 * 1000
    # Group commit (persistence/group_commit.py), Hourglass's own keys: conditional batches of one shard in
    # flight at once, and transitions per batch at most. Read when a shard is acquired.
    group_commit_max_in_flight: int = 4
    group_commit_max_transitions: int = 32
    # How long a transition may wait for its shard's batch in flight, to go with the next group (0: never).
    group_commit_linger_ms: int = 0
    # Batch operations (cluster/batcher): running batches a namespace may have at once, and operations a
    # second a batch does when its request does not say (max_operations_per_second).
    max_concurrent_batch_operations: int = 1
    batcher_rps: int = 50
    # Worker heartbeats (cluster/matching/workers.py): whether workers may send them (the namespace
    # capability `worker_heartbeats`), and how long a worker that stopped sending stays listed.
    worker_heartbeats_enabled: bool = True
    worker_registry_entry_ttl_ms: int = 5 * 60 * 1000
    # PauseWorkflowExecution (the namespace capability `workflow_pause`): off by default, as on the reference.
    workflow_pause_enabled: bool = False
    # ShutdownWorker completes the worker's waiting polls (the namespace capability
    # `worker_poll_complete_on_shutdown`): off by default, as on the reference.
    cancel_worker_polls_on_shutdown: bool = False
    # Runs a namespace deletion deletes per second at most (the reference's default), so deleting a large
    # namespace does not starve the cluster's other work.
    delete_namespace_rps: int = 100
    # A workflow's signal-with-start of another workflow, run by the server's own Nexus endpoint
    # (system_nexus.py): off by default, as on the reference 1.32.
    enable_signal_with_start_from_workflow: bool = False
    # Worker Deployments (cluster/matching/deployments.py, drainage.py): how long a version that stopped
    # being current or ramping counts as draining before visibility is asked whether pinned workflows still
    # run on it, and how often it is asked again while some do (the reference's defaults).
    version_drainage_grace_ms: int = 3 * 60 * 1000
    version_drainage_refresh_ms: int = 3 * 60 * 1000
    # How many deployments a namespace, versions a deployment and task queues a version may have.
    max_deployments: int = 100
    max_versions_in_deployment: int = 100
    max_task_queues_in_deployment_version: int = 100
    # The longest id (namespace, task queue, workflow id, ...); a deployment name or build id may take at
    # most (this - 39) / 2 characters, as on the reference.
    max_id_length: int = 1000
    # No timer task (a workflow timer, an activity's or a workflow task's timeout, a retry) fires sooner
    # than this after it was set: the reference's history.timerProcessorMaxTimeShift, whose timer queue
    # schedules every new task at least that far ahead (task_key_generator.go). So a 10 ms workflow timer
    # or a 200 ms start-to-close timeout fires after about a second on both servers.
    timer_min_delay_ms: int = 1000

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
    "activity.enableStandalone": "enable_standalone_activities",
    "nexusoperation.enableStandalone": "enable_standalone_nexus_operations",
    "limit.historyCount.error": "history_count_error",
    "limit.historyCount.warn": "history_count_warn",
    "limit.historySize.error": "history_size_error_bytes",
    "limit.historySize.warn": "history_size_warn_bytes",
    "history.maximumSignalsPerExecution": "maximum_signals_per_execution",
    "limit.numPendingActivities.error": "num_pending_activities_error",
    "limit.numPendingChildExecutions.error": "num_pending_child_executions_error",
    "limit.numPendingSignals.error": "num_pending_signals_error",
    "limit.numPendingCancelRequests.error": "num_pending_cancel_requests_error",
    "component.nexusoperations.limit.operation.concurrency": "max_concurrent_nexus_operations",
    "limit.blobSize.error": "blob_size_error_bytes",
    "limit.blobSize.warn": "blob_size_warn_bytes",
    "limit.memoSize.error": "memo_size_error_bytes",
    "limit.memoSize.warn": "memo_size_warn_bytes",
    "frontend.searchAttributesNumberOfKeysLimit": "search_attributes_number_of_keys",
    "frontend.searchAttributesSizeOfValueLimit": "search_attributes_size_of_value",
    "frontend.searchAttributesTotalSizeLimit": "search_attributes_total_size",
    "limit.historyMaxPageSize": "history_max_page_size",
    "frontend.historyMaxPageSize": "frontend_history_max_page_size",
    "matching.historyMaxPageSize": "matching_history_max_page_size",
    "frontend.MaxConcurrentBatchOperationPerNamespace": "max_concurrent_batch_operations",
    "worker.batcherRPS": "batcher_rps",
    "hourglass.groupCommit.maxInFlight": "group_commit_max_in_flight",
    "hourglass.groupCommit.maxTransitions": "group_commit_max_transitions",
    "hourglass.groupCommit.lingerMs": "group_commit_linger_ms",
    "frontend.WorkerHeartbeatsEnabled": "worker_heartbeats_enabled",
    "frontend.WorkflowPauseEnabled": "workflow_pause_enabled",
    "frontend.enableCancelWorkerPollsOnShutdown": "cancel_worker_polls_on_shutdown",
    "frontend.deleteNamespaceDeleteActivityRPS": "delete_namespace_rps",
    "history.enableSignalWithStartFromWorkflow": "enable_signal_with_start_from_workflow",
    "matching.maxDeployments": "max_deployments",
    "matching.maxVersionsInDeployment": "max_versions_in_deployment",
    "matching.maxTaskQueuesInDeploymentVersion": "max_task_queues_in_deployment_version",
    "limit.maxIDLength": "max_id_length",
}
# Keys where 0 means "no limit", as on the reference.
_ZERO_IS_UNLIMITED = {
    "history.maximumSignalsPerExecution",
    "limit.numPendingActivities.error",
    "limit.numPendingChildExecutions.error",
    "limit.numPendingSignals.error",
    "limit.numPendingCancelRequests.error",
}
# Keys where 0 turns the feature off.
_ZERO_IS_OFF = {"hourglass.groupCommit.lingerMs"}
# Durations, kept in milliseconds.
# The reference 1.32 reads the first; the others are its earlier names.
_CALLBACK_ADDRESS_KEYS = (
    "callback.allowedAddresses",
    "chasm.callback.allowedAddresses",
    "component.callbacks.allowedAddresses",
)
_STRING_KEYS = {
    "component.nexusoperations.callback.endpoint.template": "nexus_callback_url_template",
}
_DURATION_KEYS = {
    "history.workflowTaskRetryMaxInterval": "workflow_task_retry_max_interval_ms",
    "system.namespaceMinRetentionLocal": "namespace_min_retention_local_ms",
    "matching.workerRegistryEntryTTL": "worker_registry_entry_ttl_ms",
    "matching.wv.VersionDrainageStatusVisibilityGracePeriod": "version_drainage_grace_ms",
    "matching.wv.VersionDrainageStatusRefreshInterval": "version_drainage_refresh_ms",
    "history.timerProcessorMaxTimeShift": "timer_min_delay_ms",
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
        if key in _CALLBACK_ADDRESS_KEYS:
            from hourglass.cluster.frontend.callbacks import address_rules

            try:
                LIMITS.callback_address_rules = address_rules(value)
            except ValueError as e:
                raise ValueError(f"dynamic config {key} {e}") from None
            continue
        if key in _STRING_KEYS:
            if not isinstance(value, str):
                raise ValueError(f"dynamic config {key} must be a string, not {value!r}")
            setattr(LIMITS, _STRING_KEYS[key], value)
            continue
        field = _KEYS.get(key)
        if field is None and key in RATE_LIMIT_KEYS:
            continue  # the frontend's rate limits: each node reads them (frontend/rate_limits.py)
        if field is None and key in PARTITION_KEYS:
            continue  # task-queue partitions: matching reads them (matching/partition_config.py)
        if field is None:
            log.info("dynamic config %s is not used by Hourglass; ignored", key)
            continue
        if isinstance(getattr(LIMITS, field), bool):
            if not isinstance(value, bool):
                raise ValueError(f"dynamic config {key} must be true or false, not {value!r}")
        elif key in _ZERO_IS_UNLIMITED or key in _ZERO_IS_OFF:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"dynamic config {key} must be a non-negative integer, not {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"dynamic config {key} must be a positive integer, not {value!r}")
        setattr(LIMITS, field, value)
