"""The fuzzer's target: one fresh `hourglass server start-dev` per session, seeded so requests reach deep code.

`HOURGLASS_FUZZ_TARGET=reference` runs the same fuzzer against the reference `temporal server start-dev`
(how a finding is checked against what the reference answers). Hypothesis profiles: `ci` (the default:
derandomized, bounded, no example database, so `make test` is reproducible and takes ~3 minutes) and `dev`
(`HYPOTHESIS_PROFILE=dev`: many more random examples, for a longer local hunt).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from temporalio.api.command.v1 import Command, ScheduleActivityTaskCommandAttributes
from temporalio.api.common.v1 import (
    ActivityType,
    Payload,
    Payloads,
    SearchAttributes,
    WorkflowExecution,
    WorkflowType,
)
from temporalio.api.enums.v1 import CommandType
from temporalio.api.schedule.v1 import Schedule, ScheduleAction, ScheduleSpec, ScheduleState
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflow.v1 import NewWorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.api.workflowservice.v1.service_pb2_grpc import WorkflowServiceStub

from tests.compat import servers

from .strategies import RequestStrategies

settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("HOURGLASS_FUZZ_EXAMPLES", "200")),
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)
settings.register_profile(
    "dev",
    max_examples=int(os.environ.get("HOURGLASS_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)
# Applied to the fuzz tests only (not loaded globally): other suites' hypothesis tests keep their settings.
FUZZ_SETTINGS = settings.get_profile(
    "dev" if os.environ.get("HYPOTHESIS_PROFILE", "ci").strip().lower() == "dev" else "ci"
)

NAMESPACE = "default"
# A namespace of its own for the RPCs that change or retire a namespace: the liveness checks need `default`.
SPARE_NAMESPACE = "fuzz-ns"
NAMESPACE_CHANGING = ("UpdateNamespaceRequest", "DeprecateNamespaceRequest", "DeleteNamespaceRequest")
TASK_QUEUE = "fuzz-tq"
ACTIVITY_QUEUE = "fuzz-atq"
SEED_CALL_S = 10.0


@dataclass
class FuzzTarget:
    """The server under test and what the seeding left on it."""

    kind: str
    address: str
    log_file: Path
    channel: grpc.Channel
    strategies: RequestStrategies
    probe_file: Path
    known: dict[str, list] = field(default_factory=dict)
    # (method, start, end) of each method's batch, on the probe's clock (time.monotonic): who slowed it.
    windows: list[tuple[str, float, float]] = field(default_factory=list)

    def log_size(self) -> int:
        return self.log_file.stat().st_size if self.log_file.exists() else 0

    def log_since(self, offset: int) -> str:
        with open(self.log_file, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")


def _payloads(*values: bytes) -> Payloads:
    return Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=v) for v in values])


def seed(channel: grpc.Channel) -> dict[str, list]:
    """Workflows, a started workflow task, a started activity and a schedule: their ids and tokens."""
    stub = WorkflowServiceStub(channel)
    t = SEED_CALL_S
    stub.RegisterNamespace(
        rr.RegisterNamespaceRequest(
            namespace=SPARE_NAMESPACE, workflow_execution_retention_period=Duration(seconds=86400)
        ),
        timeout=t,
    )
    runs = []
    for i in range(3):
        resp = stub.StartWorkflowExecution(
            rr.StartWorkflowExecutionRequest(
                namespace=NAMESPACE,
                workflow_id=f"fuzz-wf-{i}",
                workflow_type=WorkflowType(name="FuzzWorkflow"),
                task_queue=TaskQueue(name=TASK_QUEUE),
                input=_payloads(b'"seed"'),
                request_id=str(uuid.uuid4()),
            ),
            timeout=t,
        )
        runs.append(WorkflowExecution(workflow_id=f"fuzz-wf-{i}", run_id=resp.run_id))
    poll = rr.PollWorkflowTaskQueueRequest(namespace=NAMESPACE, task_queue=TaskQueue(name=TASK_QUEUE))
    first = stub.PollWorkflowTaskQueue(poll, timeout=t)
    # The first workflow schedules an activity, which is then started: a real activity task token.
    stub.RespondWorkflowTaskCompleted(
        rr.RespondWorkflowTaskCompletedRequest(
            namespace=NAMESPACE,
            task_token=first.task_token,
            commands=[
                Command(
                    command_type=CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
                    schedule_activity_task_command_attributes=ScheduleActivityTaskCommandAttributes(
                        activity_id="fuzz-act",
                        activity_type=ActivityType(name="FuzzActivity"),
                        task_queue=TaskQueue(name=ACTIVITY_QUEUE),
                        start_to_close_timeout=Duration(seconds=3600),
                    ),
                )
            ],
        ),
        timeout=t,
    )
    activity = stub.PollActivityTaskQueue(
        rr.PollActivityTaskQueueRequest(namespace=NAMESPACE, task_queue=TaskQueue(name=ACTIVITY_QUEUE)),
        timeout=t,
    )
    # The other two keep a started workflow task each: tokens a fuzzed Respond* can complete or fail.
    tokens = [stub.PollWorkflowTaskQueue(poll, timeout=t).task_token for _ in range(2)]
    stub.CreateSchedule(
        rr.CreateScheduleRequest(
            namespace=NAMESPACE,
            schedule_id="fuzz-schedule",
            schedule=Schedule(
                spec=ScheduleSpec(cron_string=["0 0 1 1 *"]),
                action=ScheduleAction(
                    start_workflow=NewWorkflowExecutionInfo(
                        workflow_id="fuzz-scheduled",
                        workflow_type=WorkflowType(name="FuzzWorkflow"),
                        task_queue=TaskQueue(name=TASK_QUEUE),
                    )
                ),
                state=ScheduleState(paused=True),
            ),
            request_id=str(uuid.uuid4()),
        ),
        timeout=t,
    )
    ids = [r.workflow_id for r in runs]
    run_ids = [r.run_id for r in runs]
    json_x = Payload(metadata={"encoding": b"json/plain"}, data=b'"x"')
    return {
        "namespace": [NAMESPACE],
        "workflow_id": [*ids, st.uuids().map(lambda u: f"fuzz-new-{u}")],
        "run_id": run_ids,
        "first_execution_run_id": run_ids,
        "workflow_execution": [*runs, WorkflowExecution(workflow_id=ids[0])],
        "execution": [*runs, WorkflowExecution(workflow_id=ids[1])],
        "task_queue": [
            TASK_QUEUE,
            ACTIVITY_QUEUE,
            TaskQueue(name=TASK_QUEUE),
            TaskQueue(name=ACTIVITY_QUEUE),
        ],
        "workflow_type": [WorkflowType(name="FuzzWorkflow")],
        "activity_type": [ActivityType(name="FuzzActivity")],
        "task_token": [activity.task_token, *tokens],
        "activity_id": ["fuzz-act"],
        "schedule_id": ["fuzz-schedule"],
        "update_id": ["fuzz-update"],
        "identity": ["fuzz"],
        "request_id": [str(uuid.UUID(int=1))],
        "input": [_payloads(b'"x"'), _payloads()],
        "details": [_payloads(b'"x"')],
        "result": [_payloads(b'"x"')],
        "search_attributes": [
            SearchAttributes(indexed_fields={"CustomKeywordField": json_x}),
            SearchAttributes(
                indexed_fields={
                    "CustomIntField": Payload(
                        metadata={"encoding": b"json/plain"}, data=b"9223372036854775808"
                    )
                }
            ),
        ],
        "query": [
            "WorkflowId = 'fuzz-wf-0'",
            "ExecutionStatus = 'Running' ORDER BY StartTime DESC",
            "WorkflowType = 'FuzzWorkflow' AND StartTime > '0001-01-01T00:00:00Z'",
            "HistoryLength > 100000000000000000000000000",
            "CustomIntField = 9223372036854775808",
            "WorkflowId IN (" + ", ".join(f"'w{i}'" for i in range(2000)) + ")",
            "NOT (" * 60 + "WorkflowId = 'x'" + ")" * 60,
            "((((",
        ],
        "cron_schedule": ["* * * * *", "0 0 31 2 *", "@every 1h", "61 * * * *"],
        "cron_string": ["0 0 31 2 *", "@daily", "bad cron"],
        "signal_name": ["fuzz-signal"],
        "update_name": ["fuzz-update"],
    }


def _start_server(kind: str, workdir: Path) -> servers.ServerProcess:
    srv = (
        servers.reference_server(workdir) if kind == servers.REFERENCE else servers.hourglass_server(workdir)
    )
    asyncio.run(srv.start())
    return srv


@pytest.fixture(scope="session")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    kind = os.environ.get("HOURGLASS_FUZZ_TARGET", servers.HOURGLASS).strip().lower() or servers.HOURGLASS
    if kind not in (servers.HOURGLASS, servers.REFERENCE):
        raise ValueError("HOURGLASS_FUZZ_TARGET must be 'hourglass' or 'reference'")
    workdir = tmp_path_factory.mktemp(f"fuzz-{kind}")
    srv = _start_server(kind, workdir)
    channel = grpc.insecure_channel(srv.address)
    probe_file = workdir / "probe.txt"
    probe = control = None
    try:
        known = seed(channel)
        spare = {"namespace": [SPARE_NAMESPACE]}
        overrides = {
            f"temporal.api.{svc}.v1.{name}": spare
            for svc in ("workflowservice", "operatorservice")
            for name in NAMESPACE_CHANGING
        }
        script = str(Path(__file__).with_name("probe.py"))
        control_port = servers.free_port()
        control = subprocess.Popen(
            [sys.executable, script, "--serve-control", str(control_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        grpc.channel_ready_future(grpc.insecure_channel(f"127.0.0.1:{control_port}")).result(timeout=30)
        with open(probe_file, "wb") as out:
            probe = subprocess.Popen(
                [sys.executable, script, srv.address, "--control", f"127.0.0.1:{control_port}"],
                stdout=out,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
            )
        yield FuzzTarget(
            kind, srv.address, srv.log_file, channel, RequestStrategies(known, overrides), probe_file, known
        )
    finally:
        for process in (probe, control):
            if process is not None:
                process.kill()
                process.wait(timeout=10)
        channel.close()
        srv.stop()
