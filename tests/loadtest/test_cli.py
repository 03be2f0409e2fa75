"""The command line parses its options and refuses bad ones with a clear message (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hourglass.loadtest.cli import loadtest

HERE = Path(__file__).parent
USER_SCENARIO = str(HERE / "user_scenario_example.py")


def invoke(*args: str):
    return CliRunner().invoke(loadtest, list(args))


def test_help_lists_the_commands_and_scenarios() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    assert "run" in result.output and "compare" in result.output
    run_help = invoke("run", "--help").output
    for option in (
        "--address",
        "--scenario",
        "--workflows",
        "--concurrency",
        "--rate",
        "--duration",
        "--driver",
    ):
        assert option in run_help
    assert "heavy-history" in run_help


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run"], "Missing option '--address'"),
        (["run", "--address", "localhost"], "is not HOST:PORT"),
        (["run", "--address", "127.0.0.1:99999"], "is not HOST:PORT"),
        (["run", "--address", "127.0.0.1:7233,localhost"], "'localhost' is not HOST:PORT"),
        (["run", "--address", "127.0.0.1:7233", "--scenario", "nope"], "'nope' is not one of"),
        (["run", "--address", "127.0.0.1:7233", "--concurrency", "0"], "0 is not in the range x>=1"),
        (["run", "--address", "127.0.0.1:7233", "--rate", "5"], "needs --duration"),
        (
            ["run", "--address", "127.0.0.1:7233", "--rate", "5", "--duration", "1s", "--workflows", "3"],
            "not both",
        ),
        (["run", "--address", "127.0.0.1:7233", "--rate", "-1", "--duration", "1s"], "x>0"),
        (["run", "--address", "127.0.0.1:7233", "--duration", "soon"], "is not a duration"),
        (["run", "--address", "127.0.0.1:7233", "--duration", "20m"], "shorter than --timeout"),
        (["run", "--address", "127.0.0.1:7233", "--metrics-url", "localhost:9464"], "is not an http(s) URL"),
        (
            ["run", "--address", "127.0.0.1:7233", "--metrics-url", "http://127.0.0.1:1/metrics,x"],
            "'x' is not an http(s) URL",
        ),
        (["run", "--address", "127.0.0.1:7233", "--driver", "grpc"], "'grpc' is not one of"),
        (["run", "--address", "127.0.0.1:7233", "--scenario-file", "/no/such/file.py"], "does not exist"),
        (
            ["run", "--address", "127.0.0.1:7233", "--scenario", "timer", "--scenario-file", USER_SCENARIO],
            "not both",
        ),
        (
            ["run", "--address", "127.0.0.1:7233", "--scenario-file", USER_SCENARIO, "--driver", "raw"],
            "runs with --driver sdk only",
        ),
        (["compare", "--rounds", "0"], "0 is not in the range 1<=x<=20"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_file_without_scenario_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "no_scenario_here.py"
    empty.write_text("X = 1\n")
    result = invoke("run", "--address", "127.0.0.1:7233", "--scenario-file", str(empty))
    assert result.exit_code == 2
    assert "must define SCENARIO" in result.output


def test_an_unreachable_server_is_one_clear_error_line() -> None:
    from hourglass.loadtest.servers import free_port

    result = invoke("run", "--address", f"127.0.0.1:{free_port()}", "--workflows", "1", "--quiet")
    assert result.exit_code == 1
    assert "cannot reach the server" in result.output
