"""Everything that makes a node a cluster member, wired together: gossip membership, the rings, the
ownership controller, the routing proxies the frontend uses, and the internal gRPC server."""

from __future__ import annotations

import logging

import grpc

from hourglass.cluster.admin_service import AdminService
from hourglass.cluster.drain import Drainer
from hourglass.cluster.history.engine import HistoryEngine
from hourglass.cluster.matching.engine import MatchingEngine
from hourglass.cluster.matching.sticky_placement import STICKY_METHODS
from hourglass.cluster.membership.keyring import Keyring
from hourglass.cluster.membership.swim import Swim, SwimConfig
from hourglass.cluster.ownership import OwnershipController
from hourglass.cluster.placement import Placement
from hourglass.cluster.routing import (
    BATCH_ROUTES,
    HISTORY_ROUTES,
    MATCHING_ROUTES,
    SCHEDULE_ROUTES,
    RoutedBatches,
    RoutedHistory,
    RoutedMatching,
    RoutedSchedules,
    Router,
)
from hourglass.cluster.rpc import internal_pb2 as pb
from hourglass.cluster.rpc.client import InternalClient
from hourglass.cluster.rpc.server import cluster_handler, invoke_handler
from hourglass.cluster.scheduler.engine import ScheduleEngine
from hourglass.cluster.security.tls import InternodeClientTLS, group_credentials, listen
from hourglass.cluster.status import StatusService, local_report

log = logging.getLogger(__name__)


class ClusterMember:
    def __init__(
        self,
        node_config,
        history: HistoryEngine,
        matching: MatchingEngine,
        schedules: ScheduleEngine,
        loop_lag=None,
        namespace_name=None,
        batches=None,
    ) -> None:
        c = node_config.cluster
        host = c.member_address or node_config.ip
        self.config = c
        tls = node_config.tls
        if tls is None or tls.internode is None or not tls.internode.server.require_client_auth:
            raise ValueError("cluster mode requires mutual TLS between members (tls.internode)")
        self.tls = tls
        # Checks the member's certificate, key and the cluster CA now: a bad file stops the start here.
        self.client_tls = InternodeClientTLS(tls.internode, tls.refresh_interval_s)
        self.server_credentials = group_credentials(tls.internode, tls.refresh_interval_s, "tls.internode")
        self.rpc_address = f"{host}:{c.rpc_port}"
        self.history = history
        self.matching = matching
        self.schedules = schedules
        self.placement = Placement(history.shard_count)
        self.swim = Swim(
            SwimConfig(
                bind_host=host,
                port=c.gossip_port,
                seeds=tuple(c.seeds),
                roles=tuple(c.roles),
                rpc_address=self.rpc_address,
                frontend_address=f"{host}:{node_config.port}",
                probe_interval_s=c.probe_interval_s,
                probe_timeout_s=c.probe_timeout_s,
                indirect_probes=c.indirect_probes,
                suspicion_timeout_s=c.suspicion_timeout_s,
                sync_interval_s=c.sync_interval_s,
                keyring=Keyring.from_file(c.gossip_keyring_file),
                dead_member_timeout_s=c.dead_member_timeout_s,
            ),
            on_change=self._membership_changed,
        )
        self.client = InternalClient(self._address_of, self.client_tls)
        router = Router(self.swim.id, self.placement, self.client)
        self.history_api = RoutedHistory(history, router)
        self.matching_api = RoutedMatching(matching, router)
        self.schedules_api = RoutedSchedules(schedules, router)
        self.batches = batches
        self.batches_api = None if batches is None else RoutedBatches(batches, router)
        self.controller = OwnershipController(
            self.swim,
            self.placement,
            history,
            matching,
            join_timeout_s=c.join_timeout_s,
            fenced_backoff_s=2 * c.suspicion_timeout_s,
        )
        # History reaches other runs and matching through the proxies; matching records starts likewise.
        history.peers = self.history_api
        history.matching = self.matching_api
        history.write_guard = self.controller.guard
        history.on_shard_lost = self.controller.shard_lost
        matching.history = self.history_api
        matching.member_id = self.swim.id
        matching.owns = lambda key: (
            self.placement.partition_owner(key.namespace_id, key.name, key.task_type, key.partition)
            == self.swim.id
        )
        matching.write_guard = self.controller.guard
        # Partitions forward tasks and polls to their parents, wherever the ring places those; a few polls
        # each, so the others wait where this member's history adds its tasks (no hop to match them).
        matching.peers = self.matching_api
        matching.limit_forwarded_polls = True
        matching.owner_address = self._partition_owner_address
        self.loop_lag = loop_lag  # the node's LoopLagMonitor, reported in the status
        self.status = StatusService(
            self.swim,
            self.client,
            self._local_ownership,
            history.shard_count,
            namespace_name,
            store=history.store,
        )
        self.drainer = Drainer(
            self.swim, self.placement, history, matching, self.controller.poke, self.status.status
        )
        self.admin = AdminService(self.swim, self.client, self.drainer)
        self.server: grpc.aio.Server | None = None

    def _partition_owner_address(self, key) -> str:
        """The internal address of the member the ring gives a task-queue partition ("" if none)."""
        owner = self.placement.partition_owner(key.namespace_id, key.name, key.task_type, key.partition)
        return (self._address_of(owner) or "") if owner is not None else ""

    def _address_of(self, member_id: str) -> str | None:
        m = self.swim.members.get(member_id)
        return m.rpc_address if m is not None else None

    def _membership_changed(self) -> None:
        self.placement.update(self.swim.members.values())
        self.controller.poke()

    def _local_ownership(self, partitions: bool = False) -> pb.LocalOwnershipResponse:
        quorate, _ = self.swim.quorum()
        return local_report(self.swim.id, self.history, self.matching, self.loop_lag, quorate, partitions)

    def public_cluster_handler(self) -> grpc.GenericRpcHandler:
        """What the public frontend port serves of ClusterService: `Status` and the admin calls (the
        authorizer, when configured, lets only the admin role through); no ownership, no test hooks."""
        return cluster_handler(self.status.status, drain=self.admin.drain, undrain=self.admin.undrain)

    def internal_cluster_handler(self) -> grpc.GenericRpcHandler:
        """The internal (member-authenticated) port's ClusterService; test hooks only if configured."""
        return cluster_handler(
            self.status.status,
            self.status.local_ownership,
            self.status.set_gossip_blocked if self.config.test_hooks else None,
            drain=self.admin.drain,
            undrain=self.admin.undrain,
        )

    async def start(self) -> None:
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                ("grpc.so_reuseport", 0),
            ]
        )
        self.server.add_generic_rpc_handlers(
            (
                invoke_handler("HistoryService", self.history, frozenset(HISTORY_ROUTES)),
                invoke_handler(
                    "MatchingService",
                    self.matching,
                    frozenset(MATCHING_ROUTES)
                    | {"respond_query_task_completed", "respond_nexus_task"}
                    | STICKY_METHODS,
                ),
                invoke_handler("ScheduleService", self.schedules, frozenset(SCHEDULE_ROUTES)),
                *(
                    ()
                    if self.batches is None
                    else (invoke_handler("BatchService", self.batches, frozenset(BATCH_ROUTES)),)
                ),
                self.internal_cluster_handler(),
            )
        )
        try:
            listen(self.server, self.rpc_address, self.server_credentials)
        except RuntimeError as e:
            raise OSError(f"cannot listen on {self.rpc_address} for internal RPC (is it in use?)") from e
        await self.server.start()
        await self.swim.start()
        self.placement.update(self.swim.members.values())
        self.controller.start()
        log.info("cluster member %s: internal RPC on %s", self.swim.id, self.rpc_address)

    async def stop(self) -> None:
        """Release first (stop writing), then leave, so the others take over at once and cleanly."""
        await self.controller.stop()
        for shard_id in list(self.history.shards):
            await self.history.release_shard(shard_id)
        self.matching.release_partitions(lambda key, partition: False)
        await self.swim.stop(leave=True)
        if self.server is not None:
            await self.server.stop(0.5)
        await self.client.close()
