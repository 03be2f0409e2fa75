"""A Nexus handler's links (temporal:/// URLs) as the Temporal links the caller's history records."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType
from temporalio.api.nexus.v1 import Link as NexusLink

from hourglass.cluster.history.nexus_dispatch import LINK_TYPE, proto_links

BASE = "temporal:///namespaces/my%20ns/workflows/wf%2F1/run-1/history"


def test_an_event_reference_in_either_spelling() -> None:
    go = NexusLink(
        url=f"{BASE}?eventID=1&eventType=WorkflowExecutionStarted&referenceType=EventReference",
        type=LINK_TYPE,
    )
    enum = NexusLink(
        url=f"{BASE}?eventType=EVENT_TYPE_WORKFLOW_EXECUTION_STARTED&referenceType=EventReference",
        type=LINK_TYPE,
    )
    first, second = proto_links([go, enum])
    ref = first.workflow_event
    assert (ref.namespace, ref.workflow_id, ref.run_id) == ("my ns", "wf/1", "run-1")
    assert (ref.event_ref.event_id, ref.event_ref.event_type) == (
        1,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
    )
    assert second.workflow_event.event_ref.event_id == 0
    assert second.workflow_event.event_ref.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED


def test_a_request_id_reference() -> None:
    [link] = proto_links(
        [
            NexusLink(
                url=f"{BASE}?eventType=WorkflowExecutionSignaled&referenceType=RequestIdReference&requestID=r-1",
                type=LINK_TYPE,
            )
        ]
    )
    ref = link.workflow_event.request_id_ref
    assert (ref.request_id, ref.event_type) == ("r-1", EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)


def test_links_it_cannot_read_are_skipped() -> None:
    assert (
        proto_links(
            [
                NexusLink(
                    url=f"{BASE}?eventType=WorkflowExecutionStarted&referenceType=EventReference",
                    type="other",
                ),
                NexusLink(url="https://example.com/x", type=LINK_TYPE),
                NexusLink(url=f"{BASE}?eventType=NoSuchEvent&referenceType=EventReference", type=LINK_TYPE),
                NexusLink(
                    url=f"{BASE}?eventType=WorkflowExecutionStarted&referenceType=Unknown", type=LINK_TYPE
                ),
            ]
        )
        == []
    )
