"""Task-queue partitions as the reference names and links them.

A normal queue `orders` has partitions 0..N-1: partition 0, the root, is named `orders`, partition n>0
`/_sys/orders/n`. Partitions form a tree of fan-out `degree` (`matching.forwarderMaxChildrenPerNode`):
a partition without a waiting poller offers its task to its parent, a partition without a task sends
its poll to its parent, so tasks and polls meet at the root at the latest, on whichever node owns it.
Sticky queues and queues already named `/_sys/...` have one partition: they are never split again.
"""

from __future__ import annotations

from temporalio.api.enums.v1 import TaskQueueKind

SYS_PREFIX = "/_sys/"


def partition_name(name: str, number: int) -> str:
    """The reference's name of partition `number` of the queue `name` (the root keeps the queue's name)."""
    if number < 0:
        raise ValueError(f"a partition number is not negative, not {number}")
    return name if number == 0 else f"{SYS_PREFIX}{name}/{number}"


def parse_partition_name(full: str) -> tuple[str, int]:
    """(queue name, partition number) of a partition's name; a plain queue name is its root (0)."""
    if not full.startswith(SYS_PREFIX):
        return full, 0
    base, sep, number = full[len(SYS_PREFIX) :].rpartition("/")
    if not sep or not base or not number.isdigit() or int(number) == 0 or number != str(int(number)):
        raise ValueError(f"invalid task queue partition name {full!r}: expected /_sys/<name>/<n> with n > 0")
    return base, int(number)


def single_partition(name: str, kind: int = TaskQueueKind.TASK_QUEUE_KIND_NORMAL) -> bool:
    """Sticky queues (one worker's cache) and `/_sys/` names (already a partition) are never split."""
    return kind == TaskQueueKind.TASK_QUEUE_KIND_STICKY or name.startswith(SYS_PREFIX)


def parent_partition(number: int, degree: int) -> int:
    """The partition a non-root partition forwards to: children of p are p*degree+1 .. p*degree+degree."""
    if number <= 0:
        raise ValueError("the root partition has no parent")
    if degree < 1:
        raise ValueError(f"a forwarding tree's degree is at least 1, not {degree}")
    return (number + degree - 1) // degree - 1


def path_to_root(number: int, degree: int) -> list[int]:
    """The partitions a task or poll visits from `number` up to the root, both ends included."""
    path = [number]
    while path[-1] > 0:
        path.append(parent_partition(path[-1], degree))
    return path
