"""The dynamic config gates of PauseWorkflowExecution and worker heartbeats, with the reference's keys,
defaults and messages (the compat suite runs with pause on; this is the off side)."""

from __future__ import annotations

import pytest
from temporalio.api.workflowservice.v1 import DescribeNamespaceResponse

from hourglass.cluster.errors import Unimplemented
from hourglass.cluster.frontend import workflow_pause
from hourglass.cluster.frontend.namespaces import ServerFacts
from hourglass.cluster.history.limits import LIMITS, apply_dynamic_config


@pytest.fixture
def restore_limits():
    saved = (
        LIMITS.workflow_pause_enabled,
        LIMITS.worker_heartbeats_enabled,
        LIMITS.worker_registry_entry_ttl_ms,
    )
    yield
    LIMITS.workflow_pause_enabled, LIMITS.worker_heartbeats_enabled, LIMITS.worker_registry_entry_ttl_ms = (
        saved
    )


def _capabilities():
    desc = DescribeNamespaceResponse()
    ServerFacts().describe(desc)
    return desc.namespace_info.capabilities


def test_defaults_are_the_reference_dev_servers(restore_limits) -> None:
    caps = _capabilities()
    assert caps.worker_heartbeats and not caps.workflow_pause and not caps.worker_poll_complete_on_shutdown
    with pytest.raises(Unimplemented, match="^workflow pause is not enabled for namespace: default$"):
        workflow_pause.check_enabled("default")


def test_dynamic_config_turns_pause_on_and_heartbeats_off(restore_limits) -> None:
    apply_dynamic_config(
        {
            "frontend.WorkflowPauseEnabled": True,
            "frontend.WorkerHeartbeatsEnabled": False,
            "matching.workerRegistryEntryTTL": "90s",
        }
    )
    caps = _capabilities()
    assert caps.workflow_pause and not caps.worker_heartbeats
    workflow_pause.check_enabled("default")
    assert LIMITS.worker_registry_entry_ttl_ms == 90_000
    with pytest.raises(ValueError, match="frontend.WorkflowPauseEnabled must be true or false"):
        apply_dynamic_config({"frontend.WorkflowPauseEnabled": "yes"})
