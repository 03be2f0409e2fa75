"""Kinds of history queue tasks and the small JSON payloads they carry.

Tasks are written in the same conditional batch as the transition that created them and executed after it
commits, so a crash between the two never loses work: the queue processors find the task on reload.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


class TransferKind:
    WORKFLOW_TASK = "workflow_task"  # hand a workflow task to matching
    ACTIVITY_TASK = "activity_task"  # hand an activity task to matching
    VISIBILITY = "visibility"  # record the run's current state in visibility (start, close, upsert)
    START_CHILD = "start_child"  # start the child workflow a command initiated
    SIGNAL_EXTERNAL = "signal_external"  # deliver a signal a command sent to another workflow
    CANCEL_EXTERNAL = "cancel_external"  # deliver a cancel request a command sent to another workflow
    RECORD_CHILD_COMPLETION = "record_child_completion"  # tell the parent that this child closed
    PARENT_CLOSE_POLICY = "parent_close_policy"  # terminate / cancel a child whose parent closed
    NEXUS_START = "nexus_start"  # hand a scheduled Nexus operation's start request to its endpoint
    NEXUS_CANCEL = "nexus_cancel"  # ask a started Nexus operation's handler to cancel it
    COMPLETION_CALLBACK = "completion_callback"  # a closed run tells the Nexus operation it backs its outcome


class TimerKind:
    USER_TIMER = "user_timer"
    WORKFLOW_TASK_TIMEOUT = "workflow_task_timeout"
    ACTIVITY_TIMEOUT = "activity_timeout"
    ACTIVITY_RETRY = "activity_retry"  # a retry's backoff is over: dispatch the next attempt
    WORKFLOW_TIMEOUT = "workflow_timeout"  # the run's (or whole execution's) timeout
    DELETE_HISTORY = "delete_history"  # the namespace's retention after close is over: delete the run
    WORKFLOW_BACKOFF = "workflow_backoff"  # a delayed start (start delay, later cron/retry): first task now
    NEXUS_TIMEOUT = "nexus_timeout"  # a Nexus operation's schedule-to-close timeout
    NEXUS_RETRY = "nexus_retry"  # a Nexus start (or cancel) attempt got no answer: try again
    CALLBACK_RETRY = "callback_retry"  # a completion callback's delivery got no answer: try again


@dataclass
class NewTask:
    """A task produced by a transition, before the shard gives it a task id."""

    kind: str
    data: dict = field(default_factory=dict)
    fire_time_ms: int = 0  # timers only

    def encoded(self) -> bytes:
        return json.dumps(self.data, separators=(",", ":")).encode()


def decode(data: bytes) -> dict:
    return json.loads(data) if data else {}
