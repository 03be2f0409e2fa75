"""The internal envelope: values and errors come back on the calling node exactly as they left."""

from __future__ import annotations

from temporalio.api.common.v1 import Payload, Payloads, WorkflowExecution
from temporalio.api.errordetails.v1 import WorkflowExecutionAlreadyStartedFailure

from hourglass.cluster import errors
from hourglass.cluster.history.engine import StartResult, TaskGone
from hourglass.cluster.history.mutable_state import ParentInfo
from hourglass.cluster.history.tokens import TaskToken
from hourglass.cluster.rpc import codec
from hourglass.cluster.rpc import internal_pb2 as pb

from .states import minimal_state


def _round_trip(value):
    return codec.decode(pb.Value.FromString(codec.encode(value).SerializeToString()))


def test_values_round_trip():
    execution = WorkflowExecution(workflow_id="w", run_id="r")
    payloads = Payloads(payloads=[Payload(data=b"x")])
    for value in (
        None,
        True,
        -3,
        2.5,
        "s",
        b"\x00\x01",
        execution,
        [execution, 1],
        ("sig", payloads, None),
        TaskToken("ns", "w", "r", 5, 1, activity_id="a"),
        ParentInfo("default", "ns", "pw", "pr", 7),
        StartResult("r", True),
    ):
        assert _round_trip(value) == value


def test_mutable_state_keeps_its_record_version():
    ms = minimal_state()
    ms.db_record_version = 42
    ms.next_event_id = 9
    back = _round_trip(ms)
    assert (back.db_record_version, back.next_event_id, back.info.workflow_id) == (42, 9, "w")


def test_errors_come_back_as_the_same_class_with_their_detail():
    e = errors.WorkflowAlreadyStarted("already", "req", "run")
    back = codec.decode_error(pb.Error.FromString(codec.encode_error(e).SerializeToString()))
    assert type(back) is errors.WorkflowAlreadyStarted
    assert back.code == e.code and back.message == "already"
    assert isinstance(back.detail, WorkflowExecutionAlreadyStartedFailure) and back.detail.run_id == "run"
    assert isinstance(codec.decode_error(codec.encode_error(errors.NotFound("gone"))), errors.NotFound)
    gone = codec.decode_error(codec.encode_error(TaskGone("another poll started the workflow task")))
    assert isinstance(gone, TaskGone) and str(gone) == "another poll started the workflow task"
    assert type(codec.decode_error(codec.encode_error(ValueError("x")))) is errors.Internal
