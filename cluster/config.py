"""A node's YAML configuration (`hourglass server start --config FILE`).

Validated with pydantic so that a typo or a wrong type is reported with the key's path, before anything
starts. Unknown keys are errors: a misspelt option silently ignored is how clusters end up misconfigured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hourglass.persistence.store import Store


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NodeSection(_Strict):
    ip: str = "127.0.0.1"
    port: int = Field(7233, ge=0, le=65535)
    metrics_port: int | None = Field(None, ge=0, le=65535)


class SQLiteSection(_Strict):
    # A file keeps state across restarts; omit for an in-memory store (lost on exit).
    path: str | None = None


class CassandraSection(_Strict):
    hosts: list[str] = ["127.0.0.1"]
    port: int = Field(9042, ge=1, le=65535)
    keyspace: str = "hourglass"
    username: str | None = None
    password: str | None = None
    tls: bool = False
    tls_ca_file: str | None = None
    datacenter: str | None = None
    # Astra DB: the secure-connect bundle (zip) and an application token.
    secure_connect_bundle: str | None = None
    token: str | None = None
    consistency: str = "LOCAL_QUORUM"
    serial_consistency: str = "LOCAL_SERIAL"
    request_timeout_s: float = Field(10.0, gt=0)
    reconnect_max_delay_s: float = Field(5.0, gt=0)


class StoreSection(_Strict):
    kind: Literal["cassandra", "sqlite"]
    cassandra: CassandraSection | None = None
    sqlite: SQLiteSection | None = None

    @model_validator(mode="after")
    def _section_present(self) -> StoreSection:
        if self.kind == "cassandra" and self.cassandra is None:
            self.cassandra = CassandraSection()
        if self.kind == "sqlite" and self.sqlite is None:
            self.sqlite = SQLiteSection()
        return self


Role = Literal["frontend", "history", "matching"]


class TLSServerSection(_Strict):
    """A port's own certificate; with client CAs, the clients it accepts (mTLS). As the reference's
    `global.tls.<group>.server` (certFile, keyFile, clientCaFiles, requireClientAuth)."""

    cert_file: str
    key_file: str
    client_ca_files: list[str] = []
    require_client_auth: bool = False

    @model_validator(mode="after")
    def _client_cas(self) -> TLSServerSection:
        if self.require_client_auth and not self.client_ca_files:
            raise ValueError(
                "require_client_auth: true needs client_ca_files (the CAs client certificates come from)"
            )
        return self


class TLSClientSection(_Strict):
    """How this node (or a tool) checks the server it connects to. As the reference's
    `global.tls.<group>.client` (serverName, rootCaFiles, disableHostVerification)."""

    server_name: str | None = None
    root_ca_files: list[str] = []
    # Accepted for the reference's shape, but only `false`: gRPC for Python cannot skip the host check
    # (set server_name to the name the server's certificate holds instead).
    disable_host_verification: bool = False

    @model_validator(mode="after")
    def _host_verification(self) -> TLSClientSection:
        if self.disable_host_verification:
            raise ValueError(
                "disable_host_verification: true is not supported; set server_name to a name in the "
                "server's certificate"
            )
        return self


class TLSGroupSection(_Strict):
    server: TLSServerSection
    client: TLSClientSection = TLSClientSection()


class TLSSection(_Strict):
    """The reference's `global.tls`: `frontend` is the public port, `internode` the members' internal RPC
    (mutual TLS with the cluster's CA; the member's server certificate is also its client certificate, and
    must name the member's address, cluster.member_address or node.ip, unless client.server_name is set;
    client.root_ca_files defaults to server.client_ca_files)."""

    frontend: TLSGroupSection | None = None
    internode: TLSGroupSection | None = None
    # Certificates and keys are re-read when their files change, checked at most this often.
    refresh_interval_s: float = Field(60.0, gt=0)


class JWTKeyProviderSection(_Strict):
    """Where the claim mapper finds the keys that sign tokens: `file:///path/key.pem` (a PEM public key
    or certificate) or an `https://.../jwks.json` URL, re-read every `refresh_interval_s`."""

    key_source_uris: list[str] = []
    refresh_interval_s: float = Field(60.0, gt=0)


class AuthorizationSection(_Strict):
    """The reference's `global.authorization`. No authorizer configured: every request is allowed, as on
    the reference."""

    jwt_key_provider: JWTKeyProviderSection = JWTKeyProviderSection()
    permissions_claim_name: str = "permissions"
    authorizer: Literal["", "default"] = ""
    claim_mapper: Literal["", "default"] = ""


class ClusterSection(_Strict):
    """Present: this node is a member of a cluster (gossip, rings, internal RPC). Absent: a single node
    owning every shard, exactly as without cluster support."""

    # The address other members reach this node at (gossip and internal RPC); defaults to node.ip.
    member_address: str | None = None
    gossip_port: int = Field(7946, ge=1, le=65535)
    rpc_port: int = Field(7234, ge=1, le=65535)
    # Gossip addresses ("host:port") of members to join through; this node's own may be listed.
    seeds: list[str] = []
    roles: list[Role] = ["frontend", "history", "matching"]
    # Failure detection (SWIM): a silent member is suspect after one probe period without any ack
    # (direct or indirect), and dead after the suspicion timeout; it also stops writing itself after
    # the suspicion timeout without contact with the majority.
    probe_interval_s: float = Field(1.0, gt=0)
    probe_timeout_s: float = Field(0.4, gt=0)
    indirect_probes: int = Field(2, ge=0)
    suspicion_timeout_s: float = Field(4.0, gt=0)
    sync_interval_s: float = Field(5.0, gt=0)
    # How long a starting node waits for its seeds before taking its share of shards.
    join_timeout_s: float = Field(5.0, ge=0)
    # The gossip keyring: one base64 AES-256 key per line, the first one primary (encrypts), the others
    # still accepted (key rotation). Re-read when the file changes.
    gossip_keyring_file: str | None = None
    # Test hooks (e.g. cutting gossip off) on the internal, mutually authenticated port only. Never on in
    # production; the cluster tests turn it on.
    test_hooks: bool = False

    @model_validator(mode="after")
    def _timings(self) -> ClusterSection:
        if self.probe_timeout_s >= self.probe_interval_s:
            raise ValueError("probe_timeout_s must be shorter than probe_interval_s")
        if self.suspicion_timeout_s < 2 * self.probe_interval_s:
            raise ValueError("suspicion_timeout_s must be at least twice probe_interval_s")
        if not self.roles:
            raise ValueError("a node needs at least one role")
        return self


class ServerConfig(_Strict):
    cluster_name: str = "hourglass"
    history_shards: int = Field(4, ge=1, le=16384)
    namespaces: list[str] = ["default"]
    max_blob_bytes: int = Field(2 * 1024 * 1024, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # The reference's dynamic config keys Hourglass takes, e.g. limit.historyCount.suggestContinueAsNew: 50.
    dynamic_config: dict[str, Any] = {}
    node: NodeSection = NodeSection()
    store: StoreSection
    cluster: ClusterSection | None = None
    tls: TLSSection = TLSSection()
    authorization: AuthorizationSection = AuthorizationSection()

    @model_validator(mode="after")
    def _distinct_ports(self) -> ServerConfig:
        if self.cluster is not None:
            ports = [self.node.port, self.cluster.rpc_port, self.node.metrics_port]
            used = [p for p in ports if p]
            if len(set(used)) != len(used):
                raise ValueError("node.port, cluster.rpc_port and node.metrics_port must differ")
        return self

    @model_validator(mode="after")
    def _internode_mtls(self) -> ServerConfig:
        """A cluster member's internal port runs history, matching and test hooks for whoever calls it:
        only other members (certificates from the cluster's CA) may, so cluster mode requires mTLS."""
        if self.cluster is None:
            return self
        internode = self.tls.internode
        if (
            internode is None
            or not internode.server.client_ca_files
            or not internode.server.require_client_auth
        ):
            raise ValueError(
                "cluster mode requires mutual TLS between members: set tls.internode.server.cert_file, "
                "tls.internode.server.key_file, tls.internode.server.client_ca_files (the cluster's CA) "
                "and tls.internode.server.require_client_auth: true"
            )
        return self


class ConfigError(Exception):
    """The configuration file is missing, is not YAML, or does not validate; the message says where."""


def load_config(path: str | Path) -> ServerConfig:
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    try:
        return ServerConfig.model_validate(raw or {})
    except ValidationError as e:
        lines = [
            f"  {'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in e.errors()
        ]
        raise ConfigError(f"{path} is not a valid Hourglass configuration:\n" + "\n".join(lines)) from None


async def open_store(config: ServerConfig) -> Store:
    """Connect the configured store; a Cassandra keyspace with an outdated schema is refused here."""
    if config.store.kind == "sqlite":
        from hourglass.persistence.sqlite.store import SQLiteStore

        return await SQLiteStore.open(config.store.sqlite.path)
    from hourglass.persistence.cassandra.config import CassandraConfig
    from hourglass.persistence.cassandra.store import CassandraStore

    c = config.store.cassandra
    return await CassandraStore.connect(
        CassandraConfig(
            hosts=c.hosts,
            port=c.port,
            keyspace=c.keyspace,
            username=c.username,
            password=c.password,
            tls=c.tls,
            tls_ca_file=c.tls_ca_file,
            datacenter=c.datacenter,
            secure_connect_bundle=c.secure_connect_bundle,
            token=c.token,
            consistency=c.consistency,
            serial_consistency=c.serial_consistency,
            request_timeout_s=c.request_timeout_s,
            reconnect_max_delay_s=c.reconnect_max_delay_s,
        )
    )
