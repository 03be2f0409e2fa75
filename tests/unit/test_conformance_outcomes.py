"""The SDK conformance run (tools/conformance) over a whole test tree: a module that cannot be imported
is listed with its import error, not lost, and tests that cannot run on this machine are set apart
from the differences. Real pytest sessions on a small generated suite, read back as the runner does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "conformance"
sys.path.insert(0, str(TOOLS))

from outcomes import FAILED, NOT_COLLECTED, PASSED, SKIPPED, Outcome, read_junit, read_log  # noqa: E402
from report import load_out_of_scope, render  # noqa: E402

SUITE = {
    "test_ok.py": "def test_passes():\n    assert True\n\ndef test_fails():\n    assert 1 == 2\n",
    "test_broken_import.py": "from temporalio_nowhere.private import thing\n\ndef test_never():\n    pass\n",
    "test_skipped_module.py": "import pytest\npytest.skip('needs a cloud account', allow_module_level=True)\n",
}


def run_suite(tmp_path: Path) -> tuple[Path, Path]:
    suite = tmp_path / "suite"
    suite.mkdir()
    for name, text in SUITE.items():
        (suite / name).write_text(text)
    log, junit = tmp_path / "outcomes.jsonl", tmp_path / "junit.xml"
    env = dict(os.environ, CONFORMANCE_OUTCOME_LOG=str(log), PYTHONPATH=str(TOOLS))
    subprocess.run(
        [sys.executable, "-m", "pytest", str(suite), "-p", "outcome_log", "-p", "no:cacheprovider",
         "--continue-on-collection-errors", "--junitxml", str(junit), "-o", "junit_family=xunit1", "-q"],
        cwd=tmp_path, env=env, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    return log, junit


def test_an_unimportable_module_is_recorded_with_its_import_error_and_the_rest_runs(tmp_path: Path) -> None:
    log_path, junit = run_suite(tmp_path)
    log = read_log(log_path)
    results = log.outcomes | read_junit(junit)
    assert log.finished
    assert results["suite/test_broken_import.py"] == Outcome(
        NOT_COLLECTED, "ModuleNotFoundError: No module named 'temporalio_nowhere'"
    )
    assert results["suite/test_skipped_module.py"].status == SKIPPED
    assert "needs a cloud account" in results["suite/test_skipped_module.py"].message
    assert results["suite/test_ok.py::test_passes"].status == PASSED
    assert results["suite/test_ok.py::test_fails"].status == FAILED
    assert not any(n.endswith("test_never") for n in results)  # never invented: its module never loaded


def test_the_table_sets_apart_unimportable_modules_and_tests_this_machine_cannot_run(tmp_path: Path) -> None:
    toml = tmp_path / "scope.toml"
    toml.write_text(
        '[[feature]]\nfeature = "Nexus"\nreason = "issue 15"\ntests = ["test_nexus_*"]\n'
        '[[not_runnable]]\nfeature = "Downloads"\nreason = "no internet here"\ntests = []\n'
        'messages = ["failed to download"]\n'
    )
    download = Outcome(FAILED, "RuntimeError: failed to download ephemeral server executable")
    results = {
        "reference": {
            "t.py::test_nexus_call": Outcome(PASSED),
            "t.py::test_signal": Outcome(PASSED),
            "t.py::test_time_skipping": download,
            "broken.py": Outcome(NOT_COLLECTED, "ModuleNotFoundError: No module named 'x'"),
        },
        "hourglass": {
            "t.py::test_nexus_call": Outcome(FAILED, "UNIMPLEMENTED"),
            "t.py::test_signal": Outcome(FAILED, "Timed out"),
            "t.py::test_time_skipping": download,
            "broken.py": Outcome(NOT_COLLECTED, "ModuleNotFoundError: No module named 'x'"),
        },
    }
    text = render(results, {}, load_out_of_scope(toml), load_out_of_scope(toml, "not_runnable"))
    sections = {part.split("\n", 1)[0]: part for part in text.split("\n## ")[1:]}
    assert (
        "`t.py::test_signal` | failed | Timed out"
        in sections["Passing on the reference, not on Hourglass: 1"]
    )
    assert "test_nexus_call" in sections["Out of scope (passing on the reference, not on Hourglass): 1"]
    assert "no internet here" in sections["Not runnable here (no internet, no cloud account): 1"]
    modules = sections["Modules that cannot be collected with the pinned SDK and packages: 1"]
    assert "`broken.py` | ModuleNotFoundError: No module named 'x'" in modules
    assert "| not collected | 1 | 1 |" in text
