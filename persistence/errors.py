"""Errors a store raises. Each says which condition failed, because the caller reacts differently."""

from __future__ import annotations


class PersistenceError(Exception):
    """Base class for store errors."""


class StoreUnavailableError(PersistenceError):
    """The database could not be reached or timed out. For a conditional write the outcome is unknown."""


class UnencodableWriteError(PersistenceError):
    """A value of the write cannot be stored (an integer beyond 64 bits, a time past year 9999). Nothing
    was written: it comes from a client's request, so it is the client's error and fences no shard."""


class ShardOwnershipLostError(PersistenceError):
    """The shard's range id moved: another owner took the shard. Stop writing it."""

    def __init__(self, shard_id: int, expected_range_id: int, actual_range_id: int | None) -> None:
        super().__init__(
            f"shard {shard_id} ownership lost: expected range_id {expected_range_id}, found {actual_range_id}"
        )
        self.shard_id = shard_id
        self.expected_range_id = expected_range_id
        self.actual_range_id = actual_range_id


class ConditionFailedError(PersistenceError):
    """A conditional batch was not applied because of per-execution conditions (not shard ownership).

    `failures` maps the index of each rejected write in the batch to a reason; writes whose index is
    absent were not at fault and may be retried alone. Nothing of the batch was applied.
    """

    VERSION_MISMATCH = "version_mismatch"
    ALREADY_EXISTS = "already_exists"
    CURRENT_RUN_MISMATCH = "current_run_mismatch"

    def __init__(self, failures: dict[int, str], detail: str = "") -> None:
        super().__init__(f"conditional write rejected: {failures} {detail}".strip())
        self.failures = failures


class TaskQueueLeaseLostError(PersistenceError):
    """A task-queue partition's range id moved: another matching owner leased it."""


class NamespaceAlreadyExistsError(PersistenceError):
    pass


class NamespaceNotFoundError(PersistenceError):
    pass


class ClusterMetadataMismatchError(PersistenceError):
    """The store was created with a different shard count than the node is configured with."""
