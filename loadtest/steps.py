"""Where a workflow's time goes: the gaps between consecutive events of finished workflows' histories.

A closed loop's latency says how long a workflow took, not which step took it. Every history event
carries the server's time, so the gap between event n-1 and event n (started -> workflow task scheduled
-> started -> completed -> activity scheduled -> ...) is the time of one step, comparable between two
servers that write the same history. A workflow task scheduled on a worker's sticky queue is labelled
so, as is the step no history shows: from the client's start request to the result it read, beyond the
history's own first-to-last span (the start call and the wait for the result).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from temporalio.api.enums.v1 import EventType, TaskQueueKind
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from hourglass.loadtest.history import fetch_history

CLIENT_STEP = "client: start request → result read, beyond the history"

_PREFIXES = (
    ("WORKFLOW_TASK_", "WFT "),
    ("ACTIVITY_TASK_", "activity "),
    ("WORKFLOW_EXECUTION_", "workflow "),
)


def event_name(event: HistoryEvent) -> str:
    """Short name of an event type: WORKFLOW_TASK_SCHEDULED -> "WFT scheduled" (sticky ones say so)."""
    name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
    for long, short in _PREFIXES:
        if name.startswith(long):
            name = short + name.removeprefix(long).lower()
            break
    else:
        name = name.lower()
    name = name.replace("_", " ")
    if (
        event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
        and event.workflow_task_scheduled_event_attributes.task_queue.kind
        == TaskQueueKind.TASK_QUEUE_KIND_STICKY
    ):
        name += " (sticky)"
    return name


def _ms(event: HistoryEvent) -> float:
    return event.event_time.ToMicroseconds() / 1000.0


def step_times(
    events: Sequence[HistoryEvent], client_latency_ms: float | None = None
) -> list[tuple[str, float]]:
    """(step label, ms) for each pair of consecutive events; the label starts with the later event's id,
    so the steps of histories of one shape line up, and the client's own step comes last."""
    steps = [
        (f"{cur.event_id}. {event_name(prev)} → {event_name(cur)}", _ms(cur) - _ms(prev))
        for prev, cur in zip(events, events[1:], strict=False)
    ]
    if client_latency_ms is not None and events:
        steps.append((CLIENT_STEP, client_latency_ms - (_ms(events[-1]) - _ms(events[0]))))
    return steps


async def sample_steps(client: Client, workflows: Sequence[tuple[str, float]]) -> dict[str, list[float]]:
    """Read the histories of (workflow id, client latency in ms) pairs: every step's ms, by label."""
    samples: dict[str, list[float]] = {}
    for workflow_id, latency_ms in workflows:
        for label, ms in step_times(await fetch_history(client, workflow_id), latency_ms):
            samples.setdefault(label, []).append(ms)
    return samples


def spread(items: Sequence[object], size: int) -> list[object]:
    """`size` items evenly spaced over `items` (the whole run, not only its first workflows)."""
    if size <= 0 or not items:
        return []
    if size >= len(items):
        return list(items)
    return [items[i * len(items) // size] for i in range(size)]


def _order(label: str) -> tuple[int, str]:
    head = label.split(".", 1)[0]
    return (int(head), label) if head.isdigit() else (1 << 30, label)


def step_medians(samples: dict[str, list[float]]) -> dict[str, float]:
    """Median ms of every step, in history order (the client's step last)."""
    return {
        label: statistics.median(samples[label]) for label in sorted(samples, key=_order) if samples[label]
    }
