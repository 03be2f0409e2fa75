"""Differential tests: each scenario's normalized history on the server under test equals the reference's.

With HOURGLASS_COMPAT_TARGET=reference both sides are the reference (two separate runs of the scenario):
that proves the scenarios and the normalizer are deterministic.
"""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import Client

from .history_diff import diff, event_type_list, render
from .scenarios import SCENARIOS, Scenario, run_scenario
from .servers import ServerProcess


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_history_matches_reference(
    scenario: Scenario,
    client: Client,
    reference_client: Client,
    server: ServerProcess,
    reference_server: ServerProcess,
) -> None:
    same_server = server is reference_server
    (expected, _), (actual, _) = await asyncio.gather(
        run_scenario(reference_client, scenario), run_scenario(client, scenario)
    )
    # The reference itself must still produce the pinned event sequence.
    if event_type_list(expected) != scenario.expected:
        pytest.fail(
            f"scenario {scenario.name}: the reference no longer produces the pinned event types "
            f"{scenario.expected}; it produced:\n" + "\n".join(render(expected)),
            pytrace=False,
        )
    right_name = "reference (second run)" if same_server else server.kind
    difference = diff(expected, actual, "reference", right_name)
    if difference:
        pytest.fail(
            f"scenario {scenario.name}: normalized histories differ (- reference, + {right_name})\n{difference}",
            pytrace=False,
        )
