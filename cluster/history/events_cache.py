"""Recently committed history events, kept by the shard that committed them.

History reads its runs' recent events back moments after committing them: a sticky worker's next workflow
task carries the events since its last one, an activity's start needs its scheduled event, a child's
start its initiated event, an update's poller its completed event. Serving those from memory saves a
store read (on Cassandra, a round trip) on every workflow task and activity start.

Only events of committed transitions enter: a batch whose outcome is unknown may be replaced by another
under the same event ids. The cache belongs to one Shard object, so it goes when the shard is released.
It is bounded in bytes, least recently used out first, because events carry the user's payloads.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from temporalio.api.history.v1 import HistoryEvent

from hourglass.persistence.records import ExecutionKey

# For the whole node; each shard gets its share (HistoryEngine).
NODE_BYTES = 32 * 1024 * 1024


class EventsCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._events: OrderedDict[tuple[ExecutionKey, int], tuple[HistoryEvent, int]] = OrderedDict()
        self._bytes = 0

    def add(self, key: ExecutionKey, events: Iterable[HistoryEvent]) -> None:
        """Keep the events of a transition of run `key` that was just committed."""
        for event in events:
            size = event.ByteSize()
            if size > self.max_bytes // 8:
                continue  # a few large payloads must not flush everything else
            old = self._events.pop((key, event.event_id), None)
            if old is not None:
                self._bytes -= old[1]
            self._events[(key, event.event_id)] = (event, size)
            self._bytes += size
        while self._bytes > self.max_bytes:
            _, (_, size) = self._events.popitem(last=False)
            self._bytes -= size

    def get(self, key: ExecutionKey, event_id: int) -> HistoryEvent | None:
        entry = self._events.get((key, event_id))
        if entry is None:
            return None
        self._events.move_to_end((key, event_id))
        return entry[0]

    def span(self, key: ExecutionKey, first_event_id: int, end_event_id: int) -> list[HistoryEvent] | None:
        """Events first_event_id .. end_event_id - 1 of the run, if all of them are here; else None."""
        events = []
        for event_id in range(first_event_id, end_event_id):
            event = self.get(key, event_id)
            if event is None:
                return None
            events.append(event)
        return events
