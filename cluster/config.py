"""A node's YAML configuration (`hourglass server start --config FILE`).

Validated with pydantic so that a typo or a wrong type is reported with the key's path, before anything
starts. Unknown keys are errors: a misspelt option silently ignored is how clusters end up misconfigured.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from hourglass.persistence.store import Store

if TYPE_CHECKING:
    from hourglass.persistence.cassandra.config import CassandraConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NodeSection(_Strict):
    ip: str = "127.0.0.1"
    port: int = Field(7233, ge=0, le=65535)
    metrics_port: int | None = Field(None, ge=0, le=65535)
    # The HTTP API (Temporal's JSON routes); None: not served, 0: any free port.
    http_port: int | None = Field(None, ge=0, le=65535)


class SQLiteSection(_Strict):
    # A file keeps state across restarts; omit for an in-memory store (lost on exit).
    path: str | None = None


class CassandraSection(_Strict):
    """`store.cassandra`: a self-managed cluster (`hosts`) or Astra DB (`secure_connect_bundle`).

    Secrets never need to be in this file: the password comes from `password_file`, `password_env` or the
    HOURGLASS_CASSANDRA_PASSWORD variable, the Astra token from `token_file`, `token_env` or
    HOURGLASS_ASTRA_TOKEN (an inline `password` / `token` still works, with a warning); see
    hourglass.persistence.cassandra.credentials. They are read when the store is opened.
    """

    hosts: list[str] = ["127.0.0.1"]
    port: int = Field(9042, ge=1, le=65535)
    keyspace: str = "hourglass"
    username: str | None = None
    password: SecretStr | None = None
    password_file: str | None = None
    password_env: str | None = None
    # TLS: on with `tls: true` or any tls_ file / name. The nodes' certificates are always verified
    # (against tls_ca_file, else the system's CAs) and must name the host connected to, or
    # tls_server_name, unless tls_verify_hostname is false. tls_cert_file + tls_key_file: mutual TLS.
    tls: bool = False
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_verify_hostname: bool = True
    tls_server_name: str | None = None
    datacenter: str | None = None
    # Astra DB: the secure-connect bundle (zip) and an application token.
    secure_connect_bundle: str | None = None
    token: SecretStr | None = None
    token_file: str | None = None
    token_env: str | None = None
    consistency: str = "LOCAL_QUORUM"
    serial_consistency: str = "LOCAL_SERIAL"
    request_timeout_s: float = Field(10.0, gt=0)
    reconnect_max_delay_s: float = Field(5.0, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> CassandraSection:
        from hourglass.persistence.cassandra.credentials import SecretKeys, check_single_source

        check_single_source(
            SecretKeys.yaml("password", ""), self.password, self.password_file, self.password_env
        )
        check_single_source(SecretKeys.yaml("token", ""), self.token, self.token_file, self.token_env)
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together: give both or neither")
        explicit_password = self.password or self.password_file or self.password_env
        if self.secure_connect_bundle is not None:
            tls = [k for k in ("tls", "tls_ca_file", "tls_cert_file", "tls_server_name") if getattr(self, k)]
            if tls:
                raise ValueError(
                    f"{', '.join(tls)}: not for Astra DB, whose secure connect bundle carries the TLS settings"
                )
            if explicit_password:
                raise ValueError("Astra DB authenticates with token / token_file / token_env, not a password")
        else:
            if self.token or self.token_file or self.token_env:
                raise ValueError(
                    "token / token_file / token_env are for Astra DB (with secure_connect_bundle)"
                )
            if explicit_password and self.username is None:
                raise ValueError("a password needs a username")
        return self


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

    @field_validator("key_source_uris")
    @classmethod
    def _uris(cls, uris: list[str]) -> list[str]:
        from hourglass.cluster.security.jwt_keys import check_key_source_uri

        return [check_key_source_uri(uri) for uri in uris]


class AuthorizationSection(_Strict):
    """The reference's `global.authorization`. No authorizer configured: every request is allowed, as on
    the reference. `authorizer: default` needs `claim_mapper: default` and at least one key source (the
    reference would otherwise map every caller to system admin, or deny everyone)."""

    jwt_key_provider: JWTKeyProviderSection = JWTKeyProviderSection()
    permissions_claim_name: str = Field("permissions", min_length=1)
    authorizer: Literal["", "default"] = ""
    claim_mapper: Literal["", "default"] = ""

    @model_validator(mode="after")
    def _complete(self) -> AuthorizationSection:
        if self.authorizer != self.claim_mapper:
            raise ValueError(
                "authorizer and claim_mapper must both be 'default' or both be empty (one without the other "
                "would check tokens but allow everything, or deny every caller)"
            )
        if self.authorizer == "default" and not self.jwt_key_provider.key_source_uris:
            raise ValueError(
                "the default claim mapper needs jwt_key_provider.key_source_uris (the keys that sign tokens)"
            )
        return self

    @property
    def enabled(self) -> bool:
        return self.authorizer == "default"


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
    # Dead (and left) members are forgotten after this long. Until then a dead member still counts toward
    # the majority, which is what stops the minority side of a partition from writing: forgotten too soon,
    # a node cut off from the others would count only itself and become "a majority of one". So keep it
    # much longer than any partition you expect to ride out (1 h); shorter only frees the table sooner of
    # members removed for good (a node reaped while only partitioned away joins again when it comes back).
    dead_member_timeout_s: float = Field(3600.0, gt=0)
    # The gossip keyring (required): one base64 AES-256 key per line, the first one primary (seals), the
    # others still accepted (key rotation). Re-read when the file changes. A relative path is relative to
    # the directory the node is started in. `hourglass cluster gossip-key` prints a new key.
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
        if not self.gossip_keyring_file:
            raise ValueError(
                "cluster.gossip_keyring_file is required: gossip is authenticated and encrypted with the "
                "cluster's key. Make one with `hourglass cluster gossip-key > gossip.keyring` and point "
                "every node at a copy of the same file"
            )
        if self.dead_member_timeout_s <= self.suspicion_timeout_s:
            raise ValueError("dead_member_timeout_s must be longer than suspicion_timeout_s")
        return self


class UISection(_Strict):
    """The official Web UI server run by this node as a child process (cluster/webui.py), as
    `hourglass server start-dev` runs it. Off unless enabled."""

    enabled: bool = False
    # Defaults: node.ip, and node.port + 1000 (8233 for 7233).
    ip: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    # Default: what `make ui` builds (build/ui-server/<version>/ui-server in the source tree).
    binary: str | None = None
    # Serve the UI under this path (e.g. /ui), and the remote codec endpoint the UI uses, as the
    # reference's --ui-public-path and --ui-codec-endpoint.
    public_path: str = ""
    codec_endpoint: str = ""
    # The UI's own client certificate, needed when tls.frontend requires client certificates (browsers
    # must then present one from the same CAs to the UI).
    client_cert_file: str | None = None
    client_key_file: str | None = None

    @model_validator(mode="after")
    def _client_pair(self) -> UISection:
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise ValueError("ui.client_cert_file and ui.client_key_file go together")
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
    ui: UISection = UISection()

    @field_validator("dynamic_config")
    @classmethod
    def _rate_limits(cls, value: dict[str, Any]) -> dict[str, Any]:
        from hourglass.cluster.frontend.rate_limits import RateLimitConfig
        from hourglass.cluster.matching.partition_config import PartitionConfig

        RateLimitConfig(value)  # raises ValueError naming the key
        PartitionConfig(value)
        return value

    @model_validator(mode="after")
    def _distinct_ports(self) -> ServerConfig:
        if self.cluster is not None:
            ports = [self.node.port, self.cluster.rpc_port, self.node.metrics_port, self.node.http_port]
            used = [p for p in ports if p]
            if len(set(used)) != len(used):
                raise ValueError(
                    "node.port, cluster.rpc_port, node.metrics_port and node.http_port must differ"
                )
        return self

    @model_validator(mode="after")
    def _http_port(self) -> ServerConfig:
        port = self.node.http_port
        if port and port in (self.node.port, self.node.metrics_port, self.ui.port):
            raise ValueError("node.http_port must differ from node.port, node.metrics_port and ui.port")
        return self

    @model_validator(mode="after")
    def _ui(self) -> ServerConfig:
        if not self.ui.enabled:
            return self
        frontend = self.tls.frontend
        if frontend is not None and frontend.server.require_client_auth and self.ui.client_cert_file is None:
            raise ValueError(
                "ui: tls.frontend requires client certificates, so the Web UI needs one of its own: set "
                "ui.client_cert_file and ui.client_key_file"
            )
        if self.ui.port is not None and self.ui.port in (self.node.port, self.node.metrics_port):
            raise ValueError("ui.port must differ from node.port and node.metrics_port")
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


def cassandra_config(section: CassandraSection) -> CassandraConfig:
    """The store's connection settings, with the password / token read from their source now.

    Raises ConfigError naming the key when a secret's file is missing or empty, its variable unset, or a
    TLS file unusable.
    """
    from hourglass.persistence.cassandra.config import CassandraConfig
    from hourglass.persistence.cassandra.credentials import (
        PASSWORD_ENV,
        TOKEN_ENV,
        SecretError,
        SecretKeys,
        resolve_secret,
    )
    from hourglass.persistence.cassandra.tls import CassandraTLSError, client_ssl_context

    c = section
    astra = c.secure_connect_bundle is not None
    try:
        password = None
        if c.username is not None and not astra:
            password = resolve_secret(
                SecretKeys.yaml("password"),
                value=c.password.get_secret_value() if c.password else None,
                file=c.password_file,
                env=c.password_env,
                default_env=PASSWORD_ENV,
            )
        token = None
        if astra:
            token = resolve_secret(
                SecretKeys.yaml("token"),
                value=c.token.get_secret_value() if c.token else None,
                file=c.token_file,
                env=c.token_env,
                default_env=TOKEN_ENV,
            )
            if not token:
                raise SecretError(
                    "store.cassandra.token_file / token_env: Astra DB needs an application token "
                    f"(or the {TOKEN_ENV} environment variable)"
                )
    except SecretError as e:
        raise ConfigError(str(e)) from None
    config = CassandraConfig(
        hosts=c.hosts,
        port=c.port,
        keyspace=c.keyspace,
        username=c.username,
        password=password,
        tls=c.tls,
        tls_ca_file=c.tls_ca_file,
        tls_cert_file=c.tls_cert_file,
        tls_key_file=c.tls_key_file,
        tls_verify_hostname=c.tls_verify_hostname,
        tls_server_name=c.tls_server_name,
        datacenter=c.datacenter,
        secure_connect_bundle=c.secure_connect_bundle,
        token=token,
        consistency=c.consistency,
        serial_consistency=c.serial_consistency,
        request_timeout_s=c.request_timeout_s,
        reconnect_max_delay_s=c.reconnect_max_delay_s,
    )
    if config.tls_enabled:
        try:  # the files are checked here so that the error names the key
            client_ssl_context(
                ca_file=c.tls_ca_file,
                cert_file=c.tls_cert_file,
                key_file=c.tls_key_file,
                verify_hostname=c.tls_verify_hostname,
            )
        except CassandraTLSError as e:
            raise ConfigError(f"store.cassandra.{e}") from None
    return config


async def open_store(config: ServerConfig) -> Store:
    """Connect the configured store; a Cassandra keyspace with an outdated schema is refused here."""
    if config.store.kind == "sqlite":
        from hourglass.persistence.sqlite.store import SQLiteStore

        return await SQLiteStore.open(config.store.sqlite.path)
    from hourglass.persistence.cassandra.store import CassandraStore

    return await CassandraStore.connect(cassandra_config(config.store.cassandra))
