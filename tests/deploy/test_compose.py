"""The container stack: docker-compose.yml is valid Compose, runs every service package
with a health check, Kafka in KRaft mode, and is wired to Prometheus and Grafana.

Validation uses ``docker-compose config -q`` (Debian's docker-compose 1.29 in ``make test``);
everything else reads the YAML itself, so it needs no Docker daemon.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
METRICS_PORT = 9300

#: A worker module: ``app = ...`` at module level, what ``faust -A services.<name>.app`` runs.
_WORKER_APP = re.compile(r"^app\s*=", re.M)

#: Every service package: services/<name>/app.py defining the Faust ``app`` (the
#: departments and the tracker; services/runtime/app.py is the factory, not a service).
SERVICE_PACKAGES = sorted(
    path.parent.name
    for path in (ROOT / "services").glob("*/app.py")
    if _WORKER_APP.search(path.read_text(encoding="utf-8"))
)

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")


def with_defaults(value: Any) -> str:
    """A Compose value with every ``${VAR:-default}`` replaced by its default."""
    return _VARIABLE.sub(lambda m: m.group("default") or "", str(value))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), (
        f"{COMPOSE_FILE} has no services mapping"
    )
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: with_defaults(v) for k, v in env.items() if v is not None}


def docker_compose() -> str:
    path = shutil.which("docker-compose")
    if path is None:
        pytest.skip("docker-compose missing: make test installs Debian's docker-compose package")
    return path


def test_the_service_packages_are_what_govflow_up_starts():
    """Compose runs the same workers as `govflow up` (supervisor.service_names)."""
    from services.core.catalog import default_catalog
    from services.runtime.topology import service_names

    assert "tracker" in SERVICE_PACKAGES
    assert sorted(service_names(default_catalog())) == SERVICE_PACKAGES


# -- docker-compose itself -------------------------------------------------------------


@pytest.mark.parametrize(
    "profiles",
    [(), ("three-node",), ("replay",), ("dask",), ("three-node", "replay", "dask")],
    ids=["default", "three-node", "replay", "dask", "all-profiles"],
)
def test_docker_compose_accepts_the_file(profiles: tuple[str, ...]):
    binary = docker_compose()
    flags = [arg for profile in profiles for arg in ("--profile", profile)]
    command = [binary, *flags, "-f", COMPOSE_FILE.name, "config", "-q"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "GOVFLOW_"))}
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, (
        f"{' '.join(command)} exited {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )


# -- the workers -----------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVICE_PACKAGES)
def test_every_service_package_is_a_healthy_compose_service(services, name: str):
    assert name in services, f"services/{name}/app.py has no compose service {name!r}"
    service = services[name]
    command = [str(part) for part in service.get("command", [])]
    assert command == [
        "python",
        "-m",
        "faust",
        "-A",
        f"services.{name}.app",
        "worker",
        "-l",
        "info",
        "--without-web",
    ], command
    assert "build" in service or "image" in service

    health = service.get("healthcheck")
    assert health, f"compose service {name!r} has no healthcheck"
    test = [str(part) for part in health["test"]]
    assert test[:3] == ["CMD", "python", "-c"], test
    assert f"http://localhost:{METRICS_PORT}/metrics" in test[3] and "urllib" in test[3]
    compile(test[3], f"{name} healthcheck", "exec")

    env = env_of(service)
    assert env["GOVFLOW_BROKER_URL"] == "kafka://kafka:9092"
    assert "${GOVFLOW_BROKER_URL" in str(service["environment"]["GOVFLOW_BROKER_URL"])
    assert env["GOVFLOW_METRICS_PORT"] == str(METRICS_PORT)
    assert env["GOVFLOW_EMBEDDED_BROKER_QUIRKS"] == "false"

    assert service.get("restart") == "unless-stopped"
    assert service.get("depends_on", {}).get("topics") == {
        "condition": "service_completed_successfully"
    }
    # `docker compose up --scale <name>=N` needs neither a fixed name nor a host port.
    assert "container_name" not in service
    assert "ports" not in service
    assert "profiles" not in service


def test_every_faust_worker_in_compose_has_a_package(services):
    for name, service in services.items():
        command = [str(part) for part in service.get("command") or []]
        if "faust" in command:
            module = command[command.index("-A") + 1]
            assert module == f"services.{name}.app", (name, module)
            assert name in SERVICE_PACKAGES, f"compose runs {module}, which does not exist"


def test_the_workers_share_one_image(services):
    images = {with_defaults(services[name]["image"]) for name in [*SERVICE_PACKAGES, "topics"]}
    assert len(images) == 1, images
    assert (ROOT / with_defaults(services["topics"]["build"]["context"]) / "Dockerfile").exists()


# -- Kafka and the topics --------------------------------------------------------------


def pinned_kafka_version() -> str:
    """The broker version ``make kafka`` resolves (deploy/kafka/pom.xml)."""
    pom = (ROOT / "deploy" / "kafka" / "pom.xml").read_text(encoding="utf-8")
    found = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert found, "deploy/kafka/pom.xml pins no kafka.version"
    return found.group(1)


def test_compose_runs_the_kafka_version_the_tests_run(services):
    version = pinned_kafka_version()
    assert version.startswith("4.")
    kafka_nodes = [n for n in services if n == "kafka" or n.startswith("kafka-")]
    assert kafka_nodes
    for name in kafka_nodes:
        assert services[name]["image"] == f"apache/kafka:{version}", name


def test_kafka_runs_in_kraft_mode(services):
    kafka = services["kafka"]
    env = env_of(kafka)
    roles = env["KAFKA_PROCESS_ROLES"].split(",")
    assert "controller" in roles and "broker" in roles
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    for key in (
        "CLUSTER_ID",
        "KAFKA_LISTENERS",
        "KAFKA_CONTROLLER_LISTENER_NAMES",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
        "KAFKA_INTER_BROKER_LISTENER_NAME",
    ):
        assert env.get(key), f"kafka lacks {key}"
    assert "kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])
    assert "profiles" not in kafka


def test_three_node_profile(services):
    nodes = [f"kafka-{i}" for i in (1, 2, 3)]
    voters = ",".join(f"{i}@kafka-{i}:9093" for i in (1, 2, 3))
    envs = []
    for i, name in enumerate(nodes, start=1):
        assert name in services, f"profile three-node lacks {name}"
        node = services[name]
        assert node.get("profiles") == ["three-node"]
        assert node["image"] == services["kafka"]["image"]
        assert node.get("healthcheck")
        env = env_of(node)
        assert env["KAFKA_NODE_ID"] == str(i)
        assert "controller" in env["KAFKA_PROCESS_ROLES"] and "broker" in env["KAFKA_PROCESS_ROLES"]
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == voters
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        for key in (
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
            "KAFKA_DEFAULT_REPLICATION_FACTOR",
        ):
            assert env[key] == "3", (name, key)
        envs.append(env)
    assert len({env["CLUSTER_ID"] for env in envs}) == 1


def test_topics_job_runs_once_after_kafka(services):
    topics = services["topics"]
    assert topics.get("restart") == "no"
    assert topics["depends_on"]["kafka"] == {"condition": "service_healthy"}
    assert "healthcheck" not in topics
    command = [str(part) for part in topics["command"]]
    assert command[:2] == ["python", "-c"]
    script = command[2]
    assert "$" not in script, "Compose would interpolate $ in the topics script"
    assert "ensure_topics" in script and "topic_partitions" in script
    compile(script, "topics script", "exec")


@pytest.mark.integration
def test_topics_job_creates_every_topic_on_a_real_broker(services, tmp_path):
    """The topics job's own script, against the embedded broker, twice (idempotent)."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    from services.core.catalog import default_catalog
    from services.core.topics import Topics
    from services.runtime.broker import EmbeddedBroker
    from services.runtime.topology import topic_partitions

    script = str(services["topics"]["command"][2])
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVFLOW_")}

    async def partitions(bootstrap: str) -> dict[str, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics()}
        finally:
            await admin.close()

    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        env |= env_of(services["topics"]) | {"GOVFLOW_BROKER_URL": broker.url}
        for attempt in (1, 2):
            result = subprocess.run(
                [sys.executable, "-c", script],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            assert result.returncode == 0, (
                f"topics job, run {attempt}, exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        found = asyncio.run(partitions(broker.bootstrap))
    wanted = topic_partitions(default_catalog(), Topics())
    assert {name: found.get(name) for name in wanted} == wanted


# -- the replay job --------------------------------------------------------------------


def test_replay_job(services):
    replay = services["replay"]
    assert replay.get("profiles") == ["replay"]
    command = [with_defaults(part) for part in replay["command"]]
    assert command[:2] == ["govflow", "replay"]
    assert command[command.index("--scenario") + 1] == "scenarios/demo.yaml"
    assert command[command.index("--speed") + 1] == "86400"
    out = command[command.index("--out") + 1]
    assert any(str(v).split(":")[1] == out for v in replay["volumes"]), replay["volumes"]
    env = env_of(replay)
    assert env["GOVFLOW_METRICS_PORT"] == str(METRICS_PORT)
    assert env["GOVFLOW_BROKER_URL"] == "kafka://kafka:9092"
    assert env["GOVFLOW_EMBEDDED_BROKER_QUIRKS"] == "false"
    for name in SERVICE_PACKAGES:
        assert replay["depends_on"].get(name) == {"condition": "service_healthy"}, name


def test_dask_profile_runs_a_plan_on_the_cluster(services):
    """Scheduler, workers (the govflow image, one single-threaded process each, so that
    `--scale dask-worker=N` is N replications at a time) and the plan job, which reaches
    the scheduler by GOVFLOW_EXECUTOR; the executor string is one govflow accepts."""
    from simulator.executors import parse_executor

    scheduler, worker, plan = services["dask-scheduler"], services["dask-worker"], services["plan"]
    image = with_defaults(services["tax"]["image"])
    for service in (scheduler, worker, plan):
        assert service.get("profiles") == ["dask"]
        assert with_defaults(service["image"]) == image
    assert scheduler["command"][:2] == ["dask", "scheduler"]
    port = scheduler["command"][scheduler["command"].index("--port") + 1]
    assert worker["command"][:3] == ["dask", "worker", f"tcp://dask-scheduler:{port}"]
    assert worker["command"][worker["command"].index("--nthreads") + 1] == "1"
    assert "container_name" not in worker and "ports" not in worker  # scalable
    spec = parse_executor(env_of(plan)["GOVFLOW_EXECUTOR"])
    assert (spec.kind, spec.address) == ("dask", f"tcp://dask-scheduler:{port}")
    command = [with_defaults(part) for part in plan["command"]]
    assert command[:2] == ["govflow", "plan"]
    assert command[command.index("--scenario") + 1] == "scenarios/shangrao-2021.yaml"
    out = command[command.index("--out") + 1]
    assert any(str(v).split(":")[1] == out for v in plan["volumes"]), plan["volumes"]
    assert plan["depends_on"]["dask-scheduler"] == {"condition": "service_healthy"}


def test_scenarios_are_in_the_image(services):
    """The replay announces /app/<scenario>; every service must find that same file."""
    replay = services["replay"]
    scenario = with_defaults(replay["command"][replay["command"].index("--scenario") + 1])
    assert (ROOT / scenario).exists()
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^WORKDIR /app$", dockerfile, re.M)
    assert re.search(r"^COPY scenarios /app/scenarios$", dockerfile, re.M)


# -- observability ---------------------------------------------------------------------


def test_prometheus_and_grafana_mount_deploy(services):
    prometheus = services["prometheus"]
    assert prometheus["image"] == "prom/prometheus:v2.53.0"
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "9090:9090" in prometheus["ports"]

    grafana = services["grafana"]
    assert grafana["image"] == "grafana/grafana:11.1.0"
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana["volumes"]
    assert "3000:3000" in grafana["ports"]
    env = env_of(grafana)
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def scrape_targets() -> set[str]:
    """Every host:port Prometheus scrapes: static targets and DNS-discovered names."""
    if not PROMETHEUS_FILE.exists():
        pytest.fail(
            f"{PROMETHEUS_FILE.relative_to(ROOT)} does not exist yet: docker-compose.yml mounts "
            "deploy/prometheus into Prometheus, and it must scrape <service>:9300 for every "
            "service package (written with the observability work, not by this test)"
        )
    config = yaml.safe_load(PROMETHEUS_FILE.read_text(encoding="utf-8")) or {}
    targets: set[str] = set()
    for job in config.get("scrape_configs") or []:
        for static in job.get("static_configs") or []:
            targets.update(str(t) for t in static.get("targets") or [])
        for dns in job.get("dns_sd_configs") or []:
            port = dns.get("port")
            targets.update(f"{name}:{port}" for name in dns.get("names") or [])
    return targets


def test_every_service_package_is_scraped():
    targets = scrape_targets()
    missing = [n for n in SERVICE_PACKAGES if f"{n}:{METRICS_PORT}" not in targets]
    assert not missing, (
        f"{PROMETHEUS_FILE.relative_to(ROOT)} does not scrape {missing} on port {METRICS_PORT}"
    )


def test_the_replay_job_is_scraped():
    assert f"replay:{METRICS_PORT}" in scrape_targets()


# -- the image -------------------------------------------------------------------------


def test_dockerfile_and_dockerignore():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    assert "pip install --no-cache-dir" in dockerfile
    user = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert user and user[-1] not in ("root", "0")
    assert re.search(r'^CMD \["govflow", "--help"\]$', dockerfile, re.M)

    ignored = [
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for required in (".git", ".venv", "out", ".govflow*", "**/__pycache__"):
        assert required in ignored, f".dockerignore should exclude {required}"
    sources = [
        source
        for line in re.findall(r"^COPY (.+)$", dockerfile, re.M)
        for source in line.split()[:-1]
        if not source.startswith("--")
    ]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
        excluded = [p for p in ignored if fnmatch.fnmatch(source, p)]
        assert not excluded, f".dockerignore {excluded} drops {source}, which the image needs"
