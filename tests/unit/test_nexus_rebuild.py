"""A run rebuilt from its history (reset) knows its pending Nexus operations and its completion callbacks."""

from __future__ import annotations

from temporalio.api.common.v1 import Callback
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from hourglass.cluster.history.rebuild import rebuild

E = EventType


def event(event_id: int, event_type: int, **attributes) -> HistoryEvent:
    ev = HistoryEvent(event_id=event_id, event_type=event_type)
    ev.event_time.FromMilliseconds(1_000 * event_id)
    for name, values in attributes.items():
        for key, value in values.items():
            setattr(getattr(ev, name), key, value)
        getattr(ev, name).SetInParent()
    return ev


def history() -> list[HistoryEvent]:
    started = event(1, E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)
    started.workflow_execution_started_event_attributes.workflow_type.name = "Caller"
    started.workflow_execution_started_event_attributes.completion_callbacks.append(
        Callback(nexus=Callback.Nexus(url="temporal://system", header={"temporal-callback-token": "t"}))
    )
    scheduled = "nexus_operation_scheduled_event_attributes"
    events = [started]
    for event_id in (5, 7, 9):
        events.append(
            event(
                event_id,
                E.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED,
                **{
                    scheduled: {
                        "endpoint": f"ep-{event_id}",
                        "service": "s",
                        "operation": "o",
                        "request_id": f"r{event_id}",
                    }
                },
            )
        )
    events += [
        event(
            6,
            E.EVENT_TYPE_NEXUS_OPERATION_STARTED,
            nexus_operation_started_event_attributes={"scheduled_event_id": 5, "operation_token": "tok"},
        ),
        event(
            8,
            E.EVENT_TYPE_NEXUS_OPERATION_COMPLETED,
            nexus_operation_completed_event_attributes={"scheduled_event_id": 7},
        ),
        event(
            10,
            E.EVENT_TYPE_NEXUS_OPERATION_STARTED,
            nexus_operation_started_event_attributes={"scheduled_event_id": 9, "operation_token": "tok9"},
        ),
        event(
            11,
            E.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUESTED,
            nexus_operation_cancel_requested_event_attributes={"scheduled_event_id": 9},
        ),
        event(
            12,
            E.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUEST_COMPLETED,
            nexus_operation_cancel_request_completed_event_attributes={"scheduled_event_id": 9},
        ),
    ]
    return sorted(events, key=lambda e: e.event_id)


def test_pending_operations_are_rebuilt_from_their_events() -> None:
    ms = rebuild(history(), "ns-id", "ns", "wf", "run", node_id=1)
    assert sorted(ms.nexus_operations) == [5, 9]  # 7 completed
    started = ms.nexus_operations[5]
    assert (started.endpoint, started.request_id, started.started_event_id, started.operation_token) == (
        "ep-5",
        "r5",
        6,
        "tok",
    )
    assert started.scheduled_time_ms == 5_000 and started.scheduled_node_id == 1
    canceled = ms.nexus_operations[9]
    assert (canceled.cancel_requested_event_id, canceled.cancel_delivered) == (11, True)


def test_completion_callbacks_survive_a_rebuild() -> None:
    ms = rebuild(history(), "ns-id", "ns", "wf", "run", node_id=1)
    assert [c.nexus.url for c in ms.info.completion_callbacks] == ["temporal://system"]
