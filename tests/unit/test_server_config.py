"""`hourglass server start --config`: a bad file is refused with a message that names the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hourglass.cluster.cli import main
from hourglass.cluster.config import ConfigError, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "config"


@pytest.mark.parametrize("name", ["cassandra-local.yaml", "astra.yaml", "sqlite-file.yaml"])
def test_shipped_examples_are_valid(name: str) -> None:
    config = load_config(CONFIGS / name)
    assert config.store.kind in ("cassandra", "sqlite")


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    path.write_text("store:\n  kind: sqlite\nnode:\n  prot: 7233\n")
    with pytest.raises(ConfigError, match=r"node\.prot: Extra inputs are not permitted"):
        load_config(path)


def test_wrong_type_and_missing_store_are_named(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    path.write_text("history_shards: many\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "history_shards" in str(info.value) and "store: Field required" in str(info.value)


def test_cli_reports_bad_config_and_exits_non_zero(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    path.write_text("store: [not, a, mapping\n")
    result = CliRunner().invoke(main, ["server", "start", "--config", str(path)])
    assert result.exit_code != 0
    assert "not valid YAML" in result.output


def test_cli_reports_a_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["server", "start", "--config", str(tmp_path / "nope.yaml")])
    assert result.exit_code != 0
    assert "cannot read" in result.output


@pytest.mark.parametrize(
    ("value", "ms"),
    [("5s", 5_000), ("1m30s", 90_000), ("500ms", 500), ("1h", 3_600_000), ("2d", 172_800_000), (90, 90_000)],
)
def test_dynamic_config_durations_read_as_the_reference_reads_them(value: object, ms: int) -> None:
    """`--dynamic-config-value 'history.workflowTaskRetryMaxInterval="5s"'`: Go durations, or seconds."""
    from hourglass.cluster.history.limits import LIMITS, apply_dynamic_config

    before = LIMITS.workflow_task_retry_max_interval_ms
    try:
        apply_dynamic_config({"history.workflowTaskRetryMaxInterval": value})
        assert LIMITS.workflow_task_retry_max_interval_ms == ms
    finally:
        LIMITS.workflow_task_retry_max_interval_ms = before


@pytest.mark.parametrize("value", ["5x", "", "soon", "-5s", True])
def test_a_bad_dynamic_config_duration_is_refused(value: object) -> None:
    from hourglass.cluster.history.limits import apply_dynamic_config

    with pytest.raises(ValueError, match="history.workflowTaskRetryMaxInterval must be a"):
        apply_dynamic_config({"history.workflowTaskRetryMaxInterval": value})


def test_run_limits_take_the_reference_keys_and_defaults() -> None:
    """The reference's defaults; 0 turns off the limits the reference lets 0 turn off, not the others."""
    from hourglass.cluster.history.limits import LIMITS, HistoryLimits, apply_dynamic_config

    defaults = HistoryLimits()
    assert (defaults.history_count_error, defaults.history_size_error_bytes) == (51_200, 50 * 1024 * 1024)
    assert (defaults.maximum_signals_per_execution, defaults.num_pending_activities_error) == (10_000, 2000)
    saved = LIMITS.__dict__.copy()
    try:
        apply_dynamic_config({"history.maximumSignalsPerExecution": 0, "limit.numPendingActivities.error": 3})
        assert (LIMITS.maximum_signals_per_execution, LIMITS.num_pending_activities_error) == (0, 3)
        with pytest.raises(ValueError, match="limit.historyCount.error must be a positive integer"):
            apply_dynamic_config({"limit.historyCount.error": 0})
        with pytest.raises(ValueError, match="limit.numPendingSignals.error must be a non-negative integer"):
            apply_dynamic_config({"limit.numPendingSignals.error": -1})
    finally:
        LIMITS.__dict__.update(saved)


def test_the_http_api_port_is_read_and_must_not_clash(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    path.write_text("store:\n  kind: sqlite\nnode:\n  port: 7233\n  http_port: 7243\n")
    assert load_config(path).node.http_port == 7243
    path.write_text("store:\n  kind: sqlite\n")
    assert load_config(path).node.http_port is None  # off unless configured
    for clash in ("port: 7243", "metrics_port: 7243"):
        path.write_text(f"store:\n  kind: sqlite\nnode:\n  {clash}\n  http_port: 7243\n")
        with pytest.raises(ConfigError, match="node.http_port must differ"):
            load_config(path)
    path.write_text("store:\n  kind: sqlite\nnode:\n  http_port: 70000\n")
    with pytest.raises(ConfigError, match=r"node\.http_port"):
        load_config(path)
