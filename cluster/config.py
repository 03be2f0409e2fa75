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
