"""The `hourglass` command line (click: sub-commands, typed options and help without hand-rolled argv)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import click

from hourglass.cluster.security.cli_options import client_tls_from_options, tls_client_options


@click.group()
def main() -> None:
    """Hourglass: a Temporal-compatible durable-execution cluster."""


@main.group()
def server() -> None:
    """Run Hourglass server nodes."""


# `temporal server start-dev`'s own default for frontend.namespaceRPS.visibility (the server's is 10).
START_DEV_VISIBILITY_RPS = 100


@server.command("start-dev")
@click.option("--ip", default="127.0.0.1", show_default=True, help="Address the frontend listens on.")
@click.option(
    "--port", "-p", default=7233, show_default=True, type=click.IntRange(0, 65535), help="Frontend gRPC port."
)
@click.option(
    "--ui-port",
    default=None,
    type=click.IntRange(1, 65535),
    help="Port of the Web UI (default: --port + 1000, i.e. 8233).",
)
@click.option("--ui-ip", default=None, help="Address the Web UI listens on (default: --ip).")
@click.option("--headless", is_flag=True, help="Do not start the Web UI.")
@click.option("--ui-public-path", default="", help="Serve the Web UI under this path (e.g. /ui).")
@click.option("--ui-codec-endpoint", default="", help="Remote codec endpoint the Web UI uses.")
@click.option(
    "--namespace", "-n", "namespaces", multiple=True, help="Extra namespace to create (repeatable)."
)
@click.option(
    "--db-filename",
    "-f",
    default=None,
    type=click.Path(dir_okay=False),
    help="SQLite file to keep state in (default: in memory, lost on exit).",
)
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
)
@click.option(
    "--history-shards",
    default=4,
    show_default=True,
    type=click.IntRange(1, 16384),
    help="Number of history shards (fixed when the store is created).",
)
@click.option(
    "--metrics-port",
    default=None,
    type=click.IntRange(0, 65535),
    help="Serve HTTP on this port (0: any free port): Prometheus /metrics and the cluster page /cluster. "
    "Off by default.",
)
@click.option(
    "--http-port",
    default=0,
    type=click.IntRange(0, 65535),
    help="Port of the HTTP API (Temporal's JSON routes, /api/v1/...). Defaults to a random free port, "
    "as the reference's start-dev does.",
)
@click.option(
    "--event-loop",
    default="uvloop",
    show_default=True,
    type=click.Choice(["uvloop", "asyncio"]),
    help="Event loop implementation.",
)
@click.option(
    "--dynamic-config-value",
    "dynamic_config_values",
    multiple=True,
    metavar="KEY=VALUE",
    help="A dynamic config value, as for `temporal server start-dev` (repeatable). Hourglass uses "
    "limit.historyCount.suggestContinueAsNew, limit.historySize.suggestContinueAsNew and the frontend's rate "
    "limits (frontend.rps, frontend.namespaceRPS, frontend.namespaceCount, ...; see README) and ignores others.",
)
@click.option(
    "--auth-jwt-key-uri",
    "auth_jwt_key_uris",
    multiple=True,
    metavar="URI",
    help="Turn on authorization: every request needs `authorization: Bearer <JWT>` signed (RS256/ES256) by "
    "a key from URI (repeatable): file:///path (PEM public key or certificate; file:///path#KID names its "
    "kid) or http(s)://.../jwks.json. The token's `permissions` claim grants roles, e.g. "
    '["default:write", "temporal-system:admin"]; roles are read, write, worker, admin.',
)
@click.option(
    "--tls-cert",
    default=None,
    type=click.Path(dir_okay=False),
    help="Serve the frontend over TLS with this PEM certificate (chain); needs --tls-key.",
)
@click.option(
    "--tls-key", default=None, type=click.Path(dir_okay=False), help="The certificate's PEM private key."
)
@click.option(
    "--tls-client-ca",
    default=None,
    type=click.Path(dir_okay=False),
    help="Require client certificates signed by this PEM CA (mutual TLS); needs --tls-cert.",
)
@click.option(
    "--time-skipping",
    is_flag=True,
    default=False,
    help="Serve temporal.api.testservice.v1.TestService on the frontend port and run on a virtual clock "
    "that jumps to the next timer when time skipping is unlocked and nothing runs (the SDKs' time-skipping "
    "test environments drive it). Starts locked, as the SDKs' test server: time follows the wall clock "
    "until a client unlocks it.",
)
@click.option(
    "--enable-time-skipping",
    is_flag=True,
    default=False,
    help="--time-skipping, started unlocked (as the SDKs' Java test server's flag): time skips whenever "
    "nothing runs, without a client unlocking it first.",
)
def start_dev(
    ip: str,
    port: int,
    ui_port: int | None,
    ui_ip: str | None,
    headless: bool,
    ui_public_path: str,
    ui_codec_endpoint: str,
    namespaces: tuple[str, ...],
    db_filename: str | None,
    log_level: str,
    history_shards: int,
    metrics_port: int | None,
    http_port: int,
    event_loop: str,
    dynamic_config_values: tuple[str, ...],
    auth_jwt_key_uris: tuple[str, ...],
    tls_cert: str | None,
    tls_key: str | None,
    tls_client_ca: str | None,
    time_skipping: bool,
    enable_time_skipping: bool,
) -> None:
    """A single node on the embedded SQLite store, with the `default` namespace (like `temporal server start-dev`).

    Serves the official Web UI on --ui-port unless --headless (built by `make ui`). Plaintext unless
    --tls-cert/--tls-key are given (the UI then serves HTTPS with the same certificate); with
    --tls-client-ca, clients need a certificate (and the UI stays off: it would need one of its own)."""
    from hourglass.cluster.history.limits import parse_dynamic_config_values
    from hourglass.cluster.node import NodeConfig
    from hourglass.persistence.sqlite.store import SQLiteStore

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from hourglass.cluster.frontend.rate_limits import RateLimitConfig
    from hourglass.cluster.matching.partition_config import PartitionConfig

    try:
        dynamic_config = parse_dynamic_config_values(dynamic_config_values)
        RateLimitConfig(dynamic_config)  # a bad limit is named here, before anything starts
        PartitionConfig(dynamic_config)
        # As `temporal server start-dev`, which raises the visibility rate from the server's 10/s.
        dynamic_config.setdefault("frontend.namespaceRPS.visibility", START_DEV_VISIBILITY_RPS)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--dynamic-config-value") from None
    authorization = None
    if auth_jwt_key_uris:
        from pydantic import ValidationError

        from hourglass.cluster.config import AuthorizationSection

        try:
            authorization = AuthorizationSection(
                authorizer="default",
                claim_mapper="default",
                jwt_key_provider={"key_source_uris": list(auth_jwt_key_uris)},
            )
        except ValidationError as e:
            message = "; ".join(err["msg"].removeprefix("Value error, ") for err in e.errors())
            raise click.BadParameter(message, param_hint="--auth-jwt-key-uri") from None
    config = NodeConfig(
        authorization=authorization,
        tls=_dev_tls(tls_cert, tls_key, tls_client_ca),
        dynamic_config=dynamic_config,
        ip=ip,
        port=port,
        history_shard_count=history_shards,
        metrics_port=metrics_port,
        http_port=http_port,
        # The reference's start-dev names its cluster so (GetClusterInfo, ListClusters, every namespace's
        # replication config).
        cluster_name="active",
        namespaces=["default", *[n for n in namespaces if n != "default"]],
        time_skipping=time_skipping or enable_time_skipping,
        time_skipping_locked=not enable_time_skipping,
    )

    ui = None
    if not headless:
        from hourglass.cluster.webui import WebUIError, default_binary, default_port, settings_for_frontend

        try:
            ui = settings_for_frontend(
                binary=default_binary(),
                ip=ui_ip or ip,
                port=ui_port or default_port(port),
                frontend_ip=ip,
                frontend_port=port,
                frontend_tls=config.tls.frontend if config.tls is not None else None,
                public_path=ui_public_path,
                codec_endpoint=ui_codec_endpoint,
            )
        except WebUIError as e:
            click.echo(f"Web UI: off ({e})", err=True)

    async def open_store():
        return await SQLiteStore.open(db_filename)

    where = f"SQLite, {db_filename or 'in memory'}"
    _run(_serve(config, open_store, where, ui, ui_port_given=ui_port is not None), event_loop)


def _dev_tls(cert: str | None, key: str | None, client_ca: str | None):
    """start-dev's TLS flags as the `tls.frontend` section of a node config; None: plaintext."""
    from hourglass.cluster.config import TLSGroupSection, TLSSection, TLSServerSection

    if not cert and not key and not client_ca:
        return None
    if not cert or not key:
        raise click.UsageError("--tls-cert and --tls-key go together (and --tls-client-ca needs them)")
    from hourglass.cluster.security.tls import TLSConfigError, load_ca_bundle, load_key_pair

    try:  # checked here so that the message names the flags
        load_key_pair(cert, key, "", names=("--tls-cert", "--tls-key"))
        load_ca_bundle([client_ca] if client_ca else [], "--tls-client-ca")
    except TLSConfigError as e:
        raise click.UsageError(str(e)) from None
    server_section = TLSServerSection(
        cert_file=cert,
        key_file=key,
        client_ca_files=[client_ca] if client_ca else [],
        require_client_auth=bool(client_ca),
    )
    return TLSSection(frontend=TLSGroupSection(server=server_section))


@server.command("start")
@click.option(
    "--config",
    "config_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="YAML configuration of the node (see config/*.yaml).",
)
@click.option("--event-loop", default="uvloop", show_default=True, type=click.Choice(["uvloop", "asyncio"]))
def start(config_file: str, event_loop: str) -> None:
    """A node of a cluster, on the store its configuration names (Cassandra / Astra DB, or SQLite)."""
    from hourglass.cluster.config import ConfigError, load_config, open_store
    from hourglass.cluster.node import NodeConfig

    try:
        config = load_config(config_file)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    node_config = NodeConfig(
        ip=config.node.ip,
        port=config.node.port,
        history_shard_count=config.history_shards,
        metrics_port=config.node.metrics_port,
        http_port=config.node.http_port,
        namespaces=config.namespaces,
        max_blob_bytes=config.max_blob_bytes,
        cluster_name=config.cluster_name,
        cluster=config.cluster,
        dynamic_config=config.dynamic_config,
        tls=config.tls,
        authorization=config.authorization,
    )
    where = config.store.kind
    if config.store.kind == "cassandra":
        c = config.store.cassandra
        where = f"Cassandra, keyspace {c.keyspace} at {'Astra DB' if c.secure_connect_bundle else ','.join(c.hosts)}"
    ui, ui_port_given = _node_ui(config), config.ui.port is not None
    _run(_serve(node_config, lambda: open_store(config), where, ui, ui_port_given=ui_port_given), event_loop)


def _node_ui(config):
    """The Web UI settings of a node whose config enables `ui:`; None when it is off."""
    from pathlib import Path

    from hourglass.cluster.webui import WebUIError, default_binary, default_port, settings_for_frontend

    if not config.ui.enabled:
        return None
    try:
        return settings_for_frontend(
            binary=Path(config.ui.binary) if config.ui.binary else default_binary(),
            ip=config.ui.ip or config.node.ip,
            port=config.ui.port or default_port(config.node.port),
            frontend_ip=config.node.ip,
            frontend_port=config.node.port,
            frontend_tls=config.tls.frontend,
            public_path=config.ui.public_path,
            codec_endpoint=config.ui.codec_endpoint,
            client_cert_file=config.ui.client_cert_file,
            client_key_file=config.ui.client_key_file,
        )
    except WebUIError as e:  # the config's own validation catches this first; kept as a safety net
        raise click.ClickException(str(e)) from None


async def _serve(config, open_store, where: str, ui=None, ui_port_given: bool = False) -> None:
    """Open the store, start the node (and its Web UI, when `ui` has its settings), serve until
    SIGINT/SIGTERM, then stop cleanly (the UI first)."""
    from hourglass.cluster.node import Node

    try:
        store = await open_store()
    except Exception as e:  # the store's own message names the problem (unreachable, old schema...)
        raise click.ClickException(f"cannot open the store ({where}): {e}") from None
    node = Node(config, store)
    # Installed first: a SIGTERM while the node or its UI starts stops it cleanly once started, instead of
    # killing the process with the default action.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await node.start()
    except Exception as e:
        await store.close()
        raise click.ClickException(f"cannot start the node: {e}") from None
    if node.server is not None:
        click.echo(
            f"Hourglass listening on {config.ip}:{node.bound_port} (store: {where}); "
            f"namespaces: {', '.join(config.namespaces)}",
            err=True,
        )
    if node.membership is not None:
        m = node.membership
        click.echo(
            f"Cluster member {m.swim.id} (gossip, UDP); internal RPC on {m.rpc_address}; "
            f"roles: {','.join(config.cluster.roles)}; seeds: {','.join(config.cluster.seeds) or '(none)'}",
            err=True,
        )
    if node.http_api is not None:
        click.echo(f"HTTP API: {node.http_api.scheme}://{config.ip}:{node.http_api.bound_port}", err=True)
    if node.http_port is not None:
        base = f"{node.http_port.scheme}://{config.ip}:{node.metrics_port}"
        click.echo(f"Metrics: {base}/metrics; cluster page: {base}/cluster", err=True)
    if node.clock is not None:
        state = "locked until a client unlocks it" if node.clock.lock_count else "unlocked"
        click.echo(f"Time skipping: TestService served; the clock is {state}", err=True)
    if node.jwt_keys is not None:
        click.echo(
            "Authorization: every request needs a bearer JWT signed by a key from "
            f"{', '.join(node.jwt_keys.uris)}",
            err=True,
        )
    ui_server = await _start_ui(ui, node, ui_port_given) if ui is not None else None
    try:
        await stop.wait()
    finally:
        if ui_server is not None:
            await ui_server.stop()
        await node.stop()


async def _start_ui(settings, node, port_given: bool):
    """Start the Web UI child. A missing binary, or the default port taken (say by a second start-dev), is
    one line and no UI; any other failure, or the port asked for taken, stops the node."""
    from hourglass.cluster.webui import WebUIError, WebUIPortInUse, WebUIServer

    if settings.frontend_address.endswith(":0"):  # the frontend's port was chosen by the system
        host = settings.frontend_address.rsplit(":", 1)[0]
        settings.frontend_address = f"{host}:{node.bound_port}"
    server = WebUIServer(settings)
    try:
        await server.start()
    except FileNotFoundError as e:
        click.echo(str(e), err=True)
        return None
    except WebUIPortInUse as e:
        if port_given:
            await node.stop()
            raise click.ClickException(str(e)) from None
        click.echo(f"Web UI: off ({e})", err=True)
        return None
    except WebUIError as e:
        await node.stop()
        raise click.ClickException(str(e)) from None
    click.echo(f"Web UI: {settings.url}", err=True)
    return server


@server.command("health")
@click.option(
    "--address", default="127.0.0.1:7233", show_default=True, help="The node's frontend address (HOST:PORT)."
)
@click.option(
    "--service",
    default="temporal.api.workflowservice.v1.WorkflowService",
    show_default=True,
    help="Service to ask about ('' for the server as a whole).",
)
@click.option("--timeout", default=5.0, show_default=True, type=click.FloatRange(0.1, 300), help="Seconds.")
@tls_client_options
def server_health(address: str, service: str, timeout: float, **tls_paths: str | None) -> None:
    """Exit 0 if the node answers SERVING to the standard gRPC health check, 1 otherwise (a container's
    HEALTHCHECK, a Kubernetes exec probe). Health checks need no token, as on the reference."""
    import grpc
    from grpc_health.v1 import health_pb2

    from hourglass.cluster.health import check_health

    tls = client_tls_from_options(**tls_paths)
    try:
        status = asyncio.run(check_health(address, service, timeout, tls))
    except grpc.aio.AioRpcError as e:
        raise click.ClickException(
            f"{address} did not answer the health check: {e.code().name} {e.details()}"
        ) from None
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    if status != health_pb2.HealthCheckResponse.SERVING:
        raise click.ClickException(f"{address} is {name}")
    click.echo(name)


def _run(coro, event_loop: str) -> None:
    if event_loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            click.echo("uvloop is not installed; using asyncio", err=True)
        else:
            uvloop.run(coro)
            return
    asyncio.run(coro)


@main.group()
def cluster() -> None:
    """Inspect a running cluster; make gossip keys."""


_API_KEY = click.option(
    "--api-key",
    envvar="HOURGLASS_API_KEY",
    default=None,
    help="Sent as `authorization: Bearer <key>` (a JWT with temporal-system:admin when the frontend "
    "checks authorization). Also read from HOURGLASS_API_KEY.",
)
_ADDRESS_HELP = "Any node's frontend or internal RPC address (HOST:PORT)."


def _admin_call(address: str, api_key: str | None, tls_paths: dict, call):
    """Run `call(admin_client)` against the node at `address`; the server's refusals as CLI messages."""
    from hourglass.sdk.admin import AdminClient, AdminError

    tls = client_tls_from_options(**tls_paths)

    async def run():
        async with await AdminClient.connect(address, tls=tls, api_key=api_key) as admin:
            return await call(admin)

    try:
        return asyncio.run(run())
    except AdminError as e:
        import grpc

        if e.code == grpc.StatusCode.UNIMPLEMENTED:
            raise click.ClickException(f"{address} is not a cluster member (a single node)") from None
        if e.code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
            raise click.ClickException(
                f"{address} refused the request ({e.message}): pass --api-key with a token granting "
                "temporal-system:admin"
            ) from None
        raise click.ClickException(f"{address}: {e.message} ({e.code.name})") from None


@cluster.command("status")
@click.option("--address", default="127.0.0.1:7233", show_default=True, help=_ADDRESS_HELP)
@click.option(
    "--shards", is_flag=True, help="Also print which member holds each history shard, with its transitions/s."
)
@click.option("--partitions", is_flag=True, help="Also print the task-queue partitions and who holds them.")
@click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: the Status answer as the cluster page's /api/v1/cluster serves it.",
)
@_API_KEY
@tls_client_options
def cluster_status(
    address: str, shards: bool, partitions: bool, output: str, api_key: str | None, **tls_paths: str | None
) -> None:
    """Every member (address, roles, alive/suspect/dead/draining, incarnation, shards and task-queue
    partitions held, transitions/s, event-loop lag over the last ~10 s), and the store's schema version.

    Over TLS with any --tls-* option (as the `temporal` CLI's); a node's internal address needs a member
    certificate (--tls-cert-path/--tls-key-path from the cluster's CA)."""
    from hourglass.cluster.status import render, status_json

    resp = _admin_call(
        address, api_key, tls_paths, lambda admin: admin.status_response(shards=shards, partitions=partitions)
    )
    click.echo(status_json(resp) if output == "json" else render(resp))


_NODE_HELP = (
    "The member to act on: its frontend, internal RPC or gossip address (default: the node at --address)."
)


def _member_action(name: str, timeout_help: str):
    """A command acting on one member through any node: --address, --node, --timeout and the client's
    identity options."""

    def decorate(fn):
        for option in reversed(
            (
                click.option("--address", default="127.0.0.1:7233", show_default=True, help=_ADDRESS_HELP),
                click.option("--node", default="", help=_NODE_HELP),
                click.option(
                    "--timeout",
                    type=click.FloatRange(min=1),
                    default=120.0,
                    show_default=True,
                    help=timeout_help,
                ),
                _API_KEY,
                tls_client_options,
            )
        ):
            fn = option(fn)
        return cluster.command(name)(fn)

    return decorate


@_member_action("drain", "Seconds to wait until every shard is held by another member.")
def cluster_drain(
    address: str, node: str, timeout: float, api_key: str | None, **tls_paths: str | None
) -> None:
    """Hand a node's history shards and task-queue partitions to the other members, before stopping it.

    Returns once every shard is held by another member. The node stays a member and keeps serving its
    frontend (as a router) until it is stopped (then restarted: it takes its share again) or undrained.

    \b
    Rolling upgrade, one node at a time:
      hourglass cluster drain --address NODE ...   # wait for "drained"
      stop NODE, upgrade, start it
      hourglass cluster status --address NODE ...  # until it holds shards again, then the next node"""
    result = _admin_call(address, api_key, tls_paths, lambda admin: admin.drain(node, timeout=timeout))
    click.echo(
        f"drained {result.member_id}: its {len(result.released_shards)} shards are held by other members "
        f"({result.seconds:.1f} s); stop it now, or `hourglass cluster undrain` to put it back"
    )


@_member_action("undrain", "Seconds to wait until the node holds its share of the shards again.")
def cluster_undrain(
    address: str, node: str, timeout: float, api_key: str | None, **tls_paths: str | None
) -> None:
    """Put a drained node back in service (without restarting it): it takes its share of the shards."""
    result = _admin_call(address, api_key, tls_paths, lambda admin: admin.undrain(node, timeout=timeout))
    click.echo(
        f"{result.member_id} is back in service with {len(result.shards)} shards ({result.seconds:.1f} s)"
    )


@cluster.command("gossip-key")
def cluster_gossip_key() -> None:
    """Print a new random gossip key (base64, AES-256) for cluster.gossip_keyring_file.

    \b
    A new cluster:  hourglass cluster gossip-key > gossip.keyring   (the same file on every node)
    Rotation, on every node in turn: add the new key as a second line; then move it first; then, once
    every node has it first, delete the old line. Nodes re-read the file within a second or so.
    """
    from hourglass.cluster.membership.keyring import generate_key

    click.echo(generate_key())


@cluster.command("dev-certs")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Directory to write them in.")
@click.option(
    "--hosts",
    default="127.0.0.1,127.0.0.2,127.0.0.3",
    show_default=True,
    help="Comma-separated member addresses (IPs or DNS names); one certificate each.",
)
def dev_certs(out: str, hosts: str) -> None:
    """Development certificates for internode (and frontend) TLS: a CA (reused if OUT has one), a
    certificate per member, and client.crt for tools. Not for production: the CA key is in OUT."""
    from hourglass.cluster.security.dev_certs import write_dev_certs

    names = [h.strip() for h in hosts.split(",") if h.strip()]
    if not names:
        raise click.BadParameter("give at least one host", param_hint="--hosts")
    for path in write_dev_certs(out, names):
        click.echo(str(path))


def _register_subcommands() -> None:
    from hourglass.cluster.schema_cli import schema
    from hourglass.loadtest.cli import loadtest

    main.add_command(schema)
    main.add_command(loadtest)


_register_subcommands()

if __name__ == "__main__":
    sys.exit(main())
