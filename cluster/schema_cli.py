"""`hourglass schema setup|update|version`: create and migrate a store's schema.

Cassandra (default): `setup` creates the keyspace if needed (SimpleStrategy, or NetworkTopologyStrategy
when --datacenter is given) and applies every schema version; `update` applies the versions a keyspace
lacks, in order; `version` prints the keyspace's version and the newest this Hourglass knows. Versions live
in schema/cassandra/vN/ and are recorded in the keyspace's `schema_version` and `schema_update_history`
tables. Astra DB (--secure-connect-bundle + --token): keyspaces are made in the Astra console, so the tool
creates tables only. A keyspace migrated by a newer Hourglass is refused, never touched.

SQLite (--store sqlite --db-filename FILE) uses the embedded store's runner (schema/migrate_sqlite.py).

Registered on the main command as `main.add_command(schema)` (hourglass.cluster.cli).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from cassandra.cluster import Session

    from hourglass.persistence.cassandra.config import CassandraConfig


@dataclass
class SchemaTarget:
    """Where the schema goes, from the command's options."""

    store: str
    db_filename: str | None
    cassandra: CassandraConfig
    schema_dir: Path | None


def _target_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The connection options every schema command takes, folded into one SchemaTarget argument."""
    options = [
        click.option(
            "--store",
            type=click.Choice(["cassandra", "sqlite"]),
            default="cassandra",
            show_default=True,
            help="Which store's schema to manage.",
        ),
        click.option(
            "--db-filename",
            type=click.Path(dir_okay=False),
            help="SQLite database file (with --store sqlite).",
        ),
        click.option(
            "--hosts",
            default="127.0.0.1",
            show_default=True,
            envvar="HOURGLASS_CASSANDRA_HOSTS",
            help="Comma-separated Cassandra contact points (host or host:port).",
        ),
        click.option(
            "--port", type=click.IntRange(1, 65535), default=9042, show_default=True, help="CQL port."
        ),
        click.option("--keyspace", default="hourglass", show_default=True, help="Keyspace to manage."),
        click.option("--username", default=None, help="Cassandra user (PasswordAuthenticator)."),
        click.option(
            "--password",
            default=None,
            help="Cassandra password; prefer --password-file or HOURGLASS_CASSANDRA_PASSWORD (a password "
            "on the command line is visible to other users of the machine).",
        ),
        click.option(
            "--password-file",
            type=click.Path(dir_okay=False),
            default=None,
            help="File holding the Cassandra password (one trailing newline is ignored).",
        ),
        click.option(
            "--password-env",
            default=None,
            metavar="NAME",
            help="Environment variable holding the Cassandra password "
            "[default: HOURGLASS_CASSANDRA_PASSWORD, when set].",
        ),
        click.option("--tls", is_flag=True, help="Connect with TLS (implied by the other --tls-* options)."),
        click.option(
            "--tls-ca-file",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            help="CA certificate(s) (PEM) to verify the nodes with [default: the system's CAs].",
        ),
        click.option(
            "--tls-cert-file",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            help="Client certificate (PEM) for nodes that require one; with --tls-key-file.",
        ),
        click.option(
            "--tls-key-file",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            help="Unencrypted PEM private key of --tls-cert-file.",
        ),
        click.option(
            "--tls-server-name",
            default=None,
            help="Name the nodes' certificates must carry, instead of the address connected to.",
        ),
        click.option(
            "--tls-skip-hostname-check",
            is_flag=True,
            help="Verify the nodes' certificates but not that they name the address connected to.",
        ),
        click.option(
            "--datacenter",
            default=None,
            help="Local datacenter: routing, and NetworkTopologyStrategy for a new keyspace.",
        ),
        click.option(
            "--secure-connect-bundle",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            help="Astra DB secure connect bundle (zip); tables only, no CREATE KEYSPACE.",
        ),
        click.option(
            "--token",
            default=None,
            help="Astra DB application token (AstraCS:...); prefer --token-file or HOURGLASS_ASTRA_TOKEN.",
        ),
        click.option(
            "--token-file",
            type=click.Path(dir_okay=False),
            default=None,
            help="File holding the Astra DB token (one trailing newline is ignored).",
        ),
        click.option(
            "--token-env",
            default=None,
            metavar="NAME",
            help="Environment variable holding the Astra DB token [default: HOURGLASS_ASTRA_TOKEN, when set].",
        ),
        click.option(
            "--schema-dir",
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            default=None,
            hidden=True,
            help="Directory of vN/ schema versions instead of the shipped ones (tests).",
        ),
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        names = (
            "store",
            "db_filename",
            "hosts",
            "port",
            "keyspace",
            "username",
            "password",
            "password_file",
            "password_env",
            "tls",
            "tls_ca_file",
            "tls_cert_file",
            "tls_key_file",
            "tls_server_name",
            "tls_skip_hostname_check",
            "datacenter",
            "secure_connect_bundle",
            "token",
            "token_file",
            "token_env",
            "schema_dir",
        )
        o = {name: kwargs.pop(name) for name in names}
        if o["store"] == "sqlite" and not o["db_filename"]:
            raise click.UsageError("--store sqlite needs --db-filename")
        cassandra = _cassandra_config(o) if o["store"] == "cassandra" else _placeholder_config()
        target = SchemaTarget(o["store"], o["db_filename"], cassandra, o["schema_dir"])
        return command(target=target, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def _cassandra_config(o: dict[str, Any]) -> CassandraConfig:
    """The connection settings from the options, with the password / token read from their source."""
    from hourglass.persistence.cassandra.config import CassandraConfig, parse_hosts
    from hourglass.persistence.cassandra.credentials import (
        PASSWORD_ENV,
        TOKEN_ENV,
        SecretError,
        SecretKeys,
        resolve_secret,
    )

    astra = o["secure_connect_bundle"] is not None
    try:
        hosts, port = parse_hosts(o["hosts"], o["port"])
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--hosts") from None
    if (o["tls_cert_file"] is None) != (o["tls_key_file"] is None):
        raise click.UsageError("--tls-cert-file and --tls-key-file go together")
    tls = o["tls"] or any(o[k] for k in ("tls_ca_file", "tls_cert_file", "tls_server_name"))
    if astra and tls:
        raise click.UsageError(
            "--tls options do not apply to Astra DB: the secure connect bundle carries TLS"
        )
    explicit_password = o["password"] or o["password_file"] or o["password_env"]
    if explicit_password and o["username"] is None:
        raise click.UsageError("a password needs --username")
    try:
        password = None
        if o["username"] is not None:
            password = resolve_secret(
                SecretKeys.flags("password"),
                value=o["password"],
                file=o["password_file"],
                env=o["password_env"],
                default_env=PASSWORD_ENV,
            )
        token = resolve_secret(
            SecretKeys.flags("token"),
            value=o["token"],
            file=o["token_file"],
            env=o["token_env"],
            default_env=TOKEN_ENV if astra else None,
        )
    except SecretError as e:
        raise click.UsageError(str(e)) from None
    if astra and not token:
        raise click.UsageError(
            f"--secure-connect-bundle needs --token-file, --token-env, {TOKEN_ENV} or --token"
        )
    if token and not astra:
        raise click.UsageError("--token, --token-file and --token-env go with --secure-connect-bundle")
    return CassandraConfig(
        hosts=hosts,
        port=port,
        keyspace=o["keyspace"],
        username=o["username"],
        password=password,
        tls=tls,
        tls_ca_file=o["tls_ca_file"],
        tls_cert_file=o["tls_cert_file"],
        tls_key_file=o["tls_key_file"],
        tls_verify_hostname=not o["tls_skip_hostname_check"],
        tls_server_name=o["tls_server_name"],
        datacenter=o["datacenter"],
        secure_connect_bundle=o["secure_connect_bundle"],
        token=token,
        protocol_version=None if astra else 5,
    )


def _placeholder_config() -> CassandraConfig:
    from hourglass.persistence.cassandra.config import CassandraConfig

    return CassandraConfig()


@click.group("schema")
def schema() -> None:
    """Create and migrate the store's schema (Cassandra / Astra DB keyspace, or an SQLite file)."""


@schema.command("setup")
@_target_options
@click.option(
    "--replication-factor",
    type=click.IntRange(1, 32),
    default=1,
    show_default=True,
    help="Replication factor of a keyspace this command creates (ignored on Astra DB).",
)
def setup(target: SchemaTarget, replication_factor: int) -> None:
    """Create the keyspace if needed and bring it to the latest schema version."""
    if target.store == "sqlite":
        _sqlite_apply(target, must_exist=False)
        return
    from hourglass.schema.migrate_cassandra import create_keyspace

    config = target.cassandra
    with _cassandra_session(config) as session:
        if config.is_astra:
            click.echo(
                f"Astra DB: keyspaces are created in the Astra console; creating tables only, "
                f"in keyspace {config.keyspace!r}"
            )
        else:
            created = _schema_call(
                create_keyspace, session, config.keyspace, replication_factor, config.datacenter
            )
            if created:
                replication = (
                    f"NetworkTopologyStrategy, {config.datacenter}: {replication_factor}"
                    if config.datacenter
                    else f"SimpleStrategy, replication factor {replication_factor}"
                )
                click.echo(f"created keyspace {config.keyspace!r} ({replication})")
            else:
                click.echo(f"keyspace {config.keyspace!r} exists; its replication is left as it is")
        _cassandra_apply(target, session)


@schema.command("update")
@_target_options
def update(target: SchemaTarget) -> None:
    """Apply, in order, the schema versions the keyspace (or SQLite file) lacks."""
    if target.store == "sqlite":
        _sqlite_apply(target, must_exist=True)
        return
    from hourglass.schema.migrate_cassandra import keyspace_exists

    config = target.cassandra
    with _cassandra_session(config) as session:
        if not keyspace_exists(session, config.keyspace):
            hint = (
                "in the Astra console"
                if config.is_astra
                else f"with `hourglass schema setup --keyspace {config.keyspace}`"
            )
            raise click.ClickException(f"keyspace {config.keyspace!r} does not exist; create it {hint}")
        _cassandra_apply(target, session)


@schema.command("version")
@_target_options
def version(target: SchemaTarget) -> None:
    """Print the schema version of the keyspace (or SQLite file) and the latest this Hourglass knows."""
    if target.store == "sqlite":
        _sqlite_version(target)
        return
    from hourglass.schema.migrate_cassandra import latest_version, read_schema_state

    config = target.cassandra
    latest = _schema_call(latest_version, target.schema_dir)
    with _cassandra_session(config) as session:
        state = _schema_call(read_schema_state, session, config.keyspace)
    _print_version(
        f"keyspace {config.keyspace!r}",
        None if state is None else (state.curr_version, state.min_compatible_version),
        latest,
        config.keyspace,
    )


# ---- cassandra -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _cassandra_session(config: CassandraConfig) -> Iterator[Session]:
    from cassandra import AuthenticationFailed
    from cassandra.cluster import NoHostAvailable

    from hourglass.persistence.cassandra.config import build_cluster
    from hourglass.persistence.cassandra.tls import tls_failure_hint

    logging.getLogger("cassandra").setLevel(logging.ERROR)
    where = (
        "Astra DB (secure connect bundle)" if config.is_astra else f"{','.join(config.hosts)}:{config.port}"
    )
    try:
        cluster = build_cluster(config)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    try:
        try:
            session = cluster.connect()
        except NoHostAvailable as e:
            hint = None
            if config.tls_enabled:
                hint = tls_failure_hint(
                    e.errors.values(), client_certificate=config.tls_cert_file is not None
                )
            raise click.ClickException(f"cannot connect to Cassandra at {where}: {hint or e}") from None
        except (AuthenticationFailed, OSError) as e:
            raise click.ClickException(f"cannot connect to Cassandra at {where}: {e}") from None
        yield session
    finally:
        cluster.shutdown()


def _cassandra_apply(target: SchemaTarget, session: Session) -> None:
    from hourglass.schema.migrate_cassandra import apply_cassandra_schema, read_schema_state

    keyspace = target.cassandra.keyspace
    before = _schema_call(read_schema_state, session, keyspace)
    after = _schema_call(apply_cassandra_schema, session, keyspace, target.schema_dir, log=click.echo)
    if before is not None and before.curr_version == after:
        click.echo(f"keyspace {keyspace!r} is already at schema version {after}; nothing to do")
    else:
        click.echo(f"keyspace {keyspace!r} is at schema version {after}")


def _schema_call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Schema errors (too new, bad files, missing keyspace) become a clear message and exit status 1."""
    from cassandra import DriverException
    from cassandra.cluster import NoHostAvailable

    from hourglass.schema.migrate_sqlite import SchemaError

    try:
        return function(*args, **kwargs)
    except SchemaError as e:
        raise click.ClickException(str(e)) from None
    except (DriverException, NoHostAvailable) as e:
        raise click.ClickException(f"cassandra: {type(e).__name__}: {e}") from None


# ---- sqlite --------------------------------------------------------------------------------------------


def _sqlite_apply(target: SchemaTarget, must_exist: bool) -> None:
    from hourglass.schema.migrate_sqlite import (
        SchemaError,
        apply_sqlite_schema,
        default_schema_dir,
        read_schema_version,
    )

    path = Path(str(target.db_filename))
    if must_exist and not path.exists():
        raise click.ClickException(
            f"no SQLite database at {path}; create it with `hourglass schema setup --store sqlite`"
        )
    schema_dir = target.schema_dir or default_schema_dir()
    with contextlib.closing(_sqlite_connect(path)) as conn:
        before = read_schema_version(conn)
        try:
            after = apply_sqlite_schema(conn, schema_dir)
        except SchemaError as e:
            raise click.ClickException(str(e)) from None
    if before == after:
        click.echo(f"{path} is already at schema version {after}; nothing to do")
    else:
        click.echo(f"{path} is at schema version {after} (was {before})")


def _sqlite_version(target: SchemaTarget) -> None:
    from hourglass.schema.migrate_sqlite import default_schema_dir, load_schema_versions

    path = Path(str(target.db_filename))
    if not path.exists():
        raise click.ClickException(f"no SQLite database at {path}")
    versions = load_schema_versions(target.schema_dir or default_schema_dir())
    latest = versions[-1].version if versions else 0
    with contextlib.closing(_sqlite_connect(path)) as conn:
        try:
            row = conn.execute(
                "SELECT curr_version, min_compatible_version FROM schema_version WHERE id = 1"
            ).fetchone()
        except sqlite3.OperationalError:
            row = None
    _print_version(str(path), None if row is None else (int(row[0]), int(row[1])), latest, None)


def _sqlite_connect(path: Path) -> sqlite3.Connection:
    try:
        return sqlite3.connect(str(path), isolation_level=None)
    except sqlite3.Error as e:
        raise click.ClickException(f"cannot open {path}: {e}") from None


# ---- output ---------------------------------------------------------------------------------------------


def _print_version(what: str, state: tuple[int, int] | None, latest: int, keyspace: str | None) -> None:
    flag = f" --keyspace {keyspace}" if keyspace else ""
    if state is None:
        click.echo(f"{what}: no schema (run `hourglass schema setup{flag}`)")
        click.echo(f"latest schema version known to this Hourglass: {latest}")
        return
    current, min_compatible = state
    click.echo(f"{what}: schema version {current} (minimum compatible version {min_compatible})")
    click.echo(f"latest schema version known to this Hourglass: {latest}")
    if current < latest:
        click.echo(f"status: behind; run `hourglass schema update{flag}`")
    elif current > latest:
        usable = (
            "still usable by this Hourglass" if min_compatible <= latest else "upgrade Hourglass to use it"
        )
        click.echo(f"status: newer than this Hourglass; {usable}")
    else:
        click.echo("status: up to date")
