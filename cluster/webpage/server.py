"""The node's HTTP port: Prometheus' `/metrics`, the cluster page (`/cluster`) and its data
(`/api/v1/cluster`, the ClusterService Status answer as JSON).

One threaded server from the standard library, as prometheus_client's own `start_http_server` is: a scrape
of /metrics is answered from the server's threads, so it still works (and shows the lag) while the event
loop is stalled, which is when an operator needs it. The cluster's state lives on the event loop, so
/api/v1/cluster runs its check and the Status call there (`run_coroutine_threadsafe`) under a deadline.

With `tls.frontend` configured the port serves TLS with the frontend's certificate (and requires a client
certificate when the frontend does); with an authorizer, /api/v1/cluster answers only an admin bearer
token. The page itself holds no data and is served to anyone who reaches the port.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import json
import logging
import secrets
import ssl
import threading
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder

from hourglass.cluster.rpc import internal_pb2 as pb
from hourglass.cluster.security.http_auth import AdminGate
from hourglass.cluster.security.tls import _Watched, load_ca_bundle, load_key_pair
from hourglass.cluster.status import status_dict

log = logging.getLogger(__name__)

# How long /api/v1/cluster waits for the loop (the Status call itself asks members with 2 s deadlines).
API_DEADLINE_S = 10.0
# A connection that sends nothing for this long is closed (a thread each: keep idle ones short).
IDLE_TIMEOUT_S = 30.0
# Connections served at once (Prometheus holds one, each open page one or two).
MAX_CONNECTIONS = 64

_PAGE = importlib.resources.files(__package__).joinpath("cluster.html").read_text(encoding="utf-8")

StatusCall = Callable[[pb.ClusterStatusRequest], Awaitable[pb.ClusterStatusResponse]]


def tls_context(section: Any, refresh_interval_s: float, prefix: str = "tls.frontend.server") -> _TLSContext:
    """The port's TLS from a `TLSServerSection` (the frontend's), re-read when its files change."""
    return _TLSContext(section, refresh_interval_s, prefix)


class _TLSContext:
    def __init__(self, section: Any, refresh_interval_s: float, prefix: str) -> None:
        self.section = section
        self.prefix = prefix
        self._watched = _Watched(
            [section.cert_file, section.key_file, *section.client_ca_files], refresh_interval_s
        )
        self._context = self._load()

    def _load(self) -> ssl.SSLContext:
        s = self.section
        # Checked the way the gRPC port checks them: errors name the config key.
        load_key_pair(s.cert_file, s.key_file, self.prefix)
        cas = load_ca_bundle(s.client_ca_files, f"{self.prefix}.client_ca_files")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(s.cert_file, s.key_file)
        if cas is not None:
            context.load_verify_locations(cadata=cas.decode())
            context.verify_mode = ssl.CERT_REQUIRED if s.require_client_auth else ssl.CERT_OPTIONAL
        return context

    def current(self) -> ssl.SSLContext:
        if self._watched.changed():
            try:
                self._context = self._load()
                log.info("%s: certificate files changed; the HTTP port uses the new certificate", self.prefix)
            except Exception as e:
                log.error("HTTP port: TLS files changed but cannot be used (keeping the previous): %s", e)
        return self._context


class HttpPort:
    """Serves the node's HTTP port until `stop()`. `status` is the node's ClusterService Status (None: the
    node serves /metrics only); `gate` decides who reads the cluster data (None: anyone)."""

    def __init__(
        self,
        ip: str,
        port: int,
        loop: asyncio.AbstractEventLoop,
        status: StatusCall | None = None,
        gate: AdminGate | None = None,
        tls: _TLSContext | None = None,
    ) -> None:
        self.loop = loop
        self.status = status
        self.gate = gate
        self.tls = tls
        self._server = _Server((ip, port), _Handler, self)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    def start(self) -> int:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="http-port", daemon=True
        )
        self._thread.start()
        return self.port

    async def stop(self) -> None:
        if self._thread is not None:
            await asyncio.to_thread(self._server.shutdown)
            self._thread = None
        self._server.server_close()

    async def cluster_answer(self, authorization: str) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) of /api/v1/cluster; runs on the event loop."""
        if self.gate is not None:
            verdict = await self.gate.check(authorization)
            if not verdict.allowed:
                return verdict.status, {"error": "Request unauthorized.", "reason": verdict.reason}
        if self.status is None:
            return 404, {"error": "this node serves no cluster status"}
        resp = await self.status(pb.ClusterStatusRequest(shards=True, partitions=True))
        return 200, status_dict(resp)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, port: HttpPort) -> None:
        self.http_port = port
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # A thread per connection, but not without bound: past MAX_CONNECTIONS new ones are closed.
        if not self._slots.acquire(blocking=False):
            log.warning(
                "HTTP port: %d connections open; closing one from %s", MAX_CONNECTIONS, client_address
            )
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        if self.http_port.tls is not None:
            # The handshake runs in the connection's thread (at its first read), never in the accept loop.
            sock = self.http_port.tls.current().wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that fails the TLS handshake or hangs up is not the server's error.
        log.debug("HTTP port: connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = IDLE_TIMEOUT_S
    server_version = "hourglass"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("HTTP port: %s %s", self.address_string(), format % args)

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data).encode()
        self._send(status, body, "application/json", {"Cache-Control": "no-store", **(headers or {})})

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept"))
            self._send(200, encoder(REGISTRY), content_type)
        elif path in ("/", "/cluster/"):
            # The page fetches its data by a relative URL, which only /cluster resolves right.
            self._send(302, b"", "text/plain", {"Location": "/cluster"})
        elif path == "/cluster":
            nonce = secrets.token_urlsafe(16)
            self._send(
                200,
                _PAGE.replace("__NONCE__", nonce).encode(),
                "text/html; charset=utf-8",
                {
                    "Cache-Control": "no-store",
                    # Only the page's own inline script and style run; it talks to this origin only.
                    "Content-Security-Policy": (
                        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
                        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
                        "frame-ancestors 'none'"
                    ),
                    "Referrer-Policy": "no-referrer",
                },
            )
        elif path == "/api/v1/cluster":
            self._cluster()
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")

    def _cluster(self) -> None:
        port = self.server.http_port
        future = None
        try:
            future = asyncio.run_coroutine_threadsafe(
                port.cluster_answer(self.headers.get("Authorization", "")), port.loop
            )
            status, data = future.result(API_DEADLINE_S)
        except TimeoutError:
            if future is not None:
                future.cancel()
            self._json(503, {"error": f"the node did not answer within {API_DEADLINE_S:.0f} s"})
            return
        except Exception as e:
            log.exception("HTTP port: cluster status failed")
            self._json(500, {"error": f"cluster status failed: {type(e).__name__}"})
            return
        headers = {"WWW-Authenticate": 'Bearer realm="hourglass"'} if status == 401 else None
        self._json(status, data, headers)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self._send(405, b"method not allowed\n", "text/plain; charset=utf-8", {"Allow": "GET, HEAD"})

    do_PUT = do_DELETE = do_PATCH = do_POST
