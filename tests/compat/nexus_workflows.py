"""A Nexus service, its handler and a caller workflow for tests/compat/test_nexus.py (a module of its own:
the workflow sandbox imports workflows from a module, with nexusrpc passed through)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import nexusrpc
import nexusrpc.handler
from temporalio import nexus, workflow
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError


@workflow.defn
class GreetingWorkflow:
    """The workflow behind the asynchronous operations: it greets, or fails."""

    @workflow.run
    async def run(self, name: str) -> str:
        if name.startswith("wait"):
            await workflow.sleep(3600)
        if name.startswith("fail"):
            raise ApplicationError(f"cannot greet {name}", type="Refused", non_retryable=True)
        await workflow.sleep(0.5)
        return f"Hello from a workflow, {name}!"


@workflow.defn
class SharedWorkflow:
    """One workflow several operations attach to (USE_EXISTING): it ends when told to."""

    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self, name: str) -> str:
        await workflow.wait_condition(lambda: self.done)
        return f"Hello to all, {name}!"

    @workflow.signal
    def finish(self) -> None:
        self.done = True


@workflow.defn
class SignalTarget:
    """A workflow a Nexus handler signals: it ends with the signal's text."""

    def __init__(self) -> None:
        self.received: list[str] = []

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: bool(self.received))
        return self.received[0]

    @workflow.signal
    def ping(self, text: str) -> None:
        self.received.append(text)


# The headers each cancel request reached the handler with (RecordedCancel.cancel), by operation token.
CANCEL_HEADERS: dict[str, dict[str, str]] = {}


class RecordedCancel(nexusrpc.handler.OperationHandler[str, str]):
    """An asynchronous operation that never completes by itself; its cancel requests are recorded."""

    async def start(
        self, ctx: nexusrpc.handler.StartOperationContext, input: str
    ) -> nexusrpc.handler.StartOperationResultAsync:
        return nexusrpc.handler.StartOperationResultAsync(token=f"recorded-{input}")

    async def cancel(self, ctx: nexusrpc.handler.CancelOperationContext, token: str) -> None:
        CANCEL_HEADERS[token] = dict(ctx.headers)


@nexusrpc.service
class GreetingService:
    greet: nexusrpc.Operation[str, str]
    refuse: nexusrpc.Operation[str, str]
    bad_request: nexusrpc.Operation[str, str]
    never_answer: nexusrpc.Operation[str, str]
    greet_in_workflow: nexusrpc.Operation[str, str]
    fail_in_workflow: nexusrpc.Operation[str, str]
    wait_in_workflow: nexusrpc.Operation[str, str]
    join_shared: nexusrpc.Operation[str, str]
    signal_target: nexusrpc.Operation[str, str]
    recorded_cancel: nexusrpc.Operation[str, str]


@nexusrpc.handler.service_handler(service=GreetingService)
class GreetingHandler:
    @nexusrpc.handler.sync_operation
    async def greet(self, ctx: nexusrpc.handler.StartOperationContext, name: str) -> str:
        return f"Hello, {name}!"

    @nexusrpc.handler.sync_operation
    async def refuse(self, ctx: nexusrpc.handler.StartOperationContext, name: str) -> str:
        raise nexusrpc.OperationError(f"no greeting for {name}", state=nexusrpc.OperationErrorState.FAILED)

    @nexusrpc.handler.sync_operation
    async def bad_request(self, ctx: nexusrpc.handler.StartOperationContext, name: str) -> str:
        raise nexusrpc.HandlerError(f"cannot greet {name}", type=nexusrpc.HandlerErrorType.BAD_REQUEST)

    @nexusrpc.handler.sync_operation
    async def never_answer(self, ctx: nexusrpc.handler.StartOperationContext, name: str) -> str:
        await asyncio.sleep(3600)
        return "too late"

    @nexus.workflow_run_operation
    async def greet_in_workflow(
        self, ctx: nexus.WorkflowRunOperationContext, name: str
    ) -> nexus.WorkflowHandle[str]:
        return await ctx.start_workflow(GreetingWorkflow.run, name, id=f"greeting-{ctx.request_id}")

    @nexus.workflow_run_operation
    async def fail_in_workflow(
        self, ctx: nexus.WorkflowRunOperationContext, name: str
    ) -> nexus.WorkflowHandle[str]:
        return await ctx.start_workflow(GreetingWorkflow.run, f"fail-{name}", id=f"greeting-{ctx.request_id}")

    @nexus.workflow_run_operation
    async def wait_in_workflow(
        self, ctx: nexus.WorkflowRunOperationContext, name: str
    ) -> nexus.WorkflowHandle[str]:
        return await ctx.start_workflow(GreetingWorkflow.run, f"wait-{name}", id=f"greeting-{ctx.request_id}")

    @nexus.workflow_run_operation
    async def join_shared(
        self, ctx: nexus.WorkflowRunOperationContext, name: str
    ) -> nexus.WorkflowHandle[str]:
        """Every call with the same name is backed by the one workflow `shared-<name>`."""
        return await ctx.start_workflow(
            SharedWorkflow.run,
            name,
            id=f"shared-{name}",
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )

    @nexusrpc.handler.operation_handler
    def recorded_cancel(self) -> nexusrpc.handler.OperationHandler[str, str]:
        return RecordedCancel()

    @nexusrpc.handler.sync_operation
    async def signal_target(self, ctx: nexusrpc.handler.StartOperationContext, workflow_id: str) -> str:
        """Signal the workflow `workflow_id` (the caller's link travels with the signal)."""
        await nexus.client().get_workflow_handle(workflow_id).signal(SignalTarget.ping, "from Nexus")
        return "signaled"


@workflow.defn
class NexusCaller:
    """Calls one operation of GreetingService and returns what the workflow saw: the result, or the
    failure's chain (the NexusOperationError and its cause)."""

    @workflow.run
    async def run(self, endpoint: str, operation: str, timeout_s: float) -> str:
        client = workflow.create_nexus_client(endpoint=endpoint, service=GreetingService)
        timeout = timedelta(seconds=timeout_s) if timeout_s else None
        try:
            if operation.startswith("cancel:"):
                # Start the operation, cancel it once it started, and wait as the cancellation type says.
                _, cancellation, operation = operation.split(":")
                handle = await client.start_operation(
                    operation,
                    "Nexus",
                    cancellation_type=workflow.NexusOperationCancellationType[cancellation],
                )
                handle.cancel()
                return await handle
            if ":" in operation:  # operation:input
                operation, given = operation.split(":", 1)
                return await client.execute_operation(operation, given, schedule_to_close_timeout=timeout)
            return await client.execute_operation(operation, "Nexus", schedule_to_close_timeout=timeout)
        except Exception as e:
            return f"{type(e).__name__}: {e} <- {type(e.__cause__).__name__}: {e.__cause__}"


@workflow.defn
class SharedCalls:
    """Starts `count` join_shared operations with one name (all backed by one workflow), then waits for
    them all."""

    @workflow.run
    async def run(self, endpoint: str, name: str, count: int) -> list[str]:
        client = workflow.create_nexus_client(endpoint=endpoint, service=GreetingService)
        handles = []
        for _ in range(count):
            handles.append(await client.start_operation(GreetingService.join_shared, name))
        return list(await asyncio.gather(*handles))


@workflow.defn
class CancelWithHeaders:
    """Starts recorded_cancel with Nexus headers, cancels it and waits until the handler got the request."""

    @workflow.run
    async def run(self, endpoint: str, name: str) -> str:
        client = workflow.create_nexus_client(endpoint=endpoint, service=GreetingService)
        handle = await client.start_operation(
            GreetingService.recorded_cancel,
            name,
            headers={"x-caller-header": f"for {name}"},
            cancellation_type=workflow.NexusOperationCancellationType.WAIT_REQUESTED,
        )
        handle.cancel()
        try:
            await handle
        except Exception as e:
            return type(e).__name__
        return "completed"


@workflow.defn
class SignalWithStartCaller:
    """Signal-with-starts SignalTarget `target_id` (the SDK sends it to the server's own Nexus endpoint)."""

    @workflow.run
    async def run(self, target_id: str, task_queue: str) -> str:
        handle = await workflow.signal_with_start_workflow(
            SignalTarget.run,
            id=target_id,
            task_queue=task_queue,
            signal=SignalTarget.ping,
            signal_args=["from a workflow"],
        )
        return handle.id


@workflow.defn
class ManyNexusCalls:
    """Calls `count` operations at once: one workflow task schedules them all."""

    @workflow.run
    async def run(self, endpoint: str, count: int) -> list[str]:
        client = workflow.create_nexus_client(endpoint=endpoint, service=GreetingService)
        return list(
            await asyncio.gather(
                *(client.execute_operation(GreetingService.greet, f"#{i}") for i in range(count))
            )
        )
