"""The Dockerfile and deploy/compose.yaml, checked as far as a machine without a Docker engine can: the
compose file loads with compose-go (the library of `docker compose config`, when Go is installed), every
file it mounts exists and each config is valid for the program that reads it (Hourglass's own loader,
promtool), the image installs every package of pyproject.toml, and its HEALTHCHECK command answers
for a live node and fails for a dead one. Building the image and running the services need an engine:
README "Containers" says so.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from hourglass.cluster.config import load_config
from hourglass.loadtest.servers import ManagedServer, free_port, hourglass_server

from .prometheus import MISSING, PROMTOOL

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
SERVICES = {"cassandra", "schema", "hourglass", "prometheus", "grafana"}


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def mounts(service: str) -> dict[str, Path]:
    """container path -> host path of the service's bind mounts (named volumes left out)."""
    out = {}
    for volume in compose()["services"][service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            out[target] = (COMPOSE.parent / source).resolve()
    return out


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_compose_mounts_exist_and_images_are_pinned() -> None:
    services = compose()["services"]
    assert set(services) == SERVICES
    for name in SERVICES:
        for target, source in mounts(name).items():
            assert source.exists(), f"{name} mounts {source} at {target}, which does not exist"
        image = services[name]["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image's version ({image})"
    for name in ("hourglass", "prometheus", "grafana"):
        for port in services[name].get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond the host's loopback"
    assert services["hourglass"]["depends_on"]["schema"]["condition"] == "service_completed_successfully"


@pytest.mark.skipif(shutil.which("go") is None, reason="Go is not installed: compose-go cannot be built")
@pytest.mark.timeout(600)
def test_compose_file_loads_with_compose_go(tmp_path: Path) -> None:
    binary = tmp_path / "compose-check"
    built = subprocess.run(
        ["go", "build", "-o", str(binary), "."], cwd=REPO / "tools" / "compose", capture_output=True, text=True,
        timeout=560,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    loaded = subprocess.run([str(binary), str(COMPOSE)], capture_output=True, text=True, timeout=30)
    assert loaded.returncode == 0, loaded.stderr
    project = yaml.safe_load(loaded.stdout)
    assert set(project["services"]) == SERVICES
    assert project["services"]["schema"]["build"]["context"] == str(REPO)
    # A misspelt key is refused by the Compose Specification's schema, with its name.
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("    depends_on:\n", "    depend_on:\n", 1))
    refused = subprocess.run([str(binary), str(broken)], capture_output=True, text=True, timeout=30)
    assert refused.returncode == 1 and "depend_on" in refused.stderr


def test_the_node_config_is_valid_and_matches_the_scrape_config() -> None:
    node_config = mounts("hourglass")["/etc/hourglass/hourglass.yaml"]
    config = load_config(str(node_config))
    assert config.store.kind == "cassandra" and config.store.cassandra.hosts == ["cassandra"]
    command = compose()["services"]["schema"]["command"]
    assert command[command.index("--keyspace") + 1] == config.store.cassandra.keyspace
    prometheus_dir = mounts("prometheus")["/etc/prometheus"]
    scrape = yaml.safe_load((prometheus_dir / "prometheus.yml").read_text())["scrape_configs"]
    assert scrape == [
        {"job_name": "hourglass", "static_configs": [{"targets": [f"hourglass:{config.node.metrics_port}"]}]}
    ]
    grafana = mounts("grafana")
    provider = yaml.safe_load(
        (grafana["/etc/grafana/provisioning"] / "dashboards" / "hourglass.yaml").read_text()
    )
    dashboards = Path(provider["providers"][0]["options"]["path"])
    assert grafana[str(dashboards / "hourglass.json")] == DEPLOY / "grafana" / "hourglass.json"


@pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
def test_promtool_accepts_the_compose_prometheus_config() -> None:
    assert PROMTOOL is not None
    checked = subprocess.run(
        [PROMTOOL, "check", "config", str(mounts("prometheus")["/etc/prometheus"] / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in checked.stdout + checked.stderr


def test_the_image_installs_every_package_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    froms = [arg for op, arg in instructions if op == "FROM"]
    assert froms and all(f.split()[0] == "python:3.11-slim" for f in froms)
    package_dirs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    copied = {arg.split()[0] for op, arg in instructions if op == "COPY" and "--from" not in arg}
    assert set(package_dirs.values()) <= copied, "the image would miss a package folder"
    user = [arg for op, arg in instructions if op == "USER"]
    assert user and user[-1] not in ("root", "0")
    assert json.loads(dict(instructions)["ENTRYPOINT"]) == ["hourglass"]
    assert json.loads(dict(instructions)["CMD"])[:2] == ["server", "start"]


@pytest.mark.timeout(300)
def test_the_files_the_image_copies_build_a_complete_wheel(tmp_path: Path) -> None:
    """What `pip wheel .` does in the image's build stage, on exactly the files its COPY lines bring in."""
    context = tmp_path / "src"
    context.mkdir()
    for op, arg in dockerfile_instructions():
        if op == "COPY" and "--from" not in arg:
            for source in arg.split()[:-1]:
                path = REPO / source
                (shutil.copytree if path.is_dir() else shutil.copy)(path, context / source)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "out"), str(context)],
        capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "out").glob("hourglass-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    for package in packages:
        assert package.replace(".", "/") + "/__init__.py" in names, f"the image would lack {package}"
    schema_files = [n for n in names if n.startswith("hourglass/schema/") and n.endswith((".cql", ".sql"))]
    assert {"cassandra", "sqlite"} <= {n.split("/")[2] for n in schema_files}


def healthcheck_argv(address: str) -> list[str]:
    command = dict(dockerfile_instructions())["HEALTHCHECK"]
    argv = json.loads(re.search(r"CMD\s+(\[.*\])", command).group(1))
    assert argv[:3] == ["hourglass", "server", "health"]
    argv[argv.index("--address") + 1] = address
    # The `hourglass` of this checkout's environment, as the image's is on its PATH.
    return [sys.executable, "-m", "hourglass.cluster.cli", *argv[1:]]


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[ManagedServer]:
    server = hourglass_server(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_the_healthcheck_passes_on_a_serving_node_and_fails_on_a_dead_one(node: ManagedServer) -> None:
    healthy = await asyncio.to_thread(run, healthcheck_argv(node.address))
    assert (healthy.returncode, healthy.stdout.strip()) == (0, "SERVING"), healthy.stderr
    dead = f"127.0.0.1:{free_port()}"
    refused = await asyncio.to_thread(run, healthcheck_argv(dead))
    assert refused.returncode == 1
    assert f"{dead} did not answer the health check: UNAVAILABLE" in refused.stderr
