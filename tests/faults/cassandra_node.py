"""A Cassandra node of the fault tests' own, which they may pause, stop and restart.

The shared development node (tools/cassandra/devserver.py on 127.0.0.1) serves other suites and sessions,
so it is never touched: this node listens on 127.0.0.9 with its data in the test's temporary folder, and is
stopped and wiped by the fixture that started it.

Its commit log is fsynced before each write is acknowledged (`--commitlog-sync batch`). With Cassandra's
default periodic sync, a kill -9 of the process alone loses the writes of the last moments before it,
acknowledged ones included (measured: 2 of 149 acknowledged rows gone after the restart): the database
itself then goes back in time under the server, which no server can make up for. The crash test is about
the server surviving a database that crashes, not one that forgets what it acknowledged.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from hourglass.persistence.cassandra import testing

ADDRESS = "127.0.0.9"
PORT = 9042
START_TIMEOUT_S = 240


class FaultCassandra:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.address = ADDRESS
        self.port = PORT

    def _devserver(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(testing.devserver_script()), *args, "--data-dir", str(self.data_dir),
             "--listen-address", ADDRESS],
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def up(self) -> None:
        """Start (or restart on its existing data) and wait until CQL answers."""
        result = self._devserver(
            "up",
            "--heap",
            "768M",
            "--cluster-name",
            "hourglass-faults",
            "--commitlog-sync",
            "batch",
            timeout=START_TIMEOUT_S + 30,
        )
        if result.returncode != 0:
            raise RuntimeError(f"fault-test Cassandra did not start:\n{result.stderr[-3000:]}")

    def down(self, wipe: bool = False) -> None:
        self._devserver("down", *(["--wipe"] if wipe else []), timeout=90)

    @property
    def pid(self) -> int:
        return int((self.data_dir / "cassandra.pid").read_text())

    def kill9(self) -> None:
        """A crash: no drain, no flush (the commit log replays on the next start)."""
        os.kill(self.pid, signal.SIGKILL)
        (self.data_dir / "cassandra.pid").unlink(missing_ok=True)

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
