"""Runs the official Temporal Web UI server (built from its Go module by tools/ui/build.sh) as a child of
the node, pointed at the node's frontend, as `temporal server start-dev` embeds it.

The child is configured the way the reference CLI configures its embedded UI server (its address, port,
public path, codec endpoint, insecure cookies on plain HTTP, no request log) through a config file in a
private temporary directory. It cannot outlive the node: it is stopped with it (SIGTERM, then SIGKILL), and
the kernel kills it if the node dies without stopping it (parent-death signal), so a kill -9 leaves no
orphan.

Security: the UI calls the frontend with the browser's own `authorization` header (the UI server forwards
it), so a frontend checking JWTs checks the browser's token, not the UI's. When the frontend uses TLS the UI
serves HTTPS with the same certificate; when the frontend requires client certificates the UI requires them
from the browser too (same CA), and dials the frontend with the client certificate it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

# The pinned release tools/ui/build.sh builds (keep the two in step).
UI_SERVER_VERSION = "v2.58.1"
# Overrides where the binary is looked for (start-dev has no flag for it; a node's YAML has ui.binary).
BINARY_ENV = "HOURGLASS_UI_SERVER_BINARY"
READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
CLIENT_CA_BUNDLE = "client-ca.pem"
LOG_FILE = "ui-server.log"


class WebUIError(Exception):
    """The UI server could not be started; the message says why (port in use, bad TLS file...)."""


class WebUIPortInUse(WebUIError):
    """Its port is taken: an error when the port was asked for, one line and no UI when it was the default."""


def default_binary() -> Path:
    """Where `make ui` puts the binary: build/ui-server/<version>/ui-server in the source tree (the
    package is installed editable from it), unless $HOURGLASS_UI_SERVER_BINARY names another file."""
    override = os.environ.get(BINARY_ENV)
    if override:
        return Path(override)
    root = Path(__file__).resolve().parent.parent
    return root / "build" / "ui-server" / UI_SERVER_VERSION / "ui-server"


def missing_binary_message(binary: Path) -> str:
    """The one line start-dev logs when it goes on without a UI."""
    return f"Web UI: off (no UI server at {binary}; build it with `make ui`, which needs Go)"


@dataclass
class WebUISettings:
    """What the UI server is told. `frontend_*`: how it reaches the frontend; `serve_*`: how it serves."""

    binary: Path
    ip: str
    port: int
    frontend_address: str
    public_path: str = ""
    codec_endpoint: str = ""
    # Dialing the frontend over TLS: the CA (or the server's own certificate) to trust, the name to check.
    frontend_ca_file: str | None = None
    frontend_server_name: str | None = None
    # A client certificate for a frontend that requires one.
    frontend_cert_file: str | None = None
    frontend_key_file: str | None = None
    # Serving HTTPS: the certificate and key; with a client CA, browsers must present a certificate from it.
    serve_cert_file: str | None = None
    serve_key_file: str | None = None
    serve_client_ca_files: tuple[str, ...] = ()

    @property
    def frontend_tls(self) -> bool:
        return self.frontend_ca_file is not None or self.frontend_cert_file is not None

    @property
    def url(self) -> str:
        scheme = "https" if self.serve_cert_file else "http"
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{scheme}://{host}:{self.port}{self.public_path or ''}"

    def config(self) -> dict:
        """The UI server's YAML config (its `server/config` keys)."""
        cfg: dict = {
            "temporalGrpcAddress": self.frontend_address,
            "host": self.ip,
            "port": self.port,
            "enableUi": True,
            "publicPath": self.public_path,
            "codec": {"endpoint": self.codec_endpoint},
            # As the reference CLI: no per-request log lines; cookies without Secure on plain HTTP.
            "hideLogs": True,
            # Unlike the reference: no call from the browser to temporal.io's news feed (with the
            # cluster's name): a dev server should work offline and tell nobody it runs.
            "disableNewsFetch": True,
            "cors": {"cookieInsecure": not self.serve_cert_file},
        }
        if self.frontend_tls:
            tls: dict = {"enableHostVerification": True}
            if self.frontend_ca_file:
                tls["caFile"] = self.frontend_ca_file
            if self.frontend_server_name:
                tls["serverName"] = self.frontend_server_name
            if self.frontend_cert_file:
                tls["certFile"] = self.frontend_cert_file
                tls["keyFile"] = self.frontend_key_file
            cfg["tls"] = tls
        if self.serve_cert_file:
            serve: dict = {"certFile": self.serve_cert_file, "keyFile": self.serve_key_file}
            if self.serve_client_ca_files:
                # The UI server takes one CA file: several are joined into one bundle next to its config.
                serve["mTLS"] = {"caFile": CLIENT_CA_BUNDLE, "clientAuth": "requireAndVerify"}
            cfg["uiServerTLS"] = serve
        return cfg


def frontend_dial_address(ip: str, port: int) -> str:
    """HOST:PORT the UI dials: a wildcard listen address is reached on loopback."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(ip, ip)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _parent_death_argv() -> list[str]:
    """A prefix that makes the kernel SIGKILL the child when this process dies: util-linux's setpriv
    (Debian's util-linux is essential). Done by exec rather than in a preexec_fn, so the fork runs no
    Python (nor gRPC's fork handlers) in a process full of threads. Empty where setpriv is absent."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


class WebUIServer:
    """The UI server child process: start() returns once it accepts connections; stop() ends it."""

    def __init__(self, settings: WebUISettings) -> None:
        self.settings = settings
        self.process: subprocess.Popen | None = None
        self._dir: str | None = None
        self._watcher: asyncio.Task | None = None
        self._stopping = asyncio.Event()

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    async def start(self) -> None:
        """Write its config, start it, wait until its port accepts connections (or it exits: WebUIError)."""
        s = self.settings
        process = self._spawn()  # a config file and a fork/exec: quick, done inline
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not await asyncio.to_thread(_accepts, s.ip, s.port):
            if process.poll() is not None or time.monotonic() > deadline:
                reason = self._last_output_line()
                await self.stop()
                raise WebUIError(f"the Web UI server did not start on {s.ip}:{s.port}: {reason}")
            await asyncio.sleep(0.05)
        log.info("Web UI server (pid %s) serving %s for %s", process.pid, s.url, s.frontend_address)
        self._watcher = asyncio.get_running_loop().create_task(self._watch(process))

    async def _watch(self, process: subprocess.Popen) -> None:
        """Say so when the UI server exits on its own: the node goes on, its UI is gone."""
        while process.poll() is None and not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 1.0)
        if not self._stopping.is_set():
            log.error(
                "the Web UI server exited (status %s): %s", process.returncode, self._last_output_line()
            )

    def _spawn(self) -> subprocess.Popen:
        s = self.settings
        if not s.binary.is_file() or not os.access(s.binary, os.X_OK):
            raise FileNotFoundError(missing_binary_message(s.binary))
        if not _free(s.ip, s.port):
            raise WebUIPortInUse(
                f"the Web UI cannot listen on {s.ip}:{s.port}: it is in use (pick another --ui-port / "
                "ui.port, or --headless)"
            )
        self._dir = tempfile.mkdtemp(prefix="hourglass-ui-")
        if s.serve_client_ca_files:
            try:
                bundle = "".join(Path(f).read_text() for f in s.serve_client_ca_files)
            except OSError as e:
                raise WebUIError(f"cannot read a client CA file for the Web UI: {e}") from None
            Path(self._dir, CLIENT_CA_BUNDLE).write_text(bundle)
        Path(self._dir, "hourglass.yaml").write_text(yaml.safe_dump(s.config(), sort_keys=False))
        with open(Path(self._dir, LOG_FILE), "wb") as out:
            argv = [
                *_parent_death_argv(),
                *(str(s.binary), "--root", self._dir, "--config", ".", "--env", "hourglass", "start"),
            ]
            self.process = subprocess.Popen(
                argv,
                cwd=self._dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self.process

    def _last_output_line(self) -> str:
        try:
            lines = Path(self._dir or "", LOG_FILE).read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no output"
        return lines[-1] if lines else "no output"

    async def stop(self) -> None:
        """SIGTERM, SIGKILL if it is still there after STOP_TIMEOUT_S; removes its config directory."""
        self._stopping.set()
        if self._watcher is not None:
            await self._watcher
            self._watcher = None
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait, STOP_TIMEOUT_S)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def _free(ip: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip, port))
        except OSError:
            return False
    return True


def _accepts(ip: str, port: int) -> bool:
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(ip, ip)
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def default_port(frontend_port: int) -> int:
    """The reference's default: the frontend port + 1000 (8233 for 7233); any free port when the frontend's
    port is chosen by the system (0) or the sum is not a port."""
    if frontend_port == 0 or frontend_port + 1000 > 65535:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]
    return frontend_port + 1000


def settings_for_frontend(
    *,
    binary: Path,
    ip: str,
    port: int,
    frontend_ip: str,
    frontend_port: int,
    frontend_tls: object | None = None,
    public_path: str = "",
    codec_endpoint: str = "",
    client_cert_file: str | None = None,
    client_key_file: str | None = None,
) -> WebUISettings:
    """The UI's settings for a node whose frontend listens on frontend_ip:frontend_port with
    `frontend_tls` (a config.TLSGroupSection, or None for plaintext).

    With TLS the UI serves HTTPS with the frontend's certificate and trusts the frontend through
    client.root_ca_files (else the frontend's own certificate, pinned). When the frontend requires client
    certificates, browsers must present one from the same CAs, and the UI needs its own
    (client_cert_file/client_key_file): WebUIError names them when they are missing."""
    settings = WebUISettings(
        binary=binary,
        ip=ip,
        port=port,
        frontend_address=frontend_dial_address(frontend_ip, frontend_port),
        public_path=public_path,
        codec_endpoint=codec_endpoint,
    )
    if frontend_tls is None:
        return settings
    server = frontend_tls.server  # type: ignore[attr-defined]
    client = frontend_tls.client  # type: ignore[attr-defined]
    settings.serve_cert_file = server.cert_file
    settings.serve_key_file = server.key_file
    settings.frontend_ca_file = client.root_ca_files[0] if client.root_ca_files else server.cert_file
    settings.frontend_server_name = client.server_name
    if server.require_client_auth:
        if not client_cert_file or not client_key_file:
            raise WebUIError(
                "the frontend requires client certificates: the Web UI needs one of its own "
                "(ui.client_cert_file and ui.client_key_file in a node's config)"
            )
        settings.frontend_cert_file = client_cert_file
        settings.frontend_key_file = client_key_file
        settings.serve_client_ca_files = tuple(server.client_ca_files)
    return settings
