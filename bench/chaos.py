"""Crash and restart under load: SIGKILL a worker of property, tax and power in turn
(and, with ``--kill-broker``, Apache Kafka itself) while a replay of linked transfers
runs, restart each, then audit the run — ``--runs`` times in a row.

    .venv/bin/python bench/chaos.py [--runs 10] [--broker embedded|kafka] [--load]
                                    [--kill-broker] [--speed 14400] [--tap]
                                    [--scenario scenarios/linked-faults.yaml]

Each run starts a fresh twin (``govflow up --broker …``) in a fresh data directory.
During the replay each victim is killed with SIGKILL (no shutdown, no commit, no flush)
and started again at once, as a supervisor would; recovery is measured from the
restart until the new worker has its partitions back (``ready_s``), until it
publishes again (``working_s``), until that event was due by the run's sim clock
(``due_s``; negative: overdue) and how late it came (``late_s`` = ``working_s`` −
max(``due_s``, 0): a worker with nothing due — a weekend — cannot publish, and is not
late for it).  ``--kill-broker`` (Kafka only) kills the broker after
the workers, and starts it again on its log dirs.  ``--load`` runs two busy processes
beside the twin for the whole run (the machine has two cores).  After the replay
``govflow verify`` audits the run.

A run's data directory is removed when the run met the goal (unless ``--keep``) and kept
(its path in the JSON, with the workers' and the broker's logs) when it did not.  The
last line is JSON: one entry per run (``lost``, ``duplicates``, … and each kill's
recovery) and the totals.  Goal: ``lost`` = 0 and ``duplicates`` = 0 in every run; recovery goal
(``recovered_within_5s``): every restarted worker's ``late_s`` ≤ 5 s.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from aiokafka import AIOKafkaConsumer  # noqa: E402
from tap import tap, write_committed  # noqa: E402  (bench/tap.py)

from services.core.catalog import default_catalog  # noqa: E402
from services.core.topics import Topics  # noqa: E402
from services.runtime import offsets, supervisor  # noqa: E402
from services.runtime.broker import bootstrap_of  # noqa: E402
from services.runtime.settings import Settings  # noqa: E402

VICTIMS = ("property", "tax", "power")
RECOVERY_GOAL_S = 5.0


def govflow(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "govflow.cli", *args],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def busy() -> None:  # pragma: no cover - a load generator
    while True:
        sum(i * i for i in range(10_000))


class Outputs(threading.Thread):
    """Watches the departments' topics — when did each department last publish, and
    when was that work due? — and the control topic (the run's sim clock)."""

    def __init__(self, broker_url: str, departments: tuple[str, ...]) -> None:
        super().__init__(daemon=True)
        self.broker_url = broker_url
        self.topics = {Topics().department(d): d for d in departments}
        self.control = Topics().control
        self.last: dict[str, float] = {}
        self.published: dict[str, list[tuple[float, float]]] = {d: [] for d in departments}
        self.clock: tuple[float, ...] | None = None  # sim_epoch, wall_epoch, speed
        self.stop = threading.Event()

    def record(self, topic: str, value: bytes | None, now: float) -> None:
        if topic == self.control:
            try:
                run = json.loads(value or b"{}")
                self.clock = tuple(float(run[f]) for f in ("sim_epoch", "wall_epoch", "speed"))
            except (ValueError, KeyError, TypeError):
                pass
            return
        department = self.topics[topic]
        self.last[department] = now
        try:
            occurred = datetime.fromisoformat(json.loads(value or b"{}")["occurred_at"])
        except (ValueError, KeyError, TypeError):
            return
        self.published[department].append((now, occurred.timestamp()))

    def due_after(self, service: str, since: float) -> float | None:
        """Wall seconds from ``since`` until the first event ``service`` published after
        it was due by the run's sim clock (negative: it was already overdue)."""
        if self.clock is None:
            return None
        sim_epoch, wall_epoch, speed = self.clock
        for received, occurred in self.published[service]:
            if received > since:
                return wall_epoch + (occurred - sim_epoch) / speed - since
        return None

    def run(self) -> None:
        import asyncio

        async def watch() -> None:
            while not self.stop.is_set():
                consumer = AIOKafkaConsumer(
                    *self.topics,
                    self.control,
                    bootstrap_servers=bootstrap_of(self.broker_url),
                    group_id=None,
                )
                try:
                    await consumer.start()
                    while not self.stop.is_set():
                        batches = await consumer.getmany(timeout_ms=200)
                        now = time.time()
                        for tp, records in batches.items():
                            for message in records:
                                # when the producer made it, not when we fetched it: a
                                # record of the killed worker fetched late is not the
                                # new worker's
                                made = message.timestamp / 1000 if message.timestamp else now
                                self.record(tp.topic, message.value, made)
                except Exception:  # the broker was killed: watch again once it is back
                    await asyncio.sleep(0.5)
                finally:
                    await consumer.stop()

        asyncio.run(watch())

    def published_since(self, service: str, since: float, timeout: float) -> float | None:
        """Wall seconds from ``since`` until ``service`` published again (None: never)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.last.get(service, 0.0) > since:
                return self.last[service] - since
            time.sleep(0.05)
        return None


def kill_worker(settings: Settings, outputs: Outputs, victim: str, started: float) -> dict:
    record = supervisor.TwinState.load(supervisor.state_path(settings)).services[victim]
    killed_at = time.time()
    os.kill(record.pid, signal.SIGKILL)
    new_pid = supervisor.restart(settings, victim)
    restarted_at = time.time()
    ready = supervisor.wait_service_ready(settings, victim, timeout=180)
    ready_s = time.time() - restarted_at if ready else None
    working_s = outputs.published_since(victim, restarted_at, timeout=120)
    due_s = outputs.due_after(victim, restarted_at)
    # how much later than its work was due the new worker published it: a worker with
    # nothing due (a weekend, a lull) cannot publish, and is not late for it
    late_s = None if working_s is None or due_s is None else working_s - max(due_s, 0.0)
    return {
        "service": victim,
        "old_pid": record.pid,
        "new_pid": new_pid,
        "at_s": round(killed_at - started, 1),
        "ready_s": round(ready_s, 2) if ready_s is not None else None,
        "working_s": round(working_s, 2) if working_s is not None else None,
        "due_s": round(due_s, 2) if due_s is not None else None,
        "late_s": round(late_s, 2) if late_s is not None else None,
    }


def kill_broker(settings: Settings, outputs: Outputs, started: float) -> dict:
    state = supervisor.TwinState.load(supervisor.state_path(settings))
    killed_at = time.time()
    os.kill(state.broker_pid, signal.SIGKILL)
    time.sleep(1.0)  # the workers notice: connections refused
    new_pid = supervisor.restart_broker(settings)
    restarted_at = time.time()
    working = {v: outputs.published_since(v, restarted_at, timeout=180) for v in VICTIMS}
    return {
        "service": "broker",
        "old_pid": state.broker_pid,
        "new_pid": new_pid,
        "at_s": round(killed_at - started, 1),
        "back_s": round(restarted_at - killed_at, 2),
        "working_s": {v: round(s, 2) if s is not None else None for v, s in working.items()},
    }


def offset_guard_lines(logs: Path) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Per worker log: how often the consumer's position jumped ahead and was rewound, and
    the lines saying records fetched but never handled were read again
    (services/runtime/offsets.py)."""
    rewinds: dict[str, int] = {}
    rereads: dict[str, list[str]] = {}
    for log_file in sorted(logs.glob("*.log")):
        text = log_file.read_text(errors="replace")
        if jumps := text.count(offsets.JUMPED) + text.count(offsets.NOT_IN_LOG):
            rewinds[log_file.stem] = jumps
        if stranded := [line[-160:] for line in text.splitlines() if offsets.STRANDED in line]:
            rereads[log_file.stem] = stranded
    return rewinds, rereads


def one_run(args: argparse.Namespace, number: int) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="govflow-chaos-"))
    env = {"GOVFLOW_DATA_DIR": str(data), "GOVFLOW_BROKER": args.broker}
    settings = Settings(data_dir=data, broker=args.broker)
    print(f"chaos run {number}: twin on {args.broker} in {data}", flush=True)
    load = [multiprocessing.Process(target=busy, daemon=True) for _ in range(2 if args.load else 0)]
    for p in load:
        p.start()
    kills: list[dict[str, Any]] = []
    counts: dict[str, Any] = {}
    replay_exit: int | None = None
    tapping = None
    try:
        state = supervisor.up(settings, default_catalog())
        outputs = Outputs(state.broker_url, VICTIMS)
        outputs.start()
        if args.tap:
            tapping = tap(bootstrap_of(state.broker_url), data / "tap.jsonl")
        out = data / "run"
        replay = govflow(
            env,
            "replay",
            "--scenario",
            args.scenario,
            "--speed",
            str(args.speed),
            "--out",
            str(out),
        )
        started = time.time()
        targets: list[str] = [*VICTIMS, *(["broker"] if args.kill_broker else [])]
        for i, victim in enumerate(targets):
            time.sleep(max(0.0, started + args.first_kill + i * args.between - time.time()))
            if replay.poll() is not None:
                print(f"chaos: the replay ended before killing {victim}", flush=True)
                break
            if victim == "broker":
                kill = kill_broker(settings, outputs, started)
            else:
                kill = kill_worker(settings, outputs, victim, started)
            kills.append(kill)
            print(f"chaos: killed {victim} at {kill['at_s']} s: {kill}", flush=True)
        replay_output, _ = replay.communicate(timeout=1800)
        replay_exit = replay.returncode
        print(replay_output[-600:], flush=True)
        verify = govflow(env, "verify", "--run", str(out))
        verify_output, _ = verify.communicate(timeout=600)
        counts = json.loads(verify_output.strip().splitlines()[-1])
        outputs.stop.set()
        if tapping is not None:
            time.sleep(2.0)  # the tap catches up
            write_committed(bootstrap_of(state.broker_url), data / "committed.json")
            tapping[1].set()
            tapping[0].join(10)
    finally:
        supervisor.down(settings)
        for p in load:
            p.kill()
    workers = [k for k in kills if k["service"] != "broker"]
    rewinds, rereads = offset_guard_lines(data / "logs")
    recovered = all(k["late_s"] is not None and k["late_s"] <= RECOVERY_GOAL_S for k in workers)
    result: dict[str, Any] = {
        "run": number,
        "replay_exit": replay_exit,
        **counts,
        "kills": len(kills),
        "recovery": kills,
        "recovered_within_5s": recovered,
        "position_jumps_rewound": rewinds,
        "stranded_reread": rereads,
        "goal_met": counts.get("lost") == 0
        and counts.get("duplicates") == 0
        and len(kills) == len(VICTIMS) + (1 if args.kill_broker else 0),
    }
    if result["goal_met"] and not args.keep:
        shutil.rmtree(data, ignore_errors=True)
    else:
        result["kept"] = str(data)  # the logs (of a failed run, or --keep)
    print(f"chaos run {number}: {json.dumps(result, ensure_ascii=False)}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "linked-faults.yaml"))
    parser.add_argument("--speed", type=float, default=14_400.0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--broker", choices=("embedded", "kafka"), default="embedded")
    parser.add_argument("--load", action="store_true", help="two busy processes beside the twin")
    parser.add_argument(
        "--kill-broker", action="store_true", help="also SIGKILL Kafka and restart it"
    )
    parser.add_argument(
        "--tap",
        action="store_true",
        help="record every topic and the committed offsets in the run's data dir (bench/tap.py)",
    )
    parser.add_argument("--keep", action="store_true", help="keep every run's data dir")
    parser.add_argument("--first-kill", type=float, default=12.0, help="wall s into the replay")
    parser.add_argument("--between", type=float, default=20.0, help="wall s between kills")
    args = parser.parse_args()
    if args.kill_broker and args.broker != "kafka":
        parser.error("--kill-broker needs --broker kafka (the embedded broker keeps no log)")

    runs = [one_run(args, n) for n in range(1, args.runs + 1)]
    restarts = [k for r in runs for k in r["recovery"] if k["service"] != "broker"]
    working = [k["working_s"] for k in restarts]
    measured = sorted(w for w in working if w is not None)

    def median_max(field: str) -> tuple[float | None, float | None]:
        values = sorted(k[field] for k in restarts if k.get(field) is not None)
        return (values[len(values) // 2], values[-1]) if values else (None, None)

    ready = median_max("ready_s")
    late = median_max("late_s")
    result = {
        "benchmark": "chaos",
        "scenario": Path(args.scenario).name,
        "broker": args.broker,
        "load": args.load,
        "kill_broker": args.kill_broker,
        "speed": args.speed,
        "runs": len(runs),
        "lost_per_run": [r.get("lost") for r in runs],
        "duplicates_per_run": [r.get("duplicates") for r in runs],
        "working_s_max": max(measured) if measured else None,
        "working_s_median": measured[len(measured) // 2] if measured else None,
        "ready_s_median": ready[0],
        "ready_s_max": ready[1],
        "late_s_median": late[0],
        "late_s_max": late[1],
        "restarts_not_publishing": sum(1 for w in working if w is None),
        "goal_met": all(r["goal_met"] for r in runs),
        "recovered_within_5s": all(r["recovered_within_5s"] for r in runs),
        "every_run": runs,
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0 if result["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
