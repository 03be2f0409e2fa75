"""How to reach a Cassandra cluster or an Astra DB database, and the driver settings Hourglass uses.

Shared by the store (hourglass.persistence.cassandra.store) and the schema tool (`hourglass schema`), so both
connect the same way: token-aware routing over DC-aware round robin, LOCAL_QUORUM reads and writes,
LOCAL_SERIAL conditions, and retries only of idempotent statements.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hourglass.persistence.cassandra.credentials import TOKEN_ENV
from hourglass.persistence.cassandra.tls import client_ssl_context, driver_ssl_options

if TYPE_CHECKING:
    from cassandra.cluster import Cluster

# Contact points of an existing cluster ("host[:port],host[:port]"); tests and tools use it when set.
HOSTS_ENV = "HOURGLASS_CASSANDRA_HOSTS"


@dataclass
class CassandraConfig:
    """Connection and consistency settings. Either `hosts` (self-managed) or a secure connect bundle (Astra)."""

    hosts: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    port: int = 9042
    keyspace: str = "hourglass"
    username: str | None = None
    password: str | None = None
    # TLS to the nodes: on when `tls` is set or a CA, client certificate or server name is given. The
    # nodes' certificates are verified against `tls_ca_file` (the system's CAs without one) and must name
    # the address connected to, or `tls_server_name`, unless `tls_verify_hostname` is off. A client
    # certificate and key (PEM) are presented to nodes requiring them.
    tls: bool = False
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_verify_hostname: bool = True
    tls_server_name: str | None = None
    # Local datacenter for DC-aware routing (None: the datacenter of the first contact point).
    datacenter: str | None = None
    # Astra DB: the secure-connect bundle (zip) and an application token ("AstraCS:...").
    secure_connect_bundle: str | None = None
    token: str | None = None
    # Names of cassandra.ConsistencyLevel members.
    consistency: str = "LOCAL_QUORUM"
    serial_consistency: str = "LOCAL_SERIAL"
    request_timeout_s: float = 10.0
    connect_timeout_s: float = 10.0
    # Longest wait between reconnection attempts to a node that went down (the driver's default, 600 s,
    # would leave a node unavailable for minutes after its database came back).
    reconnect_max_delay_s: float = 5.0
    # Native protocol version; None lets the driver negotiate (Astra). Cassandra 5 speaks v5.
    protocol_version: int | None = 5

    @property
    def is_astra(self) -> bool:
        return self.secure_connect_bundle is not None

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls or self.tls_ca_file or self.tls_cert_file or self.tls_server_name)

    def __repr__(self) -> str:  # never print secrets
        hidden = {"password", "token"}
        fields = ", ".join(
            f"{name}={'***' if name in hidden and value else value!r}" for name, value in vars(self).items()
        )
        return f"CassandraConfig({fields})"


def parse_hosts(text: str, default_port: int = 9042) -> tuple[list[str], int]:
    """ "h1,h2:9043" -> (["h1", "h2"], port). Every host must use the same port (the driver has one)."""
    hosts: list[str] = []
    ports: set[int] = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if sep and port.isdigit() and host and not host.endswith(":"):
            hosts.append(host.strip("[]"))
            ports.add(int(port))
        else:
            hosts.append(item)
    if not hosts:
        raise ValueError(f"no contact points in {text!r}")
    if len(ports) > 1:
        raise ValueError(f"contact points use different ports {sorted(ports)}; the driver uses one port")
    return hosts, ports.pop() if ports else default_port


def config_from_env(keyspace: str = "hourglass") -> CassandraConfig | None:
    """A config for the cluster named by HOURGLASS_CASSANDRA_HOSTS, or None if it is not set."""
    text = os.environ.get(HOSTS_ENV, "").strip()
    if not text:
        return None
    hosts, port = parse_hosts(text)
    return CassandraConfig(hosts=hosts, port=port, keyspace=keyspace)


def consistency_level(name: str) -> int:
    from cassandra import ConsistencyLevel

    try:
        return ConsistencyLevel.name_to_value[name.upper()]
    except KeyError:
        raise ValueError(
            f"unknown consistency level {name!r}; one of {sorted(ConsistencyLevel.name_to_value)}"
        ) from None


def build_cluster(config: CassandraConfig) -> Cluster:
    """A driver Cluster for `config` (not connected yet). Only the store's retry policy retries anything."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, ExponentialReconnectionPolicy, TokenAwarePolicy
    from cassandra.query import dict_factory

    from hourglass.persistence.cassandra.retry import IdempotentOnlyRetryPolicy

    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=config.datacenter)),
        retry_policy=IdempotentOnlyRetryPolicy(),
        consistency_level=consistency_level(config.consistency),
        serial_consistency_level=consistency_level(config.serial_consistency),
        request_timeout=config.request_timeout_s,
        row_factory=dict_factory,
    )
    kwargs: dict = {
        "execution_profiles": {EXEC_PROFILE_DEFAULT: profile},
        "connect_timeout": config.connect_timeout_s,
        "control_connection_timeout": config.connect_timeout_s,
        "max_schema_agreement_wait": 60,
        # Never give up on a node (the default stops after 64 attempts, about a minute at a 1 s cap).
        "reconnection_policy": ExponentialReconnectionPolicy(
            base_delay=min(0.5, config.reconnect_max_delay_s),
            max_delay=config.reconnect_max_delay_s,
            max_attempts=None,
        ),
    }
    if config.protocol_version is not None:
        kwargs["protocol_version"] = config.protocol_version
    if config.is_astra:
        if not config.token:
            raise ValueError(
                "Astra DB needs an application token with the secure connect bundle: "
                f"token_file, token_env or the {TOKEN_ENV} environment variable"
            )
        if config.tls_enabled:
            raise ValueError("tls options do not apply to Astra DB: its secure connect bundle carries TLS")
        kwargs["cloud"] = {"secure_connect_bundle": config.secure_connect_bundle}
        kwargs["auth_provider"] = PlainTextAuthProvider("token", config.token)
        kwargs.pop("protocol_version", None)
        return Cluster(**kwargs)
    kwargs["contact_points"] = list(config.hosts)
    kwargs["port"] = config.port
    if config.username is not None:
        kwargs["auth_provider"] = PlainTextAuthProvider(config.username, config.password or "")
    if config.tls_enabled:
        kwargs["ssl_context"] = client_ssl_context(
            ca_file=config.tls_ca_file,
            cert_file=config.tls_cert_file,
            key_file=config.tls_key_file,
            verify_hostname=config.tls_verify_hostname,
        )
        options = driver_ssl_options(
            server_name=config.tls_server_name, verify_hostname=config.tls_verify_hostname
        )
        if options:
            kwargs["ssl_options"] = options
    return Cluster(**kwargs)
