"""sdk/examples/trial_reminder is a user's project: its own pytest configuration, the plugin's fixtures
from the installed hourglass. CI runs its tests here, in a separate pytest, as a user would."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "sdk" / "examples" / "trial_reminder"


@pytest.mark.timeout(300)
async def test_the_example_projects_tests_pass():
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE)),
        cwd=EXAMPLE.parents[2],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 280)
    text = out.decode()
    assert proc.returncode == 0, text
    assert "3 passed" in text, text
