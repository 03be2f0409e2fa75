"""The TemporalPauseInfo search attribute, as the reference keeps it: a KeywordList naming what is paused
in the run ("Workflow:<id>" and "Reason:<reason>" while the workflow is paused, "property:activityType=<type>"
per type of paused activity), so lists can find paused runs (`TemporalPauseInfo = 'Workflow:<id>'`).

Recomputed whenever the workflow or one of its activities is paused or unpaused (not when a paused
activity closes: the reference keeps the entry then too); removed once nothing is paused.
"""

from __future__ import annotations

import json

from temporalio.api.common.v1 import Payload, SearchAttributes

from hourglass.cluster.history.mutable_state import MutableState
from hourglass.cluster.history.tasks import TransferKind

NAME = "TemporalPauseInfo"


def entries(ms: MutableState) -> list[str]:
    out: list[str] = []
    pause = ms.info.pause
    if pause is not None:
        out.append(f"Workflow:{ms.info.workflow_id}")
        if pause.reason:
            out.append(f"Reason:{pause.reason}")
    types = sorted({ai.activity_type for ai in ms.activities.values() if ai.paused})
    out.extend(f"property:activityType={t}" for t in types)
    return out


def refresh(ms: MutableState, tr) -> None:
    """Bring the attribute in line with what is paused now; visibility is told when it changes."""
    values = entries(ms)
    fields = ms.info.search_attributes.indexed_fields if ms.info.search_attributes is not None else None
    if not values:
        if fields is not None and NAME in fields:
            del fields[NAME]
            tr.transfer(TransferKind.VISIBILITY)
        return
    payload = Payload(
        metadata={"encoding": b"json/plain", "type": b"KeywordList"},
        data=json.dumps(values, separators=(",", ":"), ensure_ascii=False).encode(),
    )
    if fields is not None and NAME in fields and fields[NAME] == payload:
        return
    if ms.info.search_attributes is None:
        ms.info.search_attributes = SearchAttributes()
    ms.info.search_attributes.indexed_fields[NAME].CopyFrom(payload)
    tr.transfer(TransferKind.VISIBILITY)
