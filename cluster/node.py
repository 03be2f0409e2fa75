"""A node: wires the store, the roles (frontend, history, matching) and the gRPC server together."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from temporalio.api.operatorservice.v1.service_pb2_grpc import add_OperatorServiceServicer_to_server
from temporalio.api.testservice.v1.service_pb2_grpc import add_TestServiceServicer_to_server
from temporalio.api.workflowservice.v1.service_pb2_grpc import add_WorkflowServiceServicer_to_server

from hourglass.cluster.batcher.engine import BatchEngine
from hourglass.cluster.frontend.cluster_info import ClusterFacts, cluster_id_from_secret
from hourglass.cluster.frontend.grpc_errors import DecodeErrorInterceptor
from hourglass.cluster.frontend.namespace_deletion import NamespaceDeleter
from hourglass.cluster.frontend.namespaces import NamespaceRegistry, ServerFacts, retention_ms
from hourglass.cluster.frontend.operator_service import OperatorService
from hourglass.cluster.frontend.rate_limit_interceptor import RateLimitInterceptor
from hourglass.cluster.frontend.rate_limits import RateLimitConfig, RequestLimiter
from hourglass.cluster.frontend.rpc_metrics import RpcMetricsInterceptor
from hourglass.cluster.frontend.search_attributes import SearchAttributeRegistry
from hourglass.cluster.frontend.service import WorkflowService
from hourglass.cluster.frontend.test_service import TimeSkippingService
from hourglass.cluster.history.engine import HistoryEngine, shard_id_for
from hourglass.cluster.history.limits import LIMITS, apply_dynamic_config
from hourglass.cluster.history.standalone import StandaloneOwnership
from hourglass.cluster.history.virtual_clock import VirtualClock
from hourglass.cluster.loop_lag import LoopLagMonitor
from hourglass.cluster.matching.drainage import DrainageMonitor, pinned_query
from hourglass.cluster.matching.engine import MatchingEngine
from hourglass.cluster.matching.partition_config import PartitionConfig
from hourglass.cluster.metrics import MeteredStore
from hourglass.cluster.node_metrics import node_state_collector
from hourglass.cluster.rpc.server import cluster_handler
from hourglass.cluster.scheduler.engine import ScheduleEngine
from hourglass.cluster.security.task_tokens import TaskTokenCodec, new_secret
from hourglass.cluster.security.tls import group_credentials, listen
from hourglass.cluster.status import local_report, standalone_status
from hourglass.persistence.errors import ClusterMetadataMismatchError
from hourglass.persistence.records import ClusterMetadata
from hourglass.persistence.store import Store

log = logging.getLogger(__name__)

# gRPC's own limit, as on the reference: larger messages are RESOURCE_EXHAUSTED before they are read;
# between the 2 MiB blob limit and this, Temporal's "Blob data size exceeds limit." answers.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# Responses: history comes in pages that fit in MAX_MESSAGE_BYTES (cluster/history/paging.py), but a single
# event over it still goes out alone in its page, as the reference's (which has no send limit) sends it.
MAX_SEND_MESSAGE_BYTES = 128 * 1024 * 1024


@dataclass
class NodeConfig:
    ip: str = "127.0.0.1"
    port: int = 7233
    history_shard_count: int = 4
    namespaces: list[str] = field(default_factory=lambda: ["default"])
    max_blob_bytes: int = 2 * 1024 * 1024
    cluster_name: str = "hourglass"
    # Prometheus /metrics port; None: not served.
    metrics_port: int | None = None
    # The HTTP API (Temporal's JSON routes, cluster/httpapi); None: not served, 0: any free port.
    http_port: int | None = None
    # cluster.config.ClusterSection: this node is a cluster member. None: a single node owning everything.
    cluster: Any = None
    # The reference's dynamic config keys Hourglass takes (cluster/history/limits.py).
    dynamic_config: dict[str, Any] = field(default_factory=dict)
    # cluster.config.TLSSection (frontend and internode TLS); None: plaintext.
    tls: Any = None
    # cluster.config.AuthorizationSection; None: every request allowed, as the reference without one.
    authorization: Any = None
    # A virtual clock and the TestService on the frontend port (start-dev --time-skipping, the embedded
    # test server); a single node only, never a cluster member.
    time_skipping: bool = False
    # Time skipping starts locked (the wall clock until a client unlocks it), as the SDKs expect; False
    # starts it unlocked, as the Java test server's --enable-time-skipping.
    time_skipping_locked: bool = True


class Node:
    def __init__(self, config: NodeConfig, store: Store) -> None:
        self.config = config
        apply_dynamic_config(config.dynamic_config)
        if "limit.blobSize.error" in config.dynamic_config:
            # The reference's key wins over the node's own `max_blob_bytes`.
            config.max_blob_bytes = LIMITS.blob_size_error_bytes
        # Every role talks to the store through the metering wrapper.
        self.store = store = MeteredStore(store)
        self.history = HistoryEngine(store, config.history_shard_count)
        self.matching = MatchingEngine(store, self.history)
        self.matching.partition_config = PartitionConfig(config.dynamic_config)
        self.history.matching = self.matching
        self.history.activity_queue_rate = self._activity_queue_rate
        self.schedules = ScheduleEngine(store, self.history)
        # Batch operations follow shard ownership like schedules (cluster/batcher).
        self.batches = BatchEngine(store, self.history)
        self.namespaces = NamespaceRegistry(
            store, ServerFacts(cluster_name=config.cluster_name, blob_size_limit_error=config.max_blob_bytes)
        )
        # One registry for both services: a registration is usable by list queries at once.
        self.search_attributes = SearchAttributeRegistry(store)
        self.search_attributes.namespace_name = self.namespaces.cached_name
        self.matching.namespace_name = self.namespaces.cached_name
        self.history.validate_search_attributes = self.search_attributes.validate_search_attributes
        self.history.resolve_namespace_id = self._namespace_id
        # Replaced in start() by the codec of the cluster's secret, read from the store.
        self.task_tokens = self.history.task_tokens
        self.history.namespace_retention_ms = self._retention_ms
        self.server: grpc.aio.Server | None = None
        self.bound_port = 0
        self.metrics_port: int | None = None
        self.http_port: Any = None  # webpage.server.HttpPort: /metrics, /cluster, /api/v1/cluster
        self.http_api: Any = None  # httpapi.server.HttpApiServer: the HTTP API (`http_port`)
        self.status_service: Any = None  # status.StatusService: ClusterService Status of this node
        # What the frontend calls: the engines themselves, or their routing proxies in a cluster.
        self.history_api: Any = self.history
        self.matching_api: Any = self.matching
        self.schedules_api: Any = self.schedules
        self.batches_api: Any = self.batches
        self.membership = None  # a cluster_member.ClusterMember in a cluster
        self.standalone: StandaloneOwnership | None = None  # shard ownership of a single node
        self.jwt_keys: Any = None  # security.jwt_keys.JWTKeyProvider when the default authorizer is on
        # The frontend's rate and long-poll limits (frontend.rps, frontend.namespaceRPS, ...); a global
        # quota is split between the frontends in the cluster.
        self.request_limiter = RequestLimiter(RateLimitConfig(config.dynamic_config), self._frontend_count)
        self.loop_lag = LoopLagMonitor()
        self.clock: VirtualClock | None = None
        # What GetClusterInfo and ListClusters answer; the id and addresses are known in start().
        self.cluster_facts = ClusterFacts(
            name=config.cluster_name,
            history_shard_count=config.history_shard_count,
            persistence_store=store.kind,
            visibility_store=store.kind,
        )
        self.namespace_deleter: NamespaceDeleter | None = None
        self.drainage: DrainageMonitor | None = None  # checks draining deployment versions (drainage.py)

    def _frontend_count(self) -> int:
        if self.membership is None:
            return 1
        members = self.membership.swim.members.values()
        return sum(1 for m in members if m.alive and "frontend" in m.roles) or 1

    async def _activity_queue_rate(self, namespace_id: str, queue: str) -> float | None:
        from hourglass.cluster.matching.engine import ACTIVITY

        return await self.matching.queue_rate(namespace_id, queue, ACTIVITY)

    async def _namespace_id(self, name: str) -> str:
        return (await self.namespaces.get(name)).id

    async def _pinned_count(self, namespace_id: str, version: str) -> int:
        """Running workflows pinned to a deployment version, by visibility (drainage)."""
        from hourglass.cluster.frontend.visibility import workflows_only

        query = await self.search_attributes.parse_query(namespace_id, pinned_query(version))
        return await self.store.count_visibility(namespace_id, workflows_only(query))

    def _owns(self, namespace_id: str, workflow_id: str) -> bool:
        return shard_id_for(namespace_id, workflow_id, self.config.history_shard_count) in self.history.shards

    async def _retention_ms(self, namespace_id: str) -> int:
        return retention_ms(await self.namespaces.get_by_id(namespace_id))

    async def start(self) -> None:
        if self.config.time_skipping:
            if self.config.cluster is not None:
                raise ValueError("time skipping is for a single dev or test server, not a cluster node")
            # Before anything reads the time: shards, timers and schedules all run on this clock.
            self.clock = VirtualClock(locked=self.config.time_skipping_locked)
            self.clock.start()
        self.loop_lag.start()
        # First: a request that does not decode is refused before any other interceptor sees it.
        interceptors: list[grpc.aio.ServerInterceptor] = [DecodeErrorInterceptor()]
        # Next: every decoded request is counted by method and status, refused ones included.
        interceptors.append(RpcMetricsInterceptor())
        serves_frontend = self.config.cluster is None or "frontend" in self.config.cluster.roles
        authorizing = self.config.authorization is not None and self.config.authorization.enabled
        gate = None
        if authorizing and (serves_frontend or self.config.metrics_port is not None):
            # First, so a key source that cannot be read stops the start before anything runs.
            from hourglass.cluster.security.http_auth import AdminGate
            from hourglass.cluster.security.interceptor import start_authorization

            interceptor, self.jwt_keys = await start_authorization(self.config.authorization)
            # The HTTP port's cluster data is checked by the same mapper and authorizer as the gRPC port.
            gate = AdminGate(interceptor.claim_mapper, interceptor.authorizer)
            if serves_frontend:
                interceptors.append(interceptor)
        # After authorization, as on the reference: an unauthorized caller spends no namespace's quota.
        interceptors.append(RateLimitInterceptor(self.request_limiter))
        # Certificate problems are reported before anything listens or takes a shard.
        tls = self.config.tls
        frontend_credentials = (
            group_credentials(tls.frontend, tls.refresh_interval_s, "tls.frontend")
            if tls is not None
            else None
        )
        stored = await self.store.init_cluster_metadata(
            ClusterMetadata(self.config.cluster_name, self.config.history_shard_count, new_secret())
        )
        if stored.history_shard_count != self.config.history_shard_count:
            raise ClusterMetadataMismatchError(
                f"the store was created with {stored.history_shard_count} history shards but this node is "
                f"configured with {self.config.history_shard_count}; the shard count cannot change"
            )
        # Every node seals and opens task tokens with the one secret the store holds for the cluster.
        self.task_tokens = TaskTokenCodec(stored.task_token_secret)
        self.cluster_facts.cluster_id = cluster_id_from_secret(stored.task_token_secret, stored.cluster_name)
        self.history.task_tokens = self.matching.task_tokens = self.task_tokens
        for name in self.config.namespaces:
            await self.namespaces.ensure(name)
        # Schedules follow shard ownership: they run for the shards this node takes (see ScheduleEngine).
        await self.schedules.start()
        await self.batches.start()
        if self.config.cluster is None:
            self.standalone = StandaloneOwnership(self.history)
            await self.standalone.start()
        else:
            from hourglass.cluster.cluster_member import ClusterMember

            self.membership = ClusterMember(
                self.config,
                self.history,
                self.matching,
                self.schedules,
                loop_lag=self.loop_lag,
                namespace_name=self._namespace_name,
                batches=self.batches,
            )
            await self.membership.start()
            self.history_api = self.membership.history_api
            self.matching_api = self.membership.matching_api
            self.schedules_api = self.membership.schedules_api
            self.batches_api = self.membership.batches_api
        # Draining worker deployment versions are checked by the node that owns their home shard.
        self.drainage = DrainageMonitor(self.store, self.matching.deployments, self._pinned_count, self._owns)
        self.drainage.start()
        # The batch engine runs each execution's operation through a WorkflowService of its own (every
        # node has one, frontend or not), as the reference's batcher calls its frontend.
        self.batches.frontend = self._workflow_service()
        node_state_collector().watch(self)
        if self.membership is not None:
            self.status_service = self.membership.status
        else:
            # Named by its frontend address, known once the port is bound (start-dev may ask for port 0).
            self.status_service = standalone_status(
                lambda: f"{self.config.ip}:{self.bound_port or self.config.port}",
                self._local_report,
                self.config.history_shard_count,
                self._namespace_name,
                self.store,
            )
        if serves_frontend:
            # Deletions of namespaces resume here after a restart (see namespace_deletion).
            self.namespace_deleter = NamespaceDeleter(
                self.namespaces, self.store, self.history_api, self.schedules_api
            )
            self.namespace_deleter.start()
            await self._serve_frontend(interceptors, frontend_credentials)
            if self.config.http_port is not None:
                await self._serve_http_api(interceptors)
        elif self.config.http_port is not None:
            log.warning("node.http_port is set but this member has no frontend role: no HTTP API is served")
        if self.config.metrics_port is not None:
            await self._serve_http(gate)

    async def _serve_frontend(self, interceptors: list, frontend_credentials: Any) -> None:
        self.server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_SEND_MESSAGE_BYTES),
                # gRPC sets SO_REUSEPORT by default: a second server on the same port would silently
                # receive half the requests. Refuse to share the port instead.
                ("grpc.so_reuseport", 0),
            ],
        )
        workflow_service = self._workflow_service()
        if self.membership is not None:
            me = self.membership.swim.me
            workflow_service.draining = lambda: me.draining
        operator_service = OperatorService(
            self.namespaces, self.search_attributes, self.namespace_deleter, self.cluster_facts
        )
        add_WorkflowServiceServicer_to_server(workflow_service, self.server)
        add_OperatorServiceServicer_to_server(operator_service, self.server)
        # The same servicers answer the HTTP API, through the same interceptors (_serve_http_api).
        from hourglass.cluster.httpapi.inline import HandlerRegistry

        self._api_handlers = HandlerRegistry()
        add_WorkflowServiceServicer_to_server(workflow_service, self._api_handlers)
        add_OperatorServiceServicer_to_server(operator_service, self._api_handlers)
        services = [
            "",
            "temporal.api.workflowservice.v1.WorkflowService",
            "temporal.api.operatorservice.v1.OperatorService",
        ]
        if self.clock is not None:
            add_TestServiceServicer_to_server(TimeSkippingService(self.clock), self.server)
            services.append("temporal.api.testservice.v1.TestService")
        health = health_aio.HealthServicer()
        for service in services:
            await health.set(service, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health, self.server)
        # `hourglass cluster status --address <frontend>` works on any node, start-dev included; nothing
        # else of ClusterService (ownership, test hooks) is on the public port.
        self.server.add_generic_rpc_handlers(
            (
                self.membership.public_cluster_handler()
                if self.membership is not None
                else cluster_handler(self.status_service.status),
            )
        )
        try:
            self.bound_port = listen(
                self.server, f"{self.config.ip}:{self.config.port}", frontend_credentials
            )
        except RuntimeError as e:
            raise OSError(f"cannot listen on {self.config.ip}:{self.config.port} (is it in use?)") from e
        await self.server.start()
        if self.membership is None:
            # One node serves every partition (ListTaskQueuePartitions names this address).
            address = f"{self.config.ip}:{self.bound_port}"
            self.matching.owner_address = lambda _key: address
        self.cluster_facts.address = f"{self.config.ip}:{self.bound_port}"
        log.info("hourglass frontend listening on %s:%s", self.config.ip, self.bound_port)

    def _workflow_service(self) -> WorkflowService:
        return WorkflowService(
            self.namespaces,
            self.history_api,
            self.matching_api,
            self.config.max_blob_bytes,
            store=self.store,
            search_attributes=self.search_attributes,
            schedules=self.schedules_api,
            task_tokens=self.task_tokens,
            batches=self.batches_api,
            cluster=self.cluster_facts,
        )

    async def _serve_http_api(self, interceptors: list) -> None:
        """The HTTP API port: TLS (and client certificates) like the frontend's port when `tls.frontend`."""
        from hourglass.cluster.httpapi.inline import InlineChannel
        from hourglass.cluster.httpapi.server import HttpApi, HttpApiServer
        from hourglass.cluster.webpage.server import tls_context

        tls = self.config.tls
        context = (
            tls_context(tls.frontend.server, tls.refresh_interval_s)
            if tls is not None and tls.frontend is not None
            else None
        )
        from hourglass.cluster.httpapi.nexus_routes import NexusRoutes
        from hourglass.cluster.security.interceptor import AuthorizationInterceptor

        authorization = next((i for i in interceptors if isinstance(i, AuthorizationInterceptor)), None)
        nexus = NexusRoutes(
            self.namespaces, self.store, self.history_api, self.matching_api, self.task_tokens, authorization
        )
        api = HttpApi(InlineChannel(self._api_handlers, interceptors), nexus)
        self.http_api = HttpApiServer(api, self.config.ip, self.config.http_port or 0, context)
        try:
            port = await self.http_api.start()
        except OSError as e:
            self.http_api = None
            raise OSError(
                f"cannot listen on {self.config.ip}:{self.config.http_port} for the HTTP API (is it in use?)"
            ) from e
        log.info("hourglass HTTP API listening on %s:%s", self.config.ip, port)
        if self.history is not None:
            # External Nexus endpoints are given this port's completion route as their callback URL, unless
            # component.nexusoperations.callback.endpoint.template says otherwise.
            host = "localhost" if self.config.ip in ("0.0.0.0", "::", "") else self.config.ip
            self.history.nexus.callback_url_template = (
                f"{self.http_api.scheme}://{host}:{port}/namespaces/{{{{.NamespaceName}}}}/nexus/callback"
            )

    async def _serve_http(self, gate: Any) -> None:
        """The HTTP port (`node.metrics_port`): TLS like the frontend's port when `tls.frontend` is set."""
        from hourglass.cluster.webpage.server import HttpPort, tls_context

        tls = self.config.tls
        context = (
            tls_context(tls.frontend.server, tls.refresh_interval_s)
            if tls is not None and tls.frontend is not None
            else None
        )
        try:
            self.http_port = HttpPort(
                self.config.ip,
                self.config.metrics_port,
                asyncio.get_running_loop(),
                self.status_service.status,
                gate,
                context,
            )
        except OSError as e:
            raise OSError(
                f"cannot listen on {self.config.ip}:{self.config.metrics_port} for HTTP (is it in use?)"
            ) from e
        self.metrics_port = self.http_port.start()

    def _local_report(self, partitions: bool) -> Any:
        member_id = f"{self.config.ip}:{self.bound_port or self.config.port}"
        return local_report(member_id, self.history, self.matching, self.loop_lag, True, partitions)

    async def _namespace_name(self, namespace_id: str) -> str:
        return (await self.namespaces.get_by_id(namespace_id)).name

    async def stop(self, grace: float = 1.0) -> None:
        node_state_collector().forget(self)
        if self.http_api is not None:
            await self.http_api.stop()
        if self.http_port is not None:
            await self.http_port.stop()
        if self.server is not None:
            await self.server.stop(grace)
        if self.jwt_keys is not None:
            await self.jwt_keys.stop()
        if self.namespace_deleter is not None:
            await self.namespace_deleter.stop()
        if self.drainage is not None:
            await self.drainage.stop()
        await self.schedules.stop()
        await self.batches.stop()
        if self.standalone is not None:
            await self.standalone.stop()
        if self.membership is not None:
            await self.membership.stop()  # releases shards and partitions, then leaves the cluster
        await self.history.stop()
        if self.clock is not None:
            await self.clock.stop()
        self.search_attributes.close()
        await self.loop_lag.stop()
        await self.store.close()
