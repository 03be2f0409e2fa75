"""`store_cost --profile`: py-spy records a real process, and the report names where its CPU went."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from hourglass.loadtest.profile import Profile, Recording, frame_name, render_profiles

REPO = Path(__file__).resolve().parents[2]

# A program whose CPU goes to two known functions of its own file (7:3), both called from a third one.
BUSY = textwrap.dedent(
    """
    import time

    def spin(until):
        n = 0
        while time.monotonic() < until:
            n += 1
        return n

    def spin_here():
        spin(time.monotonic() + 0.007)

    def spin_there():
        spin(time.monotonic() + 0.003)

    def outer():
        end = time.monotonic() + 30
        while time.monotonic() < end:
            spin_here()
            spin_there()

    outer()
    """
)


def test_a_recording_names_the_function_that_burns_the_cpu(tmp_path: Path) -> None:
    program = tmp_path / "busy.py"
    program.write_text(BUSY)
    proc = subprocess.Popen([sys.executable, str(program)])
    try:
        time.sleep(0.3)  # past the interpreter's start-up
        recording = Recording(proc.pid, tmp_path / "out" / "busy.txt", root=f"{tmp_path}/")
        time.sleep(2.0)
        profile = recording.stop()
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert profile.samples > 50
    [(top, share)] = profile.top(1)
    assert top == "spin (busy.py)" and share > 0.8
    inclusive = {k: v / profile.samples for k, v in profile.inclusive_samples.items()}
    assert 0.5 < inclusive["spin_here (busy.py)"] < 0.85 and 0.15 < inclusive["spin_there (busy.py)"] < 0.5
    table = "\n".join(render_profiles({"busy": profile}))
    assert "| `spin (busy.py)` |" in table


async def test_a_servers_profile_names_the_rpc_it_is_busy_with(hourglass, tmp_path: Path) -> None:
    """The node under load is recorded as store_cost records it: its own handler shows up by name."""
    client = await Client.connect(hourglass.address)
    recording = Recording(hourglass.pid, tmp_path / "node.txt", root=f"{REPO}/")
    try:
        end = time.monotonic() + 3
        while time.monotonic() < end:
            await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
    finally:
        profile = recording.stop()
    own = dict(profile.top(15, own_inclusive=True))
    # Entry points (main, the event loop) are in every stack and left out as telling nothing.
    assert not any(name.startswith("start_dev ") for name in own)
    assert "WorkflowService.DescribeNamespace (cluster/frontend/service.py)" in own, (
        profile.inclusive_samples.most_common(40)
    )


def test_frames_lose_line_numbers_and_install_prefixes() -> None:
    assert frame_name("commit (/work/repo/persistence/group_commit.py:120)", "/work/repo/") == (
        "commit (persistence/group_commit.py)",
        True,
    )
    assert frame_name("execute (/x/.venv/lib/python3.11/site-packages/cassandra/cluster.py:9)", "/x/") == (
        "execute (cassandra/cluster.py)",
        False,
    )
    profile = Profile()
    profile.add_collapsed(
        "a (/r/m.py:1);b (/r/m.py:2) 3\na (/r/m.py:1);c (/r/n.py:5) 1\nnot a stack\n", "/r/"
    )
    assert profile.samples == 4
    assert profile.self_samples == {"b (m.py)": 3, "c (n.py)": 1}
    assert profile.inclusive_samples["a (m.py)"] == 4
    assert frame_name("Runner.run (/root/.pyenv/versions/3.11.7/lib/python3.11/asyncio/runners.py:118)") == (
        "Runner.run (asyncio/runners.py)",
        False,
    )
