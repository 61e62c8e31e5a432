"""Throughput of one department service against the cheapest Faust agent and a raw
aiokafka loop, on one broker (``--broker embedded``, the default, or ``--broker kafka``).

    .venv/bin/python bench/pipeline.py [--broker embedded|kafka] [--skip-end-to-end]

All sides move the same messages — tax-hall submissions (``tax_handling``, a one-step
matter of the tax department) — through the same broker, side by side in one run:

* raw: an aiokafka consumer group reads them and produces each one on (no decoding);
* Faust forwarder (``bench/forwarder_app.py``): the cheapest Faust agent — read, send on;
  no decoding, no tables — one by one and with ``stream.take``; and the cheapest
  *stateful* Faust agent: the same, plus one write of a changelog-backed table per
  message (the least a department that keeps its state durable does per event — its
  events/s ÷ the forwarder's is the ratio any such department can reach at best);
* department: a real ``services.tax.app`` Faust worker decodes each submission, plans the
  step, assigns a clerk, and publishes the completion (sim clock far ahead, so all work is
  due at once: this measures processing, not the sim clock).

End to end, the whole twin (``govflow up``: 15 workers and the broker) replays
``scenarios/demo.yaml`` (597 cases, every matter) at increasing speeds: cases per wall
second, and each case's wall-clock overhead — how long after the sim clock reached the
case's end its verdict arrived (goal ≥ 200 cases/s with p99 overhead < 1 s).

Prints figures, then one JSON object on the last line with ``ratio`` = department
events/s ÷ the one-by-one Faust forwarder's events/s (goal ≥ 0.5), the same against the
``stream.take`` forwarder and raw aiokafka, medians of 3 runs each, and the end to end
figures per speed.  The data dirs are removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cli import govflow  # noqa: E402  (bench/cli.py)

from services.core.catalog import default_catalog  # noqa: E402
from services.core.scenario import load_scenario, read_scenario_data  # noqa: E402
from services.core.topics import Topics  # noqa: E402
from services.runtime.broker import EmbeddedBroker, KafkaBroker, ensure_topics  # noqa: E402
from services.runtime.control import RunAnnounced  # noqa: E402
from services.runtime.topology import topic_partitions  # noqa: E402
from simulator.virtual import submissions  # noqa: E402

GOAL_RATIO = 0.5  # department ÷ the cheapest Faust agent (one by one)
GOAL_CASES_PER_S = 200.0
GOAL_P99_OVERHEAD_S = 1.0
MESSAGES = 5000
RUNS = 3
E2E_SPEEDS = (86_400.0, 864_000.0, 8_640_000.0)  # one, ten, a hundred sim days a second


def tax_submissions(count: int) -> list[bytes]:
    catalog = default_catalog()
    scenario = load_scenario(ROOT / "scenarios" / "shangrao-2021.yaml", catalog)
    events = [e for e in submissions(scenario, 1) if e.matter == "tax_handling"][:count]
    return [e.to_bytes() for e in events]


async def produce(bootstrap: str, topic: str, payloads: list[bytes], tag: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for i, value in enumerate(payloads):
            await producer.send(
                topic,
                value.replace(b'"case_id":"', f'"case_id":"{tag}.'.encode(), 1),
                key=str(i % 12).encode(),
            )
        await producer.flush()
    finally:
        await producer.stop()


async def raw_loop(bootstrap: str, payloads: list[bytes], run: int) -> float:
    """Consume → produce with aiokafka; events per second."""
    source, sink = f"bench.raw.in.{run}", f"bench.raw.out.{run}"
    await ensure_topics(bootstrap, {source: 12, sink: 12})
    await produce(bootstrap, source, payloads, f"raw{run}")
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"raw{run}",
        auto_offset_reset="earliest",
        enable_auto_commit=True,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await consumer.start()
    await producer.start()
    moved, started = 0, None
    try:
        while moved < len(payloads):
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            for records in batches.values():
                started = started or time.perf_counter()
                for record in records:
                    await producer.send(sink, record.value, key=record.key)
                    moved += 1
        await producer.flush()
        return moved / (time.perf_counter() - (started or time.perf_counter()))
    finally:
        await consumer.stop()
        await producer.stop()


async def department(bootstrap: str, payloads: list[bytes], run: int) -> float:
    """Submissions through a running tax worker; completions per second."""
    topics = Topics()
    consumer = AIOKafkaConsumer(
        topics.department("tax"),
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="latest",
    )
    await consumer.start()
    await consumer.seek_to_end()
    tag = f"dep{run}"
    started = time.perf_counter()
    await produce(bootstrap, topics.submissions, payloads, tag)
    done: set[str] = set()
    try:
        deadline = time.perf_counter() + 600
        while len(done) < len(payloads) and time.perf_counter() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    event = json.loads(record.value)
                    if event["case_id"].startswith(tag) and event["payload"]["outcome"] == "done":
                        done.add(event["case_id"])
        return len(done) / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def forwarder(
    broker: EmbeddedBroker | KafkaBroker, payloads: list[bytes], run: int, mode: str
) -> float:
    """The cheapest Faust agent (bench/forwarder_app.py): its events per second."""
    source, sink = f"bench.fwd.{mode}.in.{run}", f"bench.fwd.{mode}.out.{run}"
    await ensure_topics(broker.bootstrap, {source: 12, sink: 12})
    await produce(broker.bootstrap, source, payloads, f"fwd{run}")
    consumer = AIOKafkaConsumer(
        sink, bootstrap_servers=broker.bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    data = Path(tempfile.mkdtemp(prefix="govflow-bench-fwd-"))
    env = {
        **os.environ,
        "GOVFLOW_BENCH_BROKER": broker.url,
        "GOVFLOW_BENCH_MODE": mode,
        "GOVFLOW_BENCH_APP": f"bench-forwarder-{mode}-{run}-{os.getpid()}",
        "GOVFLOW_BENCH_SOURCE": source,
        "GOVFLOW_BENCH_SINK": sink,
        "GOVFLOW_BENCH_DATADIR": str(data),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "faust", "-A", "forwarder_app", "worker", "-l", "warn"],
        env=env,
        cwd=ROOT / "bench",
        stdout=(data / "worker.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    moved, started = 0, None
    try:
        deadline = time.perf_counter() + 600
        while moved < len(payloads) and time.perf_counter() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                started = started or time.perf_counter()
                moved += len(records)
        return moved / (time.perf_counter() - (started or time.perf_counter()))
    finally:
        await consumer.stop()
        worker.terminate()
        worker.wait(30)
        shutil.rmtree(data, ignore_errors=True)


async def announce(bootstrap: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    run = RunAnnounced.of(
        read_scenario_data(ROOT / "scenarios" / "shangrao-2021.yaml"),
        run_id="bench",
        seed=1,
        sim_epoch=time.time() + 10 * 365 * 86400,  # all work due
        wall_epoch=time.time(),
        speed=1.0,
    )
    await producer.send_and_wait(Topics().control, run.to_bytes())
    await producer.stop()


def end_to_end(broker_kind: str) -> list[dict[str, float]]:
    """The demo scenario through the whole twin at each speed."""
    data = Path(tempfile.mkdtemp(prefix="govflow-bench-e2e-"))
    env = {"GOVFLOW_DATA_DIR": str(data), "GOVFLOW_BROKER": broker_kind}
    started = govflow(env, "up")
    if started.returncode != 0:
        raise RuntimeError(f"govflow up failed: {started.stdout}{started.stderr}")
    figures = []
    try:
        for speed in E2E_SPEEDS:
            out = data / f"replay-{speed:.0f}"
            replay = govflow(
                env,
                "replay",
                "--scenario",
                str(ROOT / "scenarios" / "demo.yaml"),
                "--speed",
                str(speed),
                "--out",
                str(out),
            )
            if replay.returncode != 0:
                raise RuntimeError(f"replay at {speed:g}x failed: {replay.stdout}{replay.stderr}")
            system = json.loads((out / "summary.json").read_text(encoding="utf-8"))["system"]
            row = {
                "speed": speed,
                "cases": system["cases_terminal"],
                "wall_seconds": round(system["wall_seconds"], 2),
                "cases_per_s": round(system["cases_per_second"], 1),
                "overhead_p50_s": round(system["case_overhead_seconds"]["p50"], 3),
                "overhead_p99_s": round(system["case_overhead_seconds"]["p99"], 3),
            }
            print(
                f"end to end at {speed:>12,.0f}x: {row['cases']} cases in {row['wall_seconds']} s, "
                f"{row['cases_per_s']} cases/s, overhead per case p50 {row['overhead_p50_s']} s "
                f"p99 {row['overhead_p99_s']} s"
            )
            figures.append(row)
    finally:
        govflow(env, "down")
    shutil.rmtree(data, ignore_errors=True)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=("embedded", "kafka"), default="embedded")
    parser.add_argument("--skip-end-to-end", action="store_true")
    args = parser.parse_args()
    payloads = tax_submissions(MESSAGES)
    data = Path(tempfile.mkdtemp(prefix="govflow-bench-"))
    broker: EmbeddedBroker | KafkaBroker = (
        KafkaBroker(data / "kafka")
        if args.broker == "kafka"
        else EmbeddedBroker(log_path=data / "broker.log")
    )
    with broker:
        asyncio.run(ensure_topics(broker.bootstrap, topic_partitions(default_catalog(), Topics())))
        asyncio.run(announce(broker.bootstrap))
        env = {
            **os.environ,
            "GOVFLOW_BROKER_URL": broker.url,
            "GOVFLOW_DATA_DIR": str(data),
            "GOVFLOW_EMBEDDED_BROKER_QUIRKS": str(args.broker == "embedded").lower(),
        }
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "faust",
                "-A",
                "services.tax.app",
                "worker",
                "-l",
                "warn",
                "--without-web",
            ],
            env=env,
            cwd=ROOT,
            stdout=(data / "tax.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            while not (data / "ready" / "tax").exists():
                if worker.poll() is not None:
                    print(f"the tax worker exited; see {data / 'tax.log'}")
                    return 1
                time.sleep(0.2)
            raw_rates, dept_rates, each_rates, take_rates, table_rates = [], [], [], [], []
            for run in range(RUNS):
                raw_rates.append(asyncio.run(raw_loop(broker.bootstrap, payloads, run)))
                dept_rates.append(asyncio.run(department(broker.bootstrap, payloads, run)))
                each_rates.append(asyncio.run(forwarder(broker, payloads, run, "each")))
                take_rates.append(asyncio.run(forwarder(broker, payloads, run, "take")))
                table_rates.append(asyncio.run(forwarder(broker, payloads, run, "table")))
                print(
                    f"run {run}: raw {raw_rates[-1]:,.0f} events/s, "
                    f"tax department {dept_rates[-1]:,.0f} events/s, "
                    f"Faust forwarder {each_rates[-1]:,.0f} (take: {take_rates[-1]:,.0f}; "
                    f"with a table write: {table_rates[-1]:,.0f}) events/s"
                )
        finally:
            worker.terminate()
            worker.wait(30)
    with contextlib.suppress(OSError):
        shutil.rmtree(data)
    e2e = [] if args.skip_end_to_end else end_to_end(args.broker)
    raw, dept = statistics.median(raw_rates), statistics.median(dept_rates)
    each, take = statistics.median(each_rates), statistics.median(take_rates)
    table = statistics.median(table_rates)
    ratio = dept / each
    print(
        f"median on {args.broker}: raw aiokafka {raw:,.0f} events/s; Faust forwarder "
        f"(no work, no tables) {each:,.0f} events/s one by one, {take:,.0f} with stream.take; "
        f"with one table write per message {table:,.0f} events/s = {table / each:.3f} x the "
        "forwarder (the best ratio a department that keeps durable state can reach)"
    )
    print(
        f"median: department {dept:,.0f} events/s = {ratio:.3f} x the one-by-one forwarder "
        f"(goal >= {GOAL_RATIO}: {'met' if ratio >= GOAL_RATIO else 'MISSED'}), "
        f"{dept / take:.3f} x the take forwarder, {dept / table:.3f} x the table-writing "
        f"forwarder, {dept / raw:.3f} x raw aiokafka"
    )
    print(
        json.dumps(
            {
                "benchmark": "pipeline",
                "broker": args.broker,
                "messages": MESSAGES,
                "runs": RUNS,
                "raw_events_per_s": round(raw, 1),
                "department_events_per_s": round(dept, 1),
                "department_runs": [round(r, 1) for r in dept_rates],
                "faust_forwarder_events_per_s": round(each, 1),
                "faust_take_forwarder_events_per_s": round(take, 1),
                "faust_table_forwarder_events_per_s": round(table, 1),
                "faust_table_forwarder_runs": [round(r, 1) for r in table_rates],
                "faust_forwarder_runs": [round(r, 1) for r in each_rates],
                "table_forwarder_ratio": round(table / each, 4),
                "ratio_to_table_forwarder": round(dept / table, 4),
                "ratio": round(ratio, 4),
                "ratio_to_take_forwarder": round(dept / take, 4),
                "ratio_to_raw": round(dept / raw, 4),
                "goal_ratio": GOAL_RATIO,
                "goal_met": ratio >= GOAL_RATIO,
                "end_to_end": e2e,
                "goal_cases_per_s": GOAL_CASES_PER_S,
                "goal_p99_overhead_s": GOAL_P99_OVERHEAD_S,
                "end_to_end_goal_met": any(
                    r["cases_per_s"] >= GOAL_CASES_PER_S
                    and r["overhead_p99_s"] < GOAL_P99_OVERHEAD_S
                    for r in e2e
                ),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
