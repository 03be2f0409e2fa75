"""Namespaces: registered in the store, cached here, looked up by name on every request."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import ArchivalState, NamespaceState, ReplicationState
from temporalio.api.namespace.v1 import NamespaceConfig, NamespaceInfo
from temporalio.api.workflowservice.v1 import DescribeNamespaceResponse

from hourglass.cluster.errors import InvalidArgument, NamespaceAlreadyExists, NamespaceNotFound, Unavailable
from hourglass.cluster.history.limits import LIMITS
from hourglass.cluster.history.timeutil import duration_ms
from hourglass.persistence.errors import ConditionFailedError, NamespaceAlreadyExistsError
from hourglass.persistence.records import NamespaceRecord
from hourglass.persistence.store import Store

DEFAULT_RETENTION_S = 24 * 3600
MAX_NAME_LENGTH = 1000
# ListNamespaces: the reference's page size when the request sets none, and a bound on a page's bytes so
# that a few namespaces with megabyte descriptions still fit the 4 MiB gRPC message limit (a page always
# holds at least one namespace; one cannot exceed the limit, since it was registered through it).
LIST_DEFAULT_PAGE_SIZE = 100
LIST_MAX_PAGE_BYTES = 3 * 1024 * 1024


@dataclass
class Namespace:
    id: str
    name: str
    description: DescribeNamespaceResponse
    # The stored record's version: a deletion is conditional on it.
    notification_version: int = 0
    # When this node read it (time.monotonic()): cached entries are read again after CACHE_REFRESH_S.
    read_at: float = field(default_factory=time.monotonic)

    @property
    def deleted(self) -> bool:
        return self.description.namespace_info.state == NamespaceState.NAMESPACE_STATE_DELETED


# How long a node serves a namespace from its cache before reading it again: what another node changed
# (an update, a deletion) is seen here within this delay, as the reference's namespace cache refresh (10 s).
CACHE_REFRESH_S = 10.0
# A deleted namespace is renamed `<name>-deleted-<first characters of its id>` (as on the reference), so
# its name is free at once while its runs are being deleted.
DELETED_SUFFIX_LENGTH = 5


INVALID_RETENTION = "A valid retention period is not set on request."


@dataclass(frozen=True)
class ServerFacts:
    """What this server says of every namespace, set on read rather than stored: a namespace stored by an
    older build still shows what the server does now. The fields are the ones the reference fills and
    clients rely on (the `temporal` CLI's text output dereferences the replication config and bad
    binaries; the Web UI shows the clusters)."""

    cluster_name: str = "hourglass"
    blob_size_limit_error: int = 2 * 1024 * 1024
    # What the reference advertises for a workflow task completion (40 MiB).
    workflow_task_completion_size_limit_error: int = 40 * 1024 * 1024

    def describe(self, desc: DescribeNamespaceResponse) -> None:
        info = desc.namespace_info
        caps = info.capabilities
        caps.eager_workflow_start = True
        caps.sync_update = True
        caps.async_update = True
        # Workers send heartbeats only where the namespace says the server keeps them.
        caps.worker_heartbeats = LIMITS.worker_heartbeats_enabled
        caps.workflow_pause = LIMITS.workflow_pause_enabled
        caps.standalone_activities = LIMITS.enable_standalone_activities
        # Served with them: a start delay, and pause/unpause/reset/update-options on a standalone activity
        # (batch operations over them are not: StartBatchOperation refuses those, see batches.py).
        caps.standalone_activity_start_delay = LIMITS.enable_standalone_activities
        caps.standalone_activity_operator_commands = LIMITS.enable_standalone_activities
        caps.standalone_nexus_operation = LIMITS.enable_standalone_nexus_operations
        caps.worker_poll_complete_on_shutdown = LIMITS.cancel_worker_polls_on_shutdown
        info.supports_schedules = True
        info.limits.blob_size_limit_error = self.blob_size_limit_error
        info.limits.memo_size_limit_error = LIMITS.memo_size_error_bytes
        info.limits.workflow_task_completion_size_limit_error = self.workflow_task_completion_size_limit_error
        desc.config.bad_binaries.SetInParent()
        replication = desc.replication_config
        replication.active_cluster_name = self.cluster_name
        del replication.clusters[:]
        replication.clusters.add(cluster_name=self.cluster_name)


def check_retention(retention: Duration) -> None:
    """The reference's retention check for RegisterNamespace and UpdateNamespace: at least
    `system.namespaceMinRetentionLocal` (1 h), so closed runs are not deleted before callers read them."""
    if retention.nanos < 0 or duration_ms(retention) < LIMITS.namespace_min_retention_local_ms:
        raise InvalidArgument(INVALID_RETENTION)


class NamespaceRegistry:
    def __init__(self, store: Store, server: ServerFacts | None = None) -> None:
        self.store = store
        self.server = server or ServerFacts()
        self._by_name: dict[str, Namespace] = {}

    async def get(self, name: str) -> Namespace:
        if not name:
            raise InvalidArgument("Namespace is empty.")
        ns = self._by_name.get(name)
        if ns is not None and time.monotonic() - ns.read_at > CACHE_REFRESH_S:
            del self._by_name[name]
            ns = None
        if ns is None:
            record = await self.store.get_namespace_by_name(name)
            if record is None:
                raise NamespaceNotFound(name)
            ns = self._from_record(record)
            self._by_name[name] = ns
        return ns

    async def register(
        self,
        name: str,
        description: str = "",
        owner_email: str = "",
        retention: Duration | None = None,
        data: dict[str, str] | None = None,
        replication_state: int = ReplicationState.REPLICATION_STATE_UNSPECIFIED,
    ) -> Namespace:
        """`replication_state`: NORMAL for a namespace a client registers; the namespaces a server creates
        at start have none, as on the reference."""
        if not name:
            raise InvalidArgument("Namespace not set on request.")
        if len(name) > MAX_NAME_LENGTH:
            raise InvalidArgument("Namespace length exceeds limit.")
        if retention is None or retention.ToSeconds() == 0:
            retention = Duration(seconds=DEFAULT_RETENTION_S)
        if retention.ToSeconds() < 0:
            raise InvalidArgument("WorkflowExecutionRetentionPeriod must not be negative.")
        ns_id = str(uuid.uuid4())
        desc = DescribeNamespaceResponse(
            namespace_info=NamespaceInfo(
                name=name,
                state=NamespaceState.NAMESPACE_STATE_REGISTERED,
                description=description,
                owner_email=owner_email,
                data=data or {},
                id=ns_id,
            ),
            config=NamespaceConfig(
                workflow_execution_retention_ttl=retention,
                history_archival_state=ArchivalState.ARCHIVAL_STATE_DISABLED,
                visibility_archival_state=ArchivalState.ARCHIVAL_STATE_DISABLED,
            ),
            is_global_namespace=False,
        )
        desc.replication_config.state = replication_state
        self.server.describe(desc)
        try:
            await self.store.create_namespace(NamespaceRecord(ns_id, name, desc.SerializeToString()))
        except NamespaceAlreadyExistsError:
            raise NamespaceAlreadyExists(name) from None
        ns = Namespace(ns_id, name, desc)
        self._by_name[name] = ns
        return ns

    def cached_name(self, namespace_id: str) -> str | None:
        """The name of a namespace this node has looked up already (metrics label partitions by name)."""
        for ns in list(self._by_name.values()):
            if ns.id == namespace_id:
                return ns.name
        return None

    async def get_by_id(self, namespace_id: str) -> Namespace:
        for ns in self._by_name.values():
            if ns.id == namespace_id:
                return ns
        record = await self.store.get_namespace_by_id(namespace_id)
        if record is None:
            raise NamespaceNotFound(namespace_id)
        ns = self._from_record(record)
        self._by_name[ns.name] = ns
        return ns

    async def update(self, name: str, info=None, config=None) -> Namespace:
        """Apply an UpdateNamespace request's info/config, conditional on the version we read."""
        record = await self.store.get_namespace_by_name(name)
        if record is None:
            raise NamespaceNotFound(name)
        desc = self._from_record(record).description
        if info is not None:
            if info.description:
                desc.namespace_info.description = info.description
            if info.owner_email:
                desc.namespace_info.owner_email = info.owner_email
            for key, value in info.data.items():
                desc.namespace_info.data[key] = value
        if config is not None and config.HasField("workflow_execution_retention_ttl"):
            check_retention(config.workflow_execution_retention_ttl)
            desc.config.workflow_execution_retention_ttl.CopyFrom(config.workflow_execution_retention_ttl)
        updated = NamespaceRecord(record.id, name, desc.SerializeToString(), record.notification_version + 1)
        try:
            await self.store.update_namespace(updated, record.notification_version)
        except ConditionFailedError:
            raise Unavailable("the namespace changed concurrently; try again") from None
        ns = self._from_record(updated)
        self._by_name[name] = ns
        return ns

    async def ensure(self, name: str) -> Namespace:
        """Make sure a namespace exists (start-dev's defaults)."""
        try:
            return await self.get(name)
        except NamespaceNotFound:
            try:
                return await self.register(name)
            except NamespaceAlreadyExists:
                return await self.get(name)

    async def list(self) -> list[Namespace]:
        return [self._from_record(r) for r in await self.store.list_namespaces()]

    async def mark_deleted(self, ns: Namespace) -> Namespace:
        """State DELETED and the name `<name>-deleted-<id prefix>`, in one conditional write: from then on
        the old name is free (NotFound, registrable again) and the runs are deleted in the background.
        A namespace already marked is answered as it is (a repeated call is harmless)."""
        record = await self.store.get_namespace_by_id(ns.id)
        if record is None:
            raise NamespaceNotFound(ns.name)
        current = self._from_record(record)
        if current.deleted:
            return current
        desc = current.description
        desc.namespace_info.state = NamespaceState.NAMESPACE_STATE_DELETED
        for length in range(DELETED_SUFFIX_LENGTH, len(ns.id) + 1):
            new_name = f"{record.name}-deleted-{ns.id[:length]}"
            if await self.store.get_namespace_by_name(new_name) is None:
                break
        desc.namespace_info.name = new_name
        updated = NamespaceRecord(
            record.id, new_name, desc.SerializeToString(), record.notification_version + 1
        )
        try:
            await self.store.update_namespace(updated, record.notification_version)
        except (ConditionFailedError, NamespaceAlreadyExistsError):
            raise Unavailable("the namespace changed concurrently; try again") from None
        self._by_name.pop(record.name, None)
        marked = self._from_record(updated)
        self._by_name[new_name] = marked
        return marked

    async def remove(self, ns: Namespace) -> None:
        """Delete the namespace's record itself (the last step of a deletion, once its runs are gone)."""
        await self.store.delete_namespace(ns.id, ns.notification_version)
        self._by_name.pop(ns.name, None)

    async def list_page(
        self, page_size: int, next_page_token: bytes, include_deleted: bool = False
    ) -> tuple[list[Namespace], bytes]:
        """One page of namespaces by name, and the token of the next (empty when this is the last).

        The token is the last name returned: a page resumes after it, so a namespace registered or
        deleted meanwhile neither shifts nor repeats the others. Deleted namespaces (whose runs are being
        deleted) are left out unless asked for, as on the reference.
        """
        if page_size <= 0:
            page_size = LIST_DEFAULT_PAGE_SIZE
        after = next_page_token.decode("utf-8", "replace")
        records = sorted(
            (
                r
                for r in await self.store.list_namespaces()
                if (not after or r.name > after) and (include_deleted or not _is_deleted(r))
            ),
            key=lambda r: r.name,
        )
        page: list[Namespace] = []
        size = 0
        for record in records:
            ns = self._from_record(record)
            size += ns.description.ByteSize() + 16  # + the field's tag and length prefix
            if page and (len(page) == page_size or size > LIST_MAX_PAGE_BYTES):
                return page, page[-1].name.encode()
            page.append(ns)
        return page, b""

    def _from_record(self, record: NamespaceRecord) -> Namespace:
        desc = DescribeNamespaceResponse()
        desc.ParseFromString(record.data)
        self.server.describe(desc)
        return Namespace(record.id, record.name, desc, record.notification_version)


def _is_deleted(record: NamespaceRecord) -> bool:
    desc = DescribeNamespaceResponse()
    desc.ParseFromString(record.data)
    return desc.namespace_info.state == NamespaceState.NAMESPACE_STATE_DELETED


def retention_ms(ns: Namespace) -> int:
    # Capped: a retention of 2**62 s (accepted, as by the reference) must not overflow a deletion time.
    return duration_ms(ns.description.config.workflow_execution_retention_ttl)
