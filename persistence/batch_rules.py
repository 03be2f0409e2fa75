"""Rules of a commit batch that belong to the store interface, not to a backend.

Every store applies them, so all backends reject exactly the same batches (see Store.commit).
"""

from __future__ import annotations

from collections.abc import Sequence

from hourglass.persistence.errors import ConditionFailedError
from hourglass.persistence.records import CurrentRunMode, ExecutionKey, ExecutionWrite


def check_batch_is_well_formed(writes: Sequence[ExecutionWrite]) -> None:
    """A current-run pointer always describes the run its write commits; anything else is a caller bug."""
    for index, write in enumerate(writes):
        if write.current_run is not None:
            pointer = write.current_run.record
            if ExecutionKey(pointer.namespace_id, pointer.workflow_id, pointer.run_id) != write.record.key:
                raise ValueError(
                    f"write {index}: current-run record names a different run than the execution"
                )
            if write.current_run.mode is CurrentRunMode.REPLACE and write.current_run.previous_run_id is None:
                raise ValueError(f"write {index}: REPLACE needs previous_run_id")


def repeated_target_failure(
    write: ExecutionWrite, seen_runs: set[ExecutionKey], seen_pointers: set[tuple[str, str]]
) -> str | None:
    """A batch may touch each execution row and each current-run pointer once.

    Conditions are checked against the state before the batch, so two writes of the same row would both
    pass and the later would silently overwrite the earlier (two starts of one workflow id folded into one
    group commit would both "succeed"). The later one fails with the reason it would get had the earlier
    been applied first.
    """
    reason = None
    key = write.record.key
    if key in seen_runs:
        reason = (
            ConditionFailedError.ALREADY_EXISTS
            if write.expected_version is None
            else ConditionFailedError.VERSION_MISMATCH
        )
    seen_runs.add(key)
    if write.current_run is not None:
        pointer = (key.namespace_id, key.workflow_id)
        if pointer in seen_pointers and reason is None:
            reason = (
                ConditionFailedError.ALREADY_EXISTS
                if write.current_run.mode is CurrentRunMode.CREATE
                else ConditionFailedError.CURRENT_RUN_MISMATCH
            )
        seen_pointers.add(pointer)
    return reason
