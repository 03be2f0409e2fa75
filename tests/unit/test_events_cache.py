"""The shard's cache of the events it committed: what it serves, and its bound in bytes."""

from __future__ import annotations

from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import ActivityTaskScheduledEventAttributes, HistoryEvent

from hourglass.cluster.history.events_cache import EventsCache
from hourglass.persistence.records import ExecutionKey

RUN = ExecutionKey("ns", "wf", "run")


def _scheduled(event_id: int, payload_bytes: int = 10) -> HistoryEvent:
    return HistoryEvent(
        event_id=event_id,
        event_type=EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
        activity_task_scheduled_event_attributes=ActivityTaskScheduledEventAttributes(
            activity_id=str(event_id), input=Payloads(payloads=[Payload(data=b"x" * payload_bytes)])
        ),
    )


def test_serves_a_run_s_events_only_while_it_holds_all_of_them():
    cache = EventsCache(1 << 20)
    started = HistoryEvent(event_id=1, event_type=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)
    cache.add(RUN, [started, _scheduled(2)])
    cache.add(RUN, [_scheduled(3)])
    assert cache.get(RUN, 2).activity_task_scheduled_event_attributes.activity_id == "2"
    assert [e.event_id for e in cache.span(RUN, 1, 4)] == [1, 2, 3]
    assert [e.event_id for e in cache.span(RUN, 3, 4)] == [3]
    assert cache.span(RUN, 4, 4) == []
    assert cache.span(RUN, 2, 5) is None  # event 4 was never committed here: the store has to say
    assert cache.get(ExecutionKey("ns", "wf", "another run"), 2) is None


def test_stays_within_its_bytes_dropping_the_least_recently_used():
    one = _scheduled(1, 1000).ByteSize()
    cache = EventsCache(max_bytes=8 * one + one // 2)  # room for eight
    cache.add(RUN, [_scheduled(i, 1000) for i in range(1, 9)])
    assert cache.get(RUN, 1) is not None  # now the most recently used
    cache.add(RUN, [_scheduled(9, 1000)])
    assert [i for i in range(1, 10) if cache.get(RUN, i) is None] == [2]
    cache.add(RUN, [_scheduled(9, 1000)])  # the same event again is not counted twice
    assert [i for i in range(1, 10) if cache.get(RUN, i) is None] == [2]


def test_an_event_too_large_for_its_share_is_not_kept():
    cache = EventsCache(max_bytes=8000)
    cache.add(RUN, [_scheduled(1, 10), _scheduled(2, 2000)])
    assert cache.get(RUN, 1) is not None and cache.get(RUN, 2) is None
