"""A service's health: its Prometheus metrics (prometheus-client) and its readiness.

Names follow Prometheus conventions: base units (``_seconds``), counters end in
``_total``, no per-case labels. Business latency is in each matter's target unit with
buckets around the plan's targets. Each process has its own registry and serves it on
its own port (``GOVFLOW_METRICS_PORT``; ``govflow up`` gives each worker the next port
and lists them in ``govflow status``); ``deploy/prometheus`` scrapes them.

Readiness: once a worker has partitions assigned it writes ``<data dir>/ready/<service>``
(its pid, partitions and metrics port); ``govflow up`` waits for every service's file.
"""

from __future__ import annotations

import json
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

#: Buckets around the plan's targets (1, 3, 5, 6, 7 working days; 0.8, 26, 30 hours …).
WORKING_DAY_BUCKETS = (0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 6, 7, 10, 15, 20, 30, 45, 60)
HOUR_BUCKETS = (0.25, 0.5, 0.8, 1, 2, 4, 8, 12, 24, 26, 30, 48, 72)
CALENDAR_DAY_BUCKETS = (1, 3, 5, 7, 10, 15, 20, 30, 45, 60, 90)
PROCESSING_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1,
)


def govflow_version() -> str:
    try:
        return version("govflow")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


class ServiceMetrics:
    """What every service exports."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        Gauge(
            "govflow_build_info", "Build of the running service", ["service", "version"], registry=r
        ).labels(service, govflow_version()).set(1)
        self.events_in = Counter(
            "govflow_events_in", "Messages consumed", ["service", "topic"], registry=r
        )
        self.events_out = Counter(
            "govflow_events_out", "Events published, by type", ["service", "type"], registry=r
        )
        self.dead_letters = Counter(
            "govflow_dead_letters",
            "Messages sent to the dead-letter topic",
            ["service", "reason"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "govflow_consumer_lag",
            "Messages behind the partition's high-water mark",
            ["service", "topic", "partition"],
            registry=r,
        )
        self.cases_kept = Gauge(
            "govflow_cases_kept",
            "Cases in the service's state: open, or closed (a marker kept for the horizon)",
            ["service", "state"],
            registry=r,
        )
        self.closed_forgotten = Counter(
            "govflow_closed_cases_forgotten",
            "Closed cases whose marker outlived the horizon and was deleted",
            ["service"],
            registry=r,
        )

    def serve(self, port: int) -> int:
        """Serve ``/metrics`` on ``port`` (0: a free one); returns the port."""
        server, _ = start_http_server(port, registry=self.registry)
        return int(server.server_port)


class DepartmentMetrics(ServiceMetrics):
    def __init__(self, department: str) -> None:
        super().__init__(department)
        r = self.registry
        self.processing = Histogram(
            "govflow_step_processing_seconds",
            "Wall seconds to handle one input event (input) or one due action (action)",
            ["department", "kind"],
            buckets=PROCESSING_BUCKETS,
            registry=r,
        )
        self.pending = Gauge(
            "govflow_pending_work",
            "Planned work not yet done",
            ["department", "county"],
            registry=r,
        )
        self.clerks_busy = Gauge(
            "govflow_clerks_busy",
            "Clerks serving a case at the sim clock",
            ["department", "county"],
            registry=r,
        )
        self.clerks = Gauge(
            "govflow_clerks", "Clerks in the county's pool", ["department", "county"], registry=r
        )


class TrackerMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__("tracker")
        r = self.registry
        self.latency = {
            "working_days": Histogram(
                "govflow_case_latency_working_days",
                "End-to-end case latency in working days",
                ["matter"],
                buckets=WORKING_DAY_BUCKETS,
                registry=r,
            ),
            "hours": Histogram(
                "govflow_case_latency_hours",
                "End-to-end case latency in clock hours",
                ["matter"],
                buckets=HOUR_BUCKETS,
                registry=r,
            ),
            "calendar_days": Histogram(
                "govflow_case_latency_calendar_days",
                "End-to-end case latency in calendar days",
                ["matter"],
                buckets=CALENDAR_DAY_BUCKETS,
                registry=r,
            ),
        }
        self.cases = Counter(
            "govflow_cases", "Cases judged, by outcome", ["matter", "outcome"], registry=r
        )
        self.verdicts = Counter(
            "govflow_target_verdicts",
            "Verdicts on time targets, one per case and target",
            ["matter", "target", "verdict"],
            registry=r,
        )
        self.target_value = Gauge(
            "govflow_target_value",
            "The plan's target value (in its unit)",
            ["matter", "target", "unit"],
            registry=r,
        )
        self.linked_in_flight = Gauge(
            "govflow_linked_transfers_in_flight",
            "Linked transfers (房电水气网联动过户) submitted and not yet terminal",
            registry=r,
        )
        self.linked_oldest = Gauge(
            "govflow_linked_transfer_oldest_open_working_days",
            "Age in sim working days of the oldest linked transfer not yet terminal",
            registry=r,
        )


class ReplayMetrics:
    """The replay job's own figures."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.submitted = Counter(
            "govflow_replay_cases_submitted", "Cases the replay submitted", registry=r
        )
        self.terminal = Counter(
            "govflow_replay_cases_terminal", "Cases judged", ["outcome"], registry=r
        )
        self.in_flight = Gauge(
            "govflow_replay_cases_in_flight", "Submitted, not yet judged", registry=r
        )

    def serve(self, port: int) -> int:
        server, _ = start_http_server(port, registry=self.registry)
        return int(server.server_port)


def report_ready(data_dir: Path, service: str, partitions: list[str], port: int | None) -> Path:
    """Record that ``service`` has joined its consumer group (see the module doc)."""
    ready = data_dir / "ready"
    ready.mkdir(parents=True, exist_ok=True)
    marker = ready / service
    marker.write_text(
        json.dumps({"pid": os.getpid(), "partitions": sorted(partitions), "metrics_port": port})
    )
    return marker
