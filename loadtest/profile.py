"""Where a server's CPU goes under load: py-spy samples the running process, the top functions summed up.

py-spy (a sampling profiler for CPython) attaches to a process by its pid and reads its stacks from
outside, so the node under test runs unchanged and unpaused (`--nonblocking`); only threads running on a
CPU are sampled (py-spy's default), so idle waits on the event loop's selector count for nothing. Its raw
output is collapsed stacks, one line per distinct stack: `frame;frame;...;frame COUNT`, each frame
`function (file:line)`. A function's self share is the samples whose innermost frame it is; its inclusive
share the samples with it anywhere in the stack (once per stack, so recursion is not counted twice). The
report's second table keeps the project's own functions (files under the build's root) below the event
loop, by inclusive share: which of its operations the CPU is spent in, callees (libraries) included.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

RATE_HZ = 100
# Frames that run an event loop: the server's own frames above them (main, CLI) are in every stack of the
# loop's thread and tell nothing, so the own-code table starts below them.
LOOP_RUNNERS = frozenset(
    {
        "run (uvloop/__init__.py)",
        "Runner.run (asyncio/runners.py)",
        "BaseEventLoop.run_forever (asyncio/base_events.py)",
    }
)
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
# An installed module (standard library, site- or dist-packages) is named from its package down.
_SITE_PACKAGES = re.compile(r"^.*?/lib/python3(?:\.\d+)?/(?:(?:site|dist)-packages/)?")


def py_spy() -> str:
    """The py-spy executable (installed with the test extra: next to this interpreter), or a clear error."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise RuntimeError("py-spy is not installed: pip install py-spy (make install-test installs it)")
    return found


def frame_name(frame: str, root: str = "") -> tuple[str, bool]:
    """`function (file)` without the line number and the site-packages or `root` prefix, so a function is
    one row; and whether it is the project's own code (a file under `root`)."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip(), False
    path = match["file"]
    own = bool(root) and path.startswith(root) and not _SITE_PACKAGES.match(path)
    path = path[len(root) :] if own else _SITE_PACKAGES.sub("", path)
    return f"{match['function']} ({path})", own


@dataclass
class Profile:
    """Self and inclusive sample counts per function, over every stack of one or more recordings."""

    samples: int = 0
    self_samples: Counter[str] = field(default_factory=Counter)
    inclusive_samples: Counter[str] = field(default_factory=Counter)
    own: set[str] = field(default_factory=set)

    def add_collapsed(self, text: str, root: str = "") -> None:
        """Adds py-spy's raw output; frames in files under `root` are the project's own code."""
        for line in text.splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            # py-spy puts the thread (or process) name first when asked; a frame always has "(file)".
            frames = [frame_name(f, root) for f in stack.split(";") if f.strip().endswith(")")]
            if not frames:
                continue
            self.samples += n
            self.self_samples[frames[-1][0]] += n
            runners = [i for i, (name, _) in enumerate(frames) if name in LOOP_RUNNERS]
            below_loop = frames[runners[-1] + 1 :] if runners else frames
            for name, _ in set(frames):
                self.inclusive_samples[name] += n
            for name, own in set(below_loop):
                if own:
                    self.own.add(name)

    def merge(self, other: Profile) -> None:
        self.samples += other.samples
        self.self_samples.update(other.self_samples)
        self.inclusive_samples.update(other.inclusive_samples)
        self.own |= other.own

    def top(self, n: int = 15, *, own_inclusive: bool = False) -> list[tuple[str, float]]:
        """The n functions with the most self samples (or, `own_inclusive`, the project's own functions
        with the most inclusive samples), each with its share of all samples (0..1)."""
        if not self.samples:
            return []
        if own_inclusive:
            counts = Counter({k: v for k, v in self.inclusive_samples.items() if k in self.own})
        else:
            counts = self.self_samples
        return [(name, c / self.samples) for name, c in counts.most_common(n)]


class Recording:
    """py-spy recording one process until stop(): the collapsed stacks land in `output`."""

    def __init__(self, pid: int, output: Path, root: str = "", rate_hz: int = RATE_HZ) -> None:
        self.output = output
        self._root = root
        output.parent.mkdir(parents=True, exist_ok=True)
        self._log = output.with_suffix(".log")
        with self._log.open("wb") as log:
            self._proc = subprocess.Popen(
                [py_spy(), "record", "--pid", str(pid), "--rate", str(rate_hz), "--format", "raw",
                 "--nonblocking", "--full-filenames", "--output", str(output)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip

    def stop(self, timeout: float = 60.0) -> Profile:
        """Ends the recording (py-spy writes its file on SIGINT) and reads it back."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        profile = Profile()
        if not self.output.exists():
            raise RuntimeError(f"py-spy wrote no profile: {self._log.read_text(errors='replace')[-2000:]}")
        profile.add_collapsed(self.output.read_text(errors="replace"), self._root)
        return profile


def render_profiles(profiles: dict[str, Profile], n: int = 15) -> list[str]:
    """Two markdown tables per label: the top functions by self time (any code), and the project's own
    functions by inclusive time (where its CPU goes, callees included)."""
    lines: list[str] = []
    for label, profile in profiles.items():
        lines += [
            "",
            f"### {label}: top {n} functions by self time ({profile.samples} samples at {RATE_HZ} Hz)",
            "",
            "| function (file) | self | inclusive |",
            "|---|---:|---:|",
        ]
        for name, share in profile.top(n):
            inclusive = profile.inclusive_samples[name] / profile.samples
            lines.append(f"| `{name}` | {share:.1%} | {inclusive:.1%} |")
        lines += ["", f"{label}: Hourglass's own functions by inclusive time", "", "| function (file) | inclusive |",
                  "|---|---:|"]  # fmt: skip
        lines += [f"| `{name}` | {share:.1%} |" for name, share in profile.top(n, own_inclusive=True)]
    return lines
