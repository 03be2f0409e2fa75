"""The SWIM simulation: Hourglass's own membership code for many members in virtual time. Its figures must
depend on the seed alone, and be what the protocol promises: a crash seen by every member within the
bound, about 1/N of the shards moving on a join (all to the new member), false suspicions under packet
loss near the analytic rate and never fatal."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hourglass.cluster.membership.simulation import main, simulate
from hourglass.cluster.membership.swim import SwimConfig

CONFIG = SwimConfig()


def _cli_json(hash_seed: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "hourglass.cluster.membership.simulation", "--json", *args],
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout)


def test_the_same_seed_gives_the_same_figures_in_any_process():
    args = ("--members", "12", "--seed", "7", "--joins", "1", "--deaths", "1", "--loss-duration", "40")
    first = _cli_json("1", *args)
    # Another string-hash seed: set and dict orders of names differ between processes, figures must not.
    assert _cli_json("2", *args) == first
    assert first["members"] == 12 and first["deaths"][0]["agreed_after_s"] > 0
    other = simulate(12, seed=8, joins=1, deaths=1, loss_duration_s=40).to_json()
    assert other != first


def test_a_crash_is_held_dead_by_every_member_within_the_protocols_bound():
    figures = simulate(30, seed=3, joins=0, deaths=3, loss_duration_s=0)
    assert figures.formed_after_s > 0
    for d in figures.deaths:
        # A ping unanswered for a whole period makes the first suspicion; death only after the timeout.
        assert CONFIG.probe_timeout_s <= d.first_suspected_after_s
        assert d.declared_dead_after_s - d.first_suspected_after_s >= CONFIG.suspicion_timeout_s
        assert d.declared_dead_after_s <= d.agreed_after_s <= d.bound_s
        assert d.shards_moved > 0
    # Someone probes the dead member in most periods: the first suspicion comes in a few, not in 2(n-1).
    assert max(d.first_suspected_after_s for d in figures.deaths) < 10 * CONFIG.probe_interval_s


def test_a_join_moves_about_one_nth_of_the_shards_and_only_to_the_new_member():
    figures = simulate(30, seed=5, shards=4096, joins=3, deaths=0, loss_duration_s=0)
    assert len(figures.joins) == 3
    for j in figures.joins:
        assert j.shards_moved_elsewhere == 0
        assert 0.5 * j.ideal_shards <= j.shards_moved <= 1.5 * j.ideal_shards
    assert figures.max_shards_per_member < 2 * figures.mean_shards_per_member


def test_false_suspicions_under_packet_loss_are_near_the_analytic_rate_and_never_fatal():
    figures = simulate(20, seed=11, joins=0, deaths=0, loss=0.05, loss_duration_s=200)
    x = figures.loss
    assert x is not None and x.probes >= 20 * 190
    rate = x.false_suspicions / x.probes
    assert 0.3 * x.expected_suspicions_per_probe <= rate <= 3 * x.expected_suspicions_per_probe
    assert x.false_deaths == 0  # each suspected member heard of it and refuted in time


def test_without_loss_no_live_member_is_suspected():
    x = simulate(15, seed=2, joins=0, deaths=0, loss=0.0, loss_duration_s=60).loss
    assert x is not None and x.probes > 0
    assert x.false_suspicions == 0 and x.false_deaths == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--members", "1"], "--members must be between 2 and 5000"),
        (["--loss", "1.5"], "--loss must be in [0, 1)"),
        (["--probe-timeout", "2"], "--probe-timeout must be shorter than --probe-interval"),
    ],
)
def test_bad_arguments_are_named(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
