"""Worker heartbeats: what RecordWorkerHeartbeat keeps and ListWorkers, CountWorkers, DescribeWorker read.

As on the reference (service/matching/workers), heartbeats live in memory in matching, one registry per
namespace on the member that owns the namespace's worker registry (see routing.py), and are never
persisted: a worker heartbeats every few seconds to a minute, so a lost registry refills by itself. An
entry not refreshed for `matching.workerRegistryEntryTTL` (5 min) is dropped; a worker reporting
WORKER_STATUS_SHUTDOWN is dropped at once.

The ListWorkers / CountWorkers query is the reference's: the WHERE clause of a SQL SELECT over the
columns below (names case-sensitive), AND / OR / parentheses; strings take = != STARTS_WITH,
NOT STARTS_WITH, IS [NOT] NULL; StartTime and HeartbeatTime (RFC 3339) also take < <= > >= and
[NOT] BETWEEN. A query that does not parse is refused (INVALID_ARGUMENT "malformed query: ..."); a clause
the reference cannot evaluate (an unknown column, NOT, IN, an empty string) matches no worker, as there.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.api.enums.v1 import WorkerStatus
from temporalio.api.worker.v1 import WorkerHeartbeat, WorkerInfo, WorkerListInfo
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from hourglass.cluster.errors import InvalidArgument, NotFound
from hourglass.cluster.history.limits import LIMITS
from hourglass.persistence.visibility import query as q
from hourglass.persistence.visibility.errors import QueryError

_STRING_COLUMNS: dict[str, Callable[[WorkerHeartbeat], str]] = {
    "WorkerInstanceKey": lambda hb: hb.worker_instance_key,
    "WorkerIdentity": lambda hb: hb.worker_identity,
    "HostName": lambda hb: hb.host_info.host_name,
    "TaskQueue": lambda hb: hb.task_queue,
    "DeploymentName": lambda hb: hb.deployment_version.deployment_name,
    "BuildId": lambda hb: hb.deployment_version.build_id,
    "SdkName": lambda hb: hb.sdk_name,
    "SdkVersion": lambda hb: hb.sdk_version,
    "WorkerStatus": lambda hb: WorkerStatus.Name(hb.status),
    "status": lambda hb: WorkerStatus.Name(hb.status),
    "Status": lambda hb: WorkerStatus.Name(hb.status),
}
_TIME_COLUMNS: dict[str, Callable[[WorkerHeartbeat], int | None]] = {
    "StartTime": lambda hb: hb.start_time.ToNanoseconds() if hb.HasField("start_time") else None,
    "HeartbeatTime": lambda hb: hb.heartbeat_time.ToNanoseconds() if hb.HasField("heartbeat_time") else None,
}


class _NoMatch(Exception):
    """A clause the reference fails to evaluate: the worker is not listed (the reference drops the error)."""


@dataclass
class _Entry:
    heartbeat: WorkerHeartbeat
    last_seen: float


def parse_query(text: str) -> q.Expr | None:
    """The query's filter (None: every worker), or INVALID_ARGUMENT for one that does not parse."""
    if not text.strip():
        return None
    lowered = text.strip().lower()
    if lowered.startswith(("where ", "select ")):
        raise InvalidArgument(f"invalid filter: {text.strip()}")
    try:
        parsed = q.parse(text)
    except QueryError as e:
        raise InvalidArgument(f"malformed query: {e}") from None
    if parsed.where is None:
        raise InvalidArgument("operation is not supported: 'where' clause is missing")
    return parsed.where


def matches(expr: q.Expr | None, hb: WorkerHeartbeat) -> bool:
    """Whether the worker `hb` satisfies the filter `expr` (None matches every worker)."""
    if expr is None:
        return True
    try:
        return _evaluate(expr, hb)
    except _NoMatch:
        return False


def _evaluate(expr: q.Expr, hb: WorkerHeartbeat) -> bool:
    if isinstance(expr, q.And):
        return _evaluate(expr.left, hb) and _evaluate(expr.right, hb)
    if isinstance(expr, q.Or):
        return _evaluate(expr.left, hb) or _evaluate(expr.right, hb)
    if isinstance(expr, q.Comparison):
        return _compare(expr.attribute.name, expr.op, expr.value.value, hb)
    if isinstance(expr, q.StartsWith):
        column = _STRING_COLUMNS.get(expr.attribute.name)
        prefix = expr.prefix.value
        if column is None or not isinstance(prefix, str) or not prefix:
            raise _NoMatch
        return column(hb).startswith(prefix) != expr.negated
    if isinstance(expr, q.IsNull):
        name = expr.attribute.name
        if name in _STRING_COLUMNS:
            empty = _STRING_COLUMNS[name](hb) == ""
        elif name in _TIME_COLUMNS:
            empty = _TIME_COLUMNS[name](hb) is None
        else:
            raise _NoMatch
        return empty != expr.negated
    if isinstance(expr, q.Between):
        getter = _TIME_COLUMNS.get(expr.attribute.name)
        if getter is None:
            raise _NoMatch
        value = getter(hb)
        if value is None:
            return False
        inside = _time(expr.low.value) <= value <= _time(expr.high.value)
        return inside != expr.negated
    raise _NoMatch  # NOT, IN: not supported by the reference's worker query


def _compare(name: str, op: str, literal: object, hb: WorkerHeartbeat) -> bool:
    if name in _STRING_COLUMNS:
        if not isinstance(literal, str) or not literal or op not in ("=", "!="):
            raise _NoMatch
        return (_STRING_COLUMNS[name](hb) == literal) == (op == "=")
    if name in _TIME_COLUMNS:
        value = _TIME_COLUMNS[name](hb) or 0
        expected = _time(literal)
        return {
            "=": value == expected,
            "!=": value != expected,
            ">": value > expected,
            ">=": value >= expected,
            "<": value < expected,
            "<=": value <= expected,
        }[op]
    raise _NoMatch


def _time(literal: object) -> int:
    """Nanoseconds since the epoch of an RFC 3339 string (or a number of nanoseconds), as the reference's
    sqlquery.ConvertToTime reads it."""
    if isinstance(literal, bool):
        raise _NoMatch
    if isinstance(literal, int):
        return literal
    if not isinstance(literal, str):
        raise _NoMatch
    try:
        parsed = datetime.fromisoformat(literal)
    except ValueError:
        raise _NoMatch from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp()) * 1_000_000_000 + parsed.microsecond * 1000


def list_info(hb: WorkerHeartbeat) -> WorkerListInfo:
    """The summary ListWorkers gives of a worker (the reference's workerHeartbeatToListInfo)."""
    info = WorkerListInfo(
        worker_instance_key=hb.worker_instance_key,
        worker_identity=hb.worker_identity,
        task_queue=hb.task_queue,
        sdk_name=hb.sdk_name,
        sdk_version=hb.sdk_version,
        status=hb.status,
        host_name=hb.host_info.host_name,
        worker_grouping_key=hb.host_info.worker_grouping_key,
        process_id=hb.host_info.process_id,
    )
    if hb.HasField("deployment_version"):
        info.deployment_version.CopyFrom(hb.deployment_version)
    if hb.HasField("start_time"):
        info.start_time.CopyFrom(hb.start_time)
    info.plugins.extend(hb.plugins)
    info.drivers.extend(hb.drivers)
    return info


class WorkerRegistry:
    """The heartbeats of the namespaces whose registry this member owns, by namespace id and worker key."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._by_namespace: dict[str, dict[str, _Entry]] = {}

    def record(self, namespace_id: str, heartbeats: list[WorkerHeartbeat]) -> None:
        workers = self._by_namespace.setdefault(namespace_id, {})
        now = self._clock()
        for hb in heartbeats:
            if hb.status == WorkerStatus.WORKER_STATUS_SHUTDOWN:
                workers.pop(hb.worker_instance_key, None)
                continue
            workers[hb.worker_instance_key] = _Entry(hb, now)

    def _live(self, namespace_id: str) -> dict[str, _Entry]:
        """The namespace's workers, with those past the TTL dropped first."""
        workers = self._by_namespace.get(namespace_id, {})
        horizon = self._clock() - LIMITS.worker_registry_entry_ttl_ms / 1000
        for key in [k for k, e in workers.items() if e.last_seen < horizon]:
            del workers[key]
        return workers

    def list(self, namespace_id: str, request: rr.ListWorkersRequest) -> rr.ListWorkersResponse:
        if request.page_size < 0:
            raise InvalidArgument("page_size cannot be negative")
        expr = parse_query(request.query)
        found = [e.heartbeat for e in self._live(namespace_id).values() if matches(expr, e.heartbeat)]
        resp = rr.ListWorkersResponse()
        if request.page_size or request.next_page_token:
            # A page: in worker-key order, after the last key of the page before (the reference's cursor).
            found.sort(key=lambda hb: hb.worker_instance_key)
            if request.next_page_token:
                after = _decode_token(request.next_page_token)
                found = [hb for hb in found if hb.worker_instance_key > after]
            if request.page_size and len(found) > request.page_size:
                found = found[: request.page_size]
                resp.next_page_token = json.dumps({"l": found[-1].worker_instance_key}).encode()
        for hb in found:
            resp.workers_info.append(WorkerInfo(worker_heartbeat=hb))
            resp.workers.append(list_info(hb))
        return resp

    def count(self, namespace_id: str, request: rr.CountWorkersRequest) -> rr.CountWorkersResponse:
        expr = parse_query(request.query)
        live = self._live(namespace_id).values()
        return rr.CountWorkersResponse(count=sum(1 for e in live if matches(expr, e.heartbeat)))

    def describe(self, namespace_id: str, key: str) -> rr.DescribeWorkerResponse:
        entry = self._live(namespace_id).get(key)
        if entry is None:
            raise NotFound(f"Worker {key} not found")
        return rr.DescribeWorkerResponse(worker_info=WorkerInfo(worker_heartbeat=entry.heartbeat))


def _decode_token(token: bytes) -> str:
    try:
        value = json.loads(token)["l"]
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument("invalid next_page_token") from None
    if not isinstance(value, str):
        raise InvalidArgument("invalid next_page_token")
    return value


__all__ = ["WorkerRegistry", "list_info", "matches", "parse_query"]
