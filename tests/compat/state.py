"""Process-wide state shared by the test code, the activities and (passed through the sandbox) the workflows.

Keys are unique per test (a uuid or the workflow id), so nothing leaks between tests.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

# key -> the activity.info().attempt of every attempt that ran, in order.
ATTEMPTS: defaultdict[str, list[int]] = defaultdict(list)
# key -> time.monotonic() at the start of every attempt.
ATTEMPT_TIMES: defaultdict[str, list[float]] = defaultdict(list)
# key -> heartbeat details each attempt started with (activity.info().heartbeat_details).
HEARTBEAT_DETAILS_SEEN: defaultdict[str, list[list[object]]] = defaultdict(list)
# Workflow ids whose first workflow task has already been failed on purpose.
FAILED_FIRST_TASK: set[str] = set()
# Keys for which the cleanup activity ran / the activity observed its cancellation.
CLEANED_UP: set[str] = set()
ACTIVITY_SAW_CANCEL: set[str] = set()
# key -> what a cancelled activity was told (activity.cancellation_details(): paused, reset...).
CANCELLATION_DETAILS: dict[str, object] = {}
# key -> an event an activity waits on (set by the test), and one it sets when it has started.
_GATES: dict[str, asyncio.Event] = {}
_STARTED: dict[str, asyncio.Event] = {}


def gate(key: str) -> asyncio.Event:
    return _GATES.setdefault(key, asyncio.Event())


def started(key: str) -> asyncio.Event:
    return _STARTED.setdefault(key, asyncio.Event())
