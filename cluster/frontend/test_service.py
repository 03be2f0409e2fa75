"""`temporal.api.testservice.v1.TestService`: the time-skipping control the SDKs' test environments call.

Served on the frontend port of a time-skipping server only (start-dev --time-skipping and the embedded
server of hourglass.sdk.testing), never on a cluster node; behind the frontend's authorizer like every
other service. Semantics are the SDKs' test server's (sdk-java TestService): locks are counted, Sleep
waits for virtual time without unlocking, UnlockTimeSkippingWithSleep unlocks, waits, and is locked again
the moment its deadline is reached.
"""

from __future__ import annotations

import grpc
from google.protobuf.empty_pb2 import Empty
from temporalio.api.testservice.v1 import (
    GetCurrentTimeResponse,
    LockTimeSkippingRequest,
    LockTimeSkippingResponse,
    SleepRequest,
    SleepResponse,
    SleepUntilRequest,
    UnlockTimeSkippingRequest,
    UnlockTimeSkippingResponse,
)
from temporalio.api.testservice.v1.service_pb2_grpc import TestServiceServicer

from hourglass.cluster.history.timeutil import duration_ms, timestamp_ms, to_timestamp
from hourglass.cluster.history.virtual_clock import NotLockedError, VirtualClock


class TimeSkippingService(TestServiceServicer):
    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock

    async def LockTimeSkipping(
        self, request: LockTimeSkippingRequest, context: grpc.aio.ServicerContext
    ) -> LockTimeSkippingResponse:
        self.clock.lock()
        return LockTimeSkippingResponse()

    async def UnlockTimeSkipping(
        self, request: UnlockTimeSkippingRequest, context: grpc.aio.ServicerContext
    ) -> UnlockTimeSkippingResponse:
        try:
            self.clock.unlock()
        except NotLockedError as e:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
        return UnlockTimeSkippingResponse()

    async def Sleep(self, request: SleepRequest, context: grpc.aio.ServicerContext) -> SleepResponse:
        await self.clock.sleep_until(self.clock.now_ms() + await _duration(request, context))
        return SleepResponse()

    async def SleepUntil(
        self, request: SleepUntilRequest, context: grpc.aio.ServicerContext
    ) -> SleepResponse:
        if not request.HasField("timestamp"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "SleepUntil needs a timestamp")
        await self.clock.sleep_until(timestamp_ms(request.timestamp))
        return SleepResponse()

    async def UnlockTimeSkippingWithSleep(
        self, request: SleepRequest, context: grpc.aio.ServicerContext
    ) -> SleepResponse:
        ms = await _duration(request, context)
        if self.clock.lock_count == 0:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "time skipping is not locked: UnlockTimeSkippingWithSleep must follow a LockTimeSkipping",
            )
        relocked = False

        def relock() -> None:
            nonlocal relocked
            relocked = True
            self.clock.lock()

        sleep = self.clock.sleep_until(self.clock.now_ms() + ms, then=relock)
        self.clock.unlock()
        try:
            await sleep
        finally:
            if not relocked:  # the caller went away: leave the lock count as it found it
                self.clock.lock()
        return SleepResponse()

    async def GetCurrentTime(
        self, request: Empty, context: grpc.aio.ServicerContext
    ) -> GetCurrentTimeResponse:
        return GetCurrentTimeResponse(time=to_timestamp(self.clock.now_ms()))


async def _duration(request: SleepRequest, context: grpc.aio.ServicerContext) -> int:
    d = request.duration
    if d.seconds < 0 or d.nanos < 0:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "sleep duration must not be negative")
    return duration_ms(d)
