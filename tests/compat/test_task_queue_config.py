"""UpdateTaskQueueConfig (`temporal task-queue config set|get`) and ListTaskQueuePartitions, on Hourglass
and on the reference in the same run: what is stored and reported, the refusals, the queue rate limit
slowing dispatch; on Hourglass, the config survives kill -9.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import RateLimitSource, TaskQueueType
from temporalio.api.taskqueue.v1 import RateLimit, TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeTaskQueueRequest,
    ListTaskQueuePartitionsRequest,
    UpdateTaskQueueConfigRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from .conftest import ServerProcess
from .helpers import new_id

ACTIVITY = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
WORKFLOW = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
Update = UpdateTaskQueueConfigRequest.RateLimitUpdate
STARTS: dict[str, list[float]] = {}


@activity.defn
async def stamp(key: str) -> None:
    STARTS.setdefault(key, []).append(time.monotonic())


@workflow.defn(sandboxed=False)
class FanOut:
    @workflow.run
    async def run(self, key: str, n: int) -> None:
        await asyncio.gather(
            *(
                workflow.execute_activity(stamp, key, start_to_close_timeout=timedelta(seconds=60))
                for _ in range(n)
            )
        )


@pytest.fixture(params=["server", "reference"])
def target(
    request: pytest.FixtureRequest, server: ServerProcess, reference_server: ServerProcess
) -> ServerProcess:
    """The server under test, then the reference: every test here runs on both."""
    return server if request.param == "server" else reference_server


def _update(queue: str, **fields) -> UpdateTaskQueueConfigRequest:
    return UpdateTaskQueueConfigRequest(namespace="default", task_queue=queue, **fields)


async def _config(client: Client, queue: str, task_type: int = ACTIVITY):
    return await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace="default",
            task_queue=TaskQueue(name=queue),
            task_queue_type=task_type,
            report_config=True,
        )
    )


async def test_set_then_describe_reports_the_config(target: ServerProcess) -> None:
    client = await Client.connect(target.address)
    queue = new_id("tq-config")
    assert not (await _config(client, queue)).HasField("config")
    resp = await client.workflow_service.update_task_queue_config(
        _update(
            queue,
            task_queue_type=ACTIVITY,
            identity="operator-1",
            update_queue_rate_limit=Update(rate_limit=RateLimit(requests_per_second=4), reason="too fast"),
            set_fairness_weight_overrides={"gold": 2.0, "lead": 0.5},
        )
    )
    limit = resp.config.queue_rate_limit
    assert limit.rate_limit.requests_per_second == 4
    assert (limit.metadata.reason, limit.metadata.update_identity) == ("too fast", "operator-1")
    assert abs(limit.metadata.update_time.ToSeconds() - time.time()) < 60
    assert dict(resp.config.fairness_weight_overrides) == {"gold": 2.0, "lead": 0.5}
    # Unsetting: the limit goes, the reason and metadata of the change stay; overrides go one by one.
    resp = await client.workflow_service.update_task_queue_config(
        _update(
            queue,
            task_queue_type=ACTIVITY,
            update_queue_rate_limit=Update(reason="lifted"),
            unset_fairness_weight_overrides=["gold", "never-set"],
        )
    )
    assert not resp.config.queue_rate_limit.HasField("rate_limit")
    assert resp.config.queue_rate_limit.metadata.reason == "lifted"
    assert dict(resp.config.fairness_weight_overrides) == {"lead": 0.5}
    described = await _config(client, queue)
    assert described.config == resp.config
    # Only the activity queue of that name has a config.
    assert not (await _config(client, queue, WORKFLOW)).HasField("config")


async def test_effective_rate_limit_names_the_api_as_its_source(target: ServerProcess) -> None:
    client = await Client.connect(target.address)
    queue = new_id("tq-config")
    await client.workflow_service.update_task_queue_config(
        _update(
            queue,
            task_queue_type=ACTIVITY,
            update_queue_rate_limit=Update(rate_limit=RateLimit(requests_per_second=7)),
        )
    )
    effective = (await _config(client, queue)).effective_rate_limit
    assert (effective.requests_per_second, effective.rate_limit_source) == (
        7,
        RateLimitSource.RATE_LIMIT_SOURCE_API,
    )


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        (
            {
                "task_queue_type": WORKFLOW,
                "update_queue_rate_limit": Update(rate_limit=RateLimit(requests_per_second=1)),
            },
            "Setting rate limit on workflow task queues is not allowed.",
        ),
        (
            {
                "task_queue_type": WORKFLOW,
                "update_fairness_key_rate_limit_default": Update(rate_limit=RateLimit(requests_per_second=1)),
            },
            "Setting fairness key rate limit on workflow task queues is not allowed.",
        ),
        (
            {
                "task_queue_type": ACTIVITY,
                "update_queue_rate_limit": Update(rate_limit=RateLimit(requests_per_second=-1)),
            },
            "RequestsPerSecond for UpdateQueueRateLimit rate limit must be non-negative.",
        ),
        (
            {
                "task_queue_type": ACTIVITY,
                "update_fairness_key_rate_limit_default": Update(
                    rate_limit=RateLimit(requests_per_second=-2)
                ),
            },
            "RequestsPerSecond for UpdateFairnessKeyRateLimitDefault rate limit must be non-negative.",
        ),
        (
            {"task_queue_type": ACTIVITY, "set_fairness_weight_overrides": {"b": 0.0}},
            'invalid fairness weight weight for key "b": must be greater than zero',
        ),
    ],
)
async def test_refusals(target: ServerProcess, request_fields: dict, message: str) -> None:
    client = await Client.connect(target.address)
    with pytest.raises(RPCError) as failed:
        await client.workflow_service.update_task_queue_config(_update(new_id("tq-config"), **request_fields))
    assert (failed.value.status, failed.value.message) == (RPCStatusCode.INVALID_ARGUMENT, message)


async def test_queue_rate_limit_spaces_dispatches(target: ServerProcess) -> None:
    """8 activities at 2/s (a burst of 2): the last starts >= 2.5 s after the first (unlimited: at once)."""
    client = await Client.connect(target.address)
    queue = new_id("tq-rate")
    await client.workflow_service.update_task_queue_config(
        _update(
            queue,
            task_queue_type=ACTIVITY,
            update_queue_rate_limit=Update(rate_limit=RateLimit(requests_per_second=2)),
        )
    )
    key = new_id("fan")
    async with Worker(client, task_queue=queue, workflows=[FanOut], activities=[stamp]):
        await client.execute_workflow(FanOut.run, args=[key, 8], id=key, task_queue=queue)
    starts = STARTS[key]
    assert len(starts) == 8
    assert max(starts) - min(starts) >= 2.5, f"8 activities started within {max(starts) - min(starts):.2f} s"


async def test_list_partitions_names_the_queue_and_its_owner(target: ServerProcess) -> None:
    client = await Client.connect(target.address)
    queue = new_id("tq-parts")
    resp = await client.workflow_service.list_task_queue_partitions(
        ListTaskQueuePartitionsRequest(namespace="default", task_queue=TaskQueue(name=queue))
    )
    for partitions in (resp.activity_task_queue_partitions, resp.workflow_task_queue_partitions):
        # The reference's start-dev has 4 partitions, Hourglass's 1: the first is the queue's own name.
        assert partitions[0].key == queue
        assert all(p.owner_host_name.startswith("127.0.0.1:") for p in partitions)


async def test_config_survives_kill9(restartable_server: ServerProcess) -> None:
    client = await Client.connect(restartable_server.address)
    queue = new_id("tq-durable")
    resp = await client.workflow_service.update_task_queue_config(
        _update(
            queue,
            task_queue_type=ACTIVITY,
            update_queue_rate_limit=Update(rate_limit=RateLimit(requests_per_second=3)),
        )
    )
    await restartable_server.restart()
    client = await Client.connect(restartable_server.address)
    assert (await _config(client, queue)).config == resp.config
