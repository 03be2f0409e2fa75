"""Cassandra 5 in a Docker container for the test suites (HOURGLASS_CASSANDRA_CONTAINER=1), through the
`testcontainers` package (optional dependency: pip install -e '.[containers]').

Where a Docker engine answers, this replaces the Maven launcher (tools/cassandra/devserver.py), which stays
the default: it needs a JDK and Maven instead of an engine. One container per test process, started on
first use and removed when the last user releases it (testcontainers' reaper removes it too if the
process dies).
"""

from __future__ import annotations

import os
from typing import Any

CONTAINER_ENV = "HOURGLASS_CASSANDRA_CONTAINER"
IMAGE_ENV = "HOURGLASS_CASSANDRA_IMAGE"
DEFAULT_IMAGE = "cassandra:5.0"


def container_requested() -> bool:
    return os.environ.get(CONTAINER_ENV, "").strip().lower() not in ("", "0", "false", "no")


def start_container() -> tuple[Any, str, int]:
    """Start the container; returns it with its CQL host and port. Raises RuntimeError naming what is
    missing (the package, or an engine that answers)."""
    try:
        try:
            from testcontainers.community.cassandra import CassandraContainer
        except ImportError:  # testcontainers before 4.10
            from testcontainers.cassandra import CassandraContainer
    except ImportError:
        raise RuntimeError(
            f"{CONTAINER_ENV}=1 needs the testcontainers package: pip install -e '.[containers]'"
        ) from None
    try:  # the client asks the engine its version already when the container object is made
        container = CassandraContainer(os.environ.get(IMAGE_ENV, "").strip() or DEFAULT_IMAGE)
        container.start()
    except Exception as e:
        raise RuntimeError(
            f"{CONTAINER_ENV}=1 but no Docker engine answered ({type(e).__name__}: {e}); unset it to use "
            "the Maven launcher, or HOURGLASS_CASSANDRA_HOSTS for an existing cluster"
        ) from None
    (host, port), *_ = container.get_contact_points()
    return container, host, port
