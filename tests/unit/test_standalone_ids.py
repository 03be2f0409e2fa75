"""Standalone activities live as runs under a reserved workflow-id prefix: no client workflow may use it."""

from __future__ import annotations

import pytest

from hourglass.cluster.errors import InvalidArgument
from hourglass.cluster.frontend.validation import require_workflow_id
from hourglass.cluster.history import standalone_ids


def test_activity_ids_round_trip_through_the_hidden_workflow_id() -> None:
    wid = standalone_ids.workflow_id("job-1")
    assert standalone_ids.is_standalone(wid)
    assert standalone_ids.activity_id(wid) == "job-1"
    assert not standalone_ids.is_standalone("job-1")


def test_workflow_ids_cannot_take_the_reserved_prefix() -> None:
    with pytest.raises(InvalidArgument) as raised:
        require_workflow_id(standalone_ids.workflow_id("x"))
    assert "reserved prefix" in raised.value.message
    require_workflow_id("an-ordinary-id")  # no error
