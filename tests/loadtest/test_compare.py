"""`compare` starts both servers, runs on each, prints ratios, and leaves no server behind."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from hourglass.loadtest.cli import loadtest


@pytest.mark.skipif(shutil.which("temporal") is None, reason="the reference `temporal` CLI is not installed")
@pytest.mark.timeout(300)
def test_compare_runs_both_servers_and_stops_them(tmp_path: Path) -> None:
    out = tmp_path / "compare.json"
    args = ["compare", "--workflows", "3", "--concurrency", "3", "--rounds", "1", "--history-sample", "1"]
    result = CliRunner().invoke(loadtest, [*args, "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "hourglass / reference" in result.output

    data = json.loads(out.read_text())
    for kind in ("reference", "hourglass"):
        assert data[kind]["figures"]["workflows_completed"] == 3, data[kind]["errors"]
        pid = data["servers"][kind]["pid"]
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # stopped and reaped
    assert data["ratio_hourglass_over_reference"]["workflows_per_s"] > 0
    assert [r["label"] for r in data["rounds"]] == ["reference", "hourglass"]
