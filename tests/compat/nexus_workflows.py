"""A Nexus service, its handler and a caller workflow for tests/compat/test_nexus.py (a module of its own:
the workflow sandbox imports workflows from a module, with nexusrpc passed through)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import nexusrpc
import nexusrpc.handler
from temporalio import nexus, workflow
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


@nexusrpc.service
class GreetingService:
    greet: nexusrpc.Operation[str, str]
    refuse: nexusrpc.Operation[str, str]
    bad_request: nexusrpc.Operation[str, str]
    never_answer: nexusrpc.Operation[str, str]
    greet_in_workflow: nexusrpc.Operation[str, str]
    fail_in_workflow: nexusrpc.Operation[str, str]
    wait_in_workflow: nexusrpc.Operation[str, str]


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
            return await client.execute_operation(operation, "Nexus", schedule_to_close_timeout=timeout)
        except Exception as e:
            return f"{type(e).__name__}: {e} <- {type(e.__cause__).__name__}: {e.__cause__}"


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
