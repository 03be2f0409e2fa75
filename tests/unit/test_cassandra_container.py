"""HOURGLASS_CASSANDRA_CONTAINER=1: the Cassandra of the test suites in a container (testcontainers), where a
Docker engine answers; elsewhere a clear refusal naming what is missing, never a silent fallback."""

from __future__ import annotations

import functools
import shutil
import subprocess

import pytest

from hourglass.persistence.cassandra import testing
from hourglass.persistence.cassandra.container import CONTAINER_ENV


@functools.cache
def engine_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    return subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode == 0


@pytest.fixture
def container_requested(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONTAINER_ENV, "1")
    monkeypatch.delenv("HOURGLASS_CASSANDRA_HOSTS", raising=False)


@pytest.mark.skipif(engine_answers(), reason="a Docker engine answers here")
def test_without_an_engine_the_request_is_refused_with_what_is_missing(container_requested: None) -> None:
    with pytest.raises(testing.CassandraUnavailableForTests) as refused:
        testing.acquire()
    message = str(refused.value)
    assert CONTAINER_ENV in message
    assert "testcontainers" in message or "no Docker engine answered" in message
    testing.release()  # nothing was taken: releasing stops nothing and does not fail


@pytest.mark.skipif(not engine_answers(), reason="no Docker engine answers here")
@pytest.mark.timeout(600)
def test_a_container_serves_cql_and_is_removed_on_release(container_requested: None) -> None:
    from cassandra.cluster import Cluster

    config = testing.acquire()
    try:
        cluster = Cluster(config.hosts, port=config.port, protocol_version=5)
        try:
            version = cluster.connect().execute("SELECT release_version FROM system.local").one()[0]
        finally:
            cluster.shutdown()
        assert version.startswith("5.")
    finally:
        testing.release()
    assert testing._container is None
