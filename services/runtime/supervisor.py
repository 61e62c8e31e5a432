"""``govflow up / status / down``: the broker and one worker process per service.

``up`` starts the broker — the embedded Tansu, or with ``--broker kafka`` Apache Kafka
(its storage in ``<data_dir>/kafka``) — or checks ``GOVFLOW_BROKER_URL``, creates the topics,
starts a Faust worker per service, waits until every one has joined its consumer group,
and records pids, ports and log files in ``<data_dir>/state.json``.  ``down`` stops
exactly what ``up`` started and returns only when every process has exited (SIGKILL
after a timeout).  Logs: ``<data_dir>/logs/<service>.log``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from services.core.catalog import Catalog
from services.core.errors import InputError
from services.core.topics import Topics
from services.runtime.broker import (
    EmbeddedBroker,
    KafkaBroker,
    bootstrap_of,
    ensure_topics,
    require_broker,
)
from services.runtime.processes import ALIVE, GONE, process_alive, stop_process, stop_processes
from services.runtime.settings import Settings
from services.runtime.topology import (
    PARTITIONS,
    assignor_topics,
    changelog_topics,
    service_names,
    topic_partitions,
)

__all__ = ["service_names", "topic_partitions"]


@dataclass
class ProcessRecord:
    pid: int
    log: str
    metrics_port: int | None = None


@dataclass
class TwinState:
    broker_url: str
    broker_pid: int | None  # None: an external broker
    broker_kind: str = "external"  # embedded (Tansu), kafka (Apache Kafka), external
    broker_log: str | None = None
    broker_home: str | None = None  # kafka: its configuration and log dirs
    services: dict[str, ProcessRecord] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    replay_metrics_port: int | None = None  # `govflow replay` serves its metrics here
    prometheus: ProcessRecord | None = None  # `govflow up --prometheus`
    prometheus_url: str | None = None

    @classmethod
    def load(cls, path: Path) -> TwinState | None:
        if not path.exists():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        services = {k: ProcessRecord(**v) for k, v in data.pop("services").items()}
        prometheus = data.pop("prometheus", None)
        return cls(
            services=services,
            prometheus=ProcessRecord(**prometheus) if prometheus else None,
            **data,
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")


def state_path(settings: Settings) -> Path:
    return settings.data_dir / "state.json"


def free_port(start: int = 0) -> int:
    """``start`` or the next port above it that can be bound (0: any free port)."""
    port = start
    while True:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                port += 1
                if port > 65535:
                    raise InputError("GOVFLOW_METRICS_PORT", str(start), "no free port") from None
                continue
            return int(probe.getsockname()[1])


def metrics_ports(settings: Settings, count: int) -> list[int]:
    """One metrics port per process: consecutive free ports from GOVFLOW_METRICS_PORT."""
    ports: list[int] = []
    for _ in range(count):
        if settings.metrics_port == 0:
            port = free_port(0)
            while port in ports:
                port = free_port(0)
        else:
            port = free_port(max([settings.metrics_port - 1, *ports]) + 1)
        ports.append(port)
    return ports


def up(
    settings: Settings, catalog: Catalog, timeout: float = 180.0, prometheus: bool = False
) -> TwinState:
    """Start the twin (and a Prometheus scraping it); raises InputError if it is already
    up or the broker is down."""
    path = state_path(settings)
    existing = TwinState.load(path)
    if existing is not None and any(process_alive(p.pid) for p in existing.services.values()):
        raise InputError(str(path), "", "the twin is already up (run `govflow down` first)")
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    ready = settings.data_dir / "ready"
    for stale in ready.glob("*") if ready.exists() else []:
        stale.unlink()
    state = start_broker(settings)
    url = state.broker_url
    state.save(path)
    topics = Topics(settings.topic_prefix)
    changelogs = changelog_topics(catalog, topics)
    asyncio.run(
        ensure_topics(
            bootstrap_of(url),
            {
                **topic_partitions(catalog, topics),
                **dict.fromkeys(changelogs, PARTITIONS),
                **dict.fromkeys(assignor_topics(catalog), 1),
            },
            compacted=changelogs,
        )
    )
    names = service_names(catalog)
    *ports, state.replay_metrics_port = metrics_ports(settings, len(names) + 1)
    try:
        for name, port in zip(names, ports, strict=True):
            state.services[name] = spawn_worker(settings, state, name, port)
            state.save(path)
        wait_ready(settings, state, timeout)
        if prometheus:
            start_prometheus(settings, state)
            state.save(path)
    except BaseException:
        down(settings)
        raise
    return state


def start_broker(settings: Settings) -> TwinState:
    """The twin's broker: GOVFLOW_BROKER_URL if set (checked), else the one of
    GOVFLOW_BROKER started in the data dir."""
    if settings.broker_url:
        require_broker(settings.broker_url)
        return TwinState(broker_url=settings.broker_url, broker_pid=None)
    broker: EmbeddedBroker | KafkaBroker
    if settings.broker == "kafka":
        # a new twin starts afresh, as the embedded broker and compose's Kafka do; only
        # restart_broker (a crash) keeps the log dirs
        shutil.rmtree(settings.data_dir / "kafka", ignore_errors=True)
        broker = KafkaBroker(settings.data_dir / "kafka", settings.broker_port)
        home: str | None = str(broker.home)
    else:
        broker = EmbeddedBroker(settings.broker_port, settings.data_dir / "logs" / "broker.log")
        home = None
    broker.start()
    return TwinState(
        broker_url=broker.url,
        broker_pid=broker.pid,
        broker_kind=broker.kind,
        broker_log=str(broker.log_path),
        broker_home=home,
    )


def restart_broker(settings: Settings) -> int:
    """Start the twin's Apache Kafka again on its log dirs (after a crash); its new pid."""
    path = state_path(settings)
    state = TwinState.load(path)
    if state is None or state.broker_kind != "kafka" or state.broker_home is None:
        raise InputError(str(path), "broker", "only a local Apache Kafka can be restarted")
    if state.broker_pid is not None and process_alive(state.broker_pid):
        stop_process(state.broker_pid, timeout=30)
    broker = KafkaBroker(Path(state.broker_home))
    broker.start()
    state.broker_pid = broker.pid
    state.save(path)
    return int(broker.pid or 0)


def spawn_worker(
    settings: Settings, state: TwinState, name: str, port: int | None
) -> ProcessRecord:
    """Start one service's Faust worker (its own session, log appended)."""
    log = settings.data_dir / "logs" / f"{name}.log"
    env = {
        **os.environ,
        "GOVFLOW_BROKER_URL": state.broker_url,
        "GOVFLOW_DATA_DIR": str(settings.data_dir),
    }
    # static membership: the worker restarted after a crash is the same member
    env["GOVFLOW_GROUP_INSTANCE_ID"] = f"{name}-1"
    if state.broker_kind != "external":  # known broker: its workarounds on or off
        env["GOVFLOW_EMBEDDED_BROKER_QUIRKS"] = str(state.broker_kind == "embedded").lower()
    if port is not None:
        env["GOVFLOW_METRICS_PORT"] = str(port)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "faust",
            "-A",
            f"services.{name}.app",
            "worker",
            "-l",
            "warn",
            "--without-web",
        ],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    return ProcessRecord(process.pid, str(log), port)


def restart(settings: Settings, name: str) -> int:
    """Start a service's worker again (after a crash: stops a survivor first); its new pid.
    The worker rebuilds its tables from their changelogs and rejoins the group."""
    path = state_path(settings)
    state = TwinState.load(path)
    if state is None or name not in state.services:
        raise InputError(str(path), name, "no such service in the running twin")
    old = state.services[name]
    if process_alive(old.pid):
        stop_process(old.pid, timeout=10)
    (settings.data_dir / "ready" / name).unlink(missing_ok=True)
    state.services[name] = spawn_worker(settings, state, name, old.metrics_port)
    state.save(path)
    return state.services[name].pid


def wait_service_ready(settings: Settings, name: str, timeout: float) -> bool:
    """Wait until the service's (new) worker reports its partitions assigned."""
    marker = settings.data_dir / "ready" / name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker.exists():
            return True
        time.sleep(0.1)
    return False


ALERT_RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


def prometheus_config(state: TwinState, scrape_interval: str = "1s") -> dict[str, Any]:
    """A Prometheus configuration scraping this twin's processes on localhost."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [
            {
                "job_name": "govflow",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{p.metrics_port}"], "labels": {"service": name}}
                    for name, p in state.services.items()
                ],
            },
            {
                "job_name": "govflow-replay",
                "static_configs": [{"targets": [f"127.0.0.1:{state.replay_metrics_port}"]}],
            },
        ],
    }
    if ALERT_RULES.exists():
        config["rule_files"] = [str(ALERT_RULES)]
    return config


def start_prometheus(settings: Settings, state: TwinState, timeout: float = 60.0) -> None:
    """Start Debian's ``prometheus`` scraping the twin; waits until it is ready."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise InputError(
            "prometheus", "--prometheus", "no prometheus binary (apt-get install prometheus)"
        )
    home = settings.data_dir / "prometheus"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(state), sort_keys=False), encoding="utf-8")
    port = free_port(settings.prometheus_port)
    log = settings.data_dir / "logs" / "prometheus.log"
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    state.prometheus = ProcessRecord(process.pid, str(log), port)
    state.prometheus_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise InputError(str(log), "prometheus", "Prometheus exited while starting")
        try:
            with urllib.request.urlopen(f"{state.prometheus_url}/-/ready", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise InputError(str(log), "prometheus", f"not ready after {timeout:.0f} s")


def wait_ready(settings: Settings, state: TwinState, timeout: float) -> None:
    ready = settings.data_dir / "ready"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        missing = [n for n in state.services if not (ready / n).exists()]
        if not missing:
            return
        dead = [n for n, p in state.services.items() if not process_alive(p.pid)]
        if dead:
            raise InputError(
                state.services[dead[0]].log,
                dead[0],
                "the service exited while starting (see its log)",
            )
        time.sleep(0.25)
    raise InputError(
        str(ready),
        ", ".join(missing),
        f"not ready after {timeout:.0f} s (see the logs in {ready.parent / 'logs'})",
    )


@dataclass
class ServiceStatus:
    name: str
    pid: int
    alive: bool
    ready: bool
    partitions: int
    log: str
    metrics_port: int | None = None


def status(settings: Settings) -> tuple[TwinState | None, list[ServiceStatus]]:
    state = TwinState.load(state_path(settings))
    if state is None:
        return None, []
    ready = settings.data_dir / "ready"
    rows = []
    for name, record in state.services.items():
        marker = ready / name
        partitions = len(json.loads(marker.read_text())["partitions"]) if marker.exists() else 0
        rows.append(
            ServiceStatus(
                name,
                record.pid,
                process_alive(record.pid),
                marker.exists(),
                partitions,
                record.log,
                record.metrics_port,
            )
        )
    return state, rows


@dataclass
class Stopped:
    """What ``down`` stopped: each process's name and outcome (exited, killed …)."""

    outcomes: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [n for n, o in self.outcomes.items() if o != GONE]

    @property
    def still_running(self) -> list[str]:
        return [n for n, o in self.outcomes.items() if o == ALIVE]


def down(settings: Settings, timeout: float = 10.0) -> Stopped:
    """Stop what ``up`` started — the services first, then Prometheus and the embedded
    broker — and wait until every process has exited."""
    path = state_path(settings)
    state = TwinState.load(path)
    stopped = Stopped()
    if state is None:
        return stopped
    services = {p.pid: name for name, p in state.services.items()}
    stopped.outcomes.update(
        {services[pid]: o for pid, o in stop_processes(services, timeout).items()}
    )
    last = {}
    if state.prometheus is not None:
        last[state.prometheus.pid] = "prometheus"
    if state.broker_pid is not None:
        last[state.broker_pid] = "broker"
    broker_timeout = 30.0 if state.broker_kind == "kafka" else timeout  # a clean shutdown
    stopped.outcomes.update(
        {last[pid]: o for pid, o in stop_processes(last, broker_timeout).items()}
    )
    if not stopped.still_running:
        path.unlink(missing_ok=True)
    ready = settings.data_dir / "ready"
    for marker in ready.glob("*") if ready.exists() else []:
        marker.unlink()
    return stopped
