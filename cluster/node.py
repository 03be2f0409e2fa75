"""A node: wires the store, the roles (frontend, history, matching) and the gRPC server together."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from temporalio.api.operatorservice.v1.service_pb2_grpc import add_OperatorServiceServicer_to_server
from temporalio.api.workflowservice.v1.service_pb2_grpc import add_WorkflowServiceServicer_to_server

from hourglass.cluster.frontend.grpc_errors import DecodeErrorInterceptor
from hourglass.cluster.frontend.namespaces import NamespaceRegistry, retention_ms
from hourglass.cluster.frontend.operator_service import OperatorService
from hourglass.cluster.frontend.rate_limit_interceptor import RateLimitInterceptor
from hourglass.cluster.frontend.rate_limits import RateLimitConfig, RequestLimiter
from hourglass.cluster.frontend.search_attributes import SearchAttributeRegistry
from hourglass.cluster.frontend.service import WorkflowService
from hourglass.cluster.history.engine import HistoryEngine
from hourglass.cluster.history.limits import apply_dynamic_config
from hourglass.cluster.history.standalone import StandaloneOwnership
from hourglass.cluster.loop_lag import LoopLagMonitor
from hourglass.cluster.matching.engine import MatchingEngine
from hourglass.cluster.metrics import MeteredStore, serve_metrics
from hourglass.cluster.scheduler.engine import ScheduleEngine
from hourglass.cluster.security.task_tokens import TaskTokenCodec, new_secret
from hourglass.cluster.security.tls import group_credentials, listen
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
    # cluster.config.ClusterSection: this node is a cluster member. None: a single node owning everything.
    cluster: Any = None
    # The reference's dynamic config keys Hourglass takes (cluster/history/limits.py).
    dynamic_config: dict[str, Any] = field(default_factory=dict)
    # cluster.config.TLSSection (frontend and internode TLS); None: plaintext.
    tls: Any = None
    # cluster.config.AuthorizationSection; None: every request allowed, as the reference without one.
    authorization: Any = None


class Node:
    def __init__(self, config: NodeConfig, store: Store) -> None:
        self.config = config
        apply_dynamic_config(config.dynamic_config)
        # Every role talks to the store through the metering wrapper.
        self.store = store = MeteredStore(store)
        self.history = HistoryEngine(store, config.history_shard_count)
        self.matching = MatchingEngine(store, self.history)
        self.history.matching = self.matching
        self.schedules = ScheduleEngine(store, self.history)
        self.namespaces = NamespaceRegistry(store)
        # One registry for both services: a registration is usable by list queries at once.
        self.search_attributes = SearchAttributeRegistry(store)
        self.history.validate_search_attributes = self.search_attributes.validate_search_attributes
        self.history.resolve_namespace_id = self._namespace_id
        # Replaced in start() by the codec of the cluster's secret, read from the store.
        self.task_tokens = self.history.task_tokens
        self.history.namespace_retention_ms = self._retention_ms
        self.server: grpc.aio.Server | None = None
        self.bound_port = 0
        self.metrics_port: int | None = None
        # What the frontend calls: the engines themselves, or their routing proxies in a cluster.
        self.history_api: Any = self.history
        self.matching_api: Any = self.matching
        self.schedules_api: Any = self.schedules
        self.membership = None  # a cluster_member.ClusterMember in a cluster
        self.standalone: StandaloneOwnership | None = None  # shard ownership of a single node
        self.jwt_keys: Any = None  # security.jwt_keys.JWTKeyProvider when the default authorizer is on
        # The frontend's rate and long-poll limits (frontend.rps, frontend.namespaceRPS, ...); a global
        # quota is split between the frontends in the cluster.
        self.request_limiter = RequestLimiter(RateLimitConfig(config.dynamic_config), self._frontend_count)
        self.loop_lag = LoopLagMonitor()

    def _frontend_count(self) -> int:
        if self.membership is None:
            return 1
        members = self.membership.swim.members.values()
        return sum(1 for m in members if m.alive and "frontend" in m.roles) or 1

    async def _namespace_id(self, name: str) -> str:
        return (await self.namespaces.get(name)).id

    async def _retention_ms(self, namespace_id: str) -> int:
        return retention_ms(await self.namespaces.get_by_id(namespace_id))

    async def start(self) -> None:
        self.loop_lag.start()
        # First: a request that does not decode is refused before any other interceptor sees it.
        interceptors: list[grpc.aio.ServerInterceptor] = [DecodeErrorInterceptor()]
        serves_frontend = self.config.cluster is None or "frontend" in self.config.cluster.roles
        if serves_frontend and self.config.authorization is not None and self.config.authorization.enabled:
            # First, so a key source that cannot be read stops the start before anything runs.
            from hourglass.cluster.security.interceptor import start_authorization

            interceptor, self.jwt_keys = await start_authorization(self.config.authorization)
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
        self.history.task_tokens = self.matching.task_tokens = self.task_tokens
        for name in self.config.namespaces:
            await self.namespaces.ensure(name)
        # Schedules follow shard ownership: they run for the shards this node takes (see ScheduleEngine).
        await self.schedules.start()
        if self.config.cluster is None:
            self.standalone = StandaloneOwnership(self.history)
            await self.standalone.start()
        else:
            from hourglass.cluster.cluster_member import ClusterMember

            self.membership = ClusterMember(self.config, self.history, self.matching, self.schedules)
            await self.membership.start()
            self.history_api = self.membership.history_api
            self.matching_api = self.membership.matching_api
            self.schedules_api = self.membership.schedules_api
        if self.config.metrics_port is not None:
            self.metrics_port = serve_metrics(self.config.ip, self.config.metrics_port)
        if not serves_frontend:
            return
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
        workflow_service = WorkflowService(
            self.namespaces,
            self.history_api,
            self.matching_api,
            self.config.max_blob_bytes,
            store=self.store,
            search_attributes=self.search_attributes,
            schedules=self.schedules_api,
            task_tokens=self.task_tokens,
        )
        if self.membership is not None:
            me = self.membership.swim.me
            workflow_service.draining = lambda: me.draining
        add_WorkflowServiceServicer_to_server(workflow_service, self.server)
        add_OperatorServiceServicer_to_server(
            OperatorService(self.namespaces, self.search_attributes), self.server
        )
        health = health_aio.HealthServicer()
        for service in (
            "",
            "temporal.api.workflowservice.v1.WorkflowService",
            "temporal.api.operatorservice.v1.OperatorService",
        ):
            await health.set(service, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health, self.server)
        if self.membership is not None:
            # `hourglass cluster status --address <frontend>` works too; nothing else of ClusterService
            # (ownership, test hooks) is on the public port.
            self.server.add_generic_rpc_handlers((self.membership.public_cluster_handler(),))
        try:
            self.bound_port = listen(
                self.server, f"{self.config.ip}:{self.config.port}", frontend_credentials
            )
        except RuntimeError as e:
            raise OSError(f"cannot listen on {self.config.ip}:{self.config.port} (is it in use?)") from e
        await self.server.start()
        log.info("hourglass frontend listening on %s:%s", self.config.ip, self.bound_port)

    async def stop(self, grace: float = 1.0) -> None:
        if self.server is not None:
            await self.server.stop(grace)
        if self.jwt_keys is not None:
            await self.jwt_keys.stop()
        await self.schedules.stop()
        if self.standalone is not None:
            await self.standalone.stop()
        if self.membership is not None:
            await self.membership.stop()  # releases shards and partitions, then leaves the cluster
        await self.history.stop()
        await self.loop_lag.stop()
        await self.store.close()
