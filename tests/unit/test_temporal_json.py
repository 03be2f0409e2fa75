"""The HTTP API's JSON (cluster/httpapi/temporal_json.py) against bytes the reference server wrote and
stored for the same requests (temporal server start-dev 1.32, captured with curl and the SDK)."""

from __future__ import annotations

import json

import pytest
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import TaskQueueKind, WorkflowIdReusePolicy
from temporalio.api.history.v1 import WorkflowExecutionStartedEventAttributes
from temporalio.api.workflowservice.v1 import (
    GetWorkflowExecutionHistoryRequest,
    StartWorkflowExecutionRequest,
)

from hourglass.cluster.httpapi.temporal_json import JSONInputError, format_number, from_json, to_json

# A start request's `input` as sent to the reference, what it stored, and what its HTTP API wrote back.
SENT = (
    '{"workflowType":{"name":"MyWf"},"taskQueue":{"name":"tq"},"input":[{"z":{"b":{"c":null}},'
    '"a":[null,[1,2e30,1e-7,0.1,-0.0],{"x":true}],"s":"é<>&\\u2028\\n\\u0001"},1.0,100,"x"]}'
)
STORED = [
    b'{"a":[null,[1,2e+30,1e-7,0.1,0],{"x":true}],"s":"\xc3\xa9\\u003c\\u003e\\u0026\\u2028\\n\\u0001",'
    b'"z":{"b":{"c":null}}}',
    b"1",
    b"100",
    b'"x"',
]
WRITTEN = (
    '"input":[{"a":[null,[1,2e+30,1e-7,0.1,0],{"x":true}],"s":"é<>&\u2028\\n\\u0001","z":{"b":{"c":null}}},'
    '1,100,"x"]'
)


def test_shorthand_payloads_are_stored_as_the_reference_stores_them() -> None:
    request = from_json(SENT, StartWorkflowExecutionRequest)
    assert [p.data for p in request.input.payloads] == STORED
    assert all(dict(p.metadata) == {"encoding": b"json/plain"} for p in request.input.payloads)


def test_shorthand_payloads_are_written_as_the_reference_writes_them() -> None:
    attributes = WorkflowExecutionStartedEventAttributes(
        input=Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=d) for d in STORED])
    )
    assert to_json(attributes) == "{" + WRITTEN + "}"


def test_null_large_integers_and_empty_lists() -> None:
    request = from_json('{"input":[null, 12345678901234567890]}', StartWorkflowExecutionRequest)
    assert dict(request.input.payloads[0].metadata) == {"encoding": b"binary/null"}
    assert request.input.payloads[1].data == b"12345678901234567000"  # a float64 in Go
    attributes = WorkflowExecutionStartedEventAttributes(input=request.input)
    assert to_json(attributes) == (
        '{"input":[{"metadata":{"encoding":"YmluYXJ5L251bGw="}},12345678901234567000]}'
    )
    # Stored exactly, written back as the reference writes them (it reads numbers as float64s).
    exact = from_json('{"input":[9223372036854775807, 9007199254740993]}', StartWorkflowExecutionRequest)
    assert [p.data for p in exact.input.payloads] == [b"9223372036854775807", b"9007199254740993"]
    written = to_json(WorkflowExecutionStartedEventAttributes(input=exact.input))
    assert written == '{"input":[9223372036854776000,9007199254740992]}'
    empty = WorkflowExecutionStartedEventAttributes(input=Payloads())
    assert to_json(empty) == '{"input":[]}'


def test_payloads_without_a_shorthand_keep_the_full_form() -> None:
    binary = Payload(metadata={"encoding": b"binary/plain"}, data=b"hi")
    tagged = Payload(metadata={"encoding": b"json/plain", "type": b"Keyword"}, data=b'"k"')
    attributes = WorkflowExecutionStartedEventAttributes(
        input=Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=b"1"), binary])
    )
    attributes.header.fields["h"].CopyFrom(tagged)
    # As the reference writes them: the list is not shorthand, its shorthand-able payloads still are.
    assert to_json(attributes) == (
        '{"input":{"payloads":[1,{"metadata":{"encoding":"YmluYXJ5L3BsYWlu"},"data":"aGk="}]},'
        '"header":{"fields":{"h":{"metadata":{"encoding":"anNvbi9wbGFpbg==","type":"S2V5d29yZA=="},'
        '"data":"Imsi"}}}}'
    )
    # ...and a full payload is read back as itself, not as a JSON object.
    again = from_json(to_json(attributes), WorkflowExecutionStartedEventAttributes)
    assert again == attributes


def test_proto_json_payloads_carry_their_message_type() -> None:
    request = from_json(
        '{"input":[{"_protoMessageType":"temporal.api.common.v1.WorkflowType","name":"x"}]}',
        StartWorkflowExecutionRequest,
    )
    payload = request.input.payloads[0]
    assert dict(payload.metadata) == {
        "encoding": b"json/protobuf",
        "messageType": b"temporal.api.common.v1.WorkflowType",
    }
    assert payload.data == b'{"name":"x"}'
    written = to_json(WorkflowExecutionStartedEventAttributes(input=request.input))
    assert written == '{"input":[{"_protoMessageType":"temporal.api.common.v1.WorkflowType","name":"x"}]}'


def test_no_payload_shorthand_reads_and_writes_the_plain_proto_json() -> None:
    attributes = WorkflowExecutionStartedEventAttributes(
        input=Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=b"1")])
    )
    assert to_json(attributes, shorthand=False) == (
        '{"input":{"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"MQ=="}]}}'
    )
    with pytest.raises(JSONInputError):
        from_json('{"input":[1]}', StartWorkflowExecutionRequest, shorthand=False)


def test_enums_by_full_short_or_number_and_fields_by_either_name() -> None:
    request = from_json(
        '{"task_queue":{"name":"tq","kind":"Normal"},"workflowIdReusePolicy":"AllowDuplicate",'
        '"workflowIdConflictPolicy":2}',
        StartWorkflowExecutionRequest,
    )
    assert request.task_queue.kind == TaskQueueKind.TASK_QUEUE_KIND_NORMAL
    assert request.workflow_id_reuse_policy == WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
    assert request.workflow_id_conflict_policy == 2
    # Written by full name, fields in declaration order, 64-bit integers as strings.
    history = GetWorkflowExecutionHistoryRequest(namespace="n", maximum_page_size=5, wait_new_event=True)
    assert to_json(history) == '{"namespace":"n","maximumPageSize":5,"waitNewEvent":true}'


@pytest.mark.parametrize(
    "text",
    ['{"workflowType": 1}', '{"noSuchField": 1}', '{"taskQueue": {"kind": "NoSuchKind"}}', "[1", '"x"'],
)
def test_bad_input_names_the_problem(text: str) -> None:
    with pytest.raises(JSONInputError) as error:
        from_json(text, StartWorkflowExecutionRequest)
    assert str(error.value)
    if "noSuchField" in text:
        assert 'unknown field "noSuchField"' in str(error.value)


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1"), (1.5, "1.5"), (0.1, "0.1"), (2e30, "2e+30"), (1e-7, "1e-7"), (-0.0, "0"), (1e21, "1e+21"),
     (123456789.125, "123456789.125"), (1.2345678901234567e19, "12345678901234567000"), (-2.5e-8, "-2.5e-8")],
)  # fmt: skip
def test_numbers_in_gos_form(value: float, text: str) -> None:
    assert format_number(value) == text


def test_pretty_indents_as_the_reference() -> None:
    history = GetWorkflowExecutionHistoryRequest(namespace="n")
    history.execution.workflow_id = "w"
    assert (
        to_json(history, indent=2)
        == '{\n  "namespace": "n",\n  "execution": {\n    "workflowId": "w"\n  }\n}'
    )


@pytest.mark.parametrize(
    "data",
    [
        b'{"b":"<&>\\u2028x\\n\\u0001\\"q\\\\","a":[1,-5,null,true,{"d":1,"c":"\xc3\xa9"}],"max":9223372036854775807}',
        b'[{"z":1,"y":[]},{},"",0]',
        b'{"over":9223372036854775808,"f":2.50}',  # beyond int64, and a float: Go's float64 form
    ],
)
def test_every_json_value_is_written_as_go_writes_it(data: bytes) -> None:
    """Values without floats take a path in C; both paths must write what Go writes."""
    from hourglass.cluster.httpapi.temporal_json import _go_value, dumps

    attributes = WorkflowExecutionStartedEventAttributes(
        input=Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=data)])
    )
    expected = "{" + '"input":[' + dumps(_go_value(json.loads(data))) + "]}"
    assert to_json(attributes) == expected
    assert "9223372036854775" not in expected  # Go reads numbers as float64s: these are rounded
