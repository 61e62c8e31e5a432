"""Crash and restart under load: SIGKILL a worker of property, tax and power in turn
while a replay of linked transfers runs, restart each, then audit the run.

    .venv/bin/python bench/chaos.py [--speed 14400] [--scenario scenarios/linked-faults.yaml]

The twin runs on the embedded broker in a fresh data directory. During the replay each
victim is killed with SIGKILL (no shutdown, no commit, no flush) and started again at
once, as a supervisor would; recovery is measured until the new worker has its
partitions back (``ready``) and until it publishes again (``working``). After the
replay, ``govflow verify`` audits the run. The last line is JSON: ``cases``, ``lost``,
``duplicates``, ``mismatched_units``, ``locked_units``, ``kills`` and the recovery
seconds of each kill. Goal: ``lost`` = 0 and ``duplicates`` = 0.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer  # noqa: E402

from services.core.catalog import default_catalog  # noqa: E402
from services.core.topics import Topics  # noqa: E402
from services.runtime import supervisor  # noqa: E402
from services.runtime.broker import bootstrap_of  # noqa: E402
from services.runtime.settings import Settings  # noqa: E402

VICTIMS = ("property", "tax", "power")


def govflow(env: dict[str, str], *args: str, **kwargs) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "govflow.cli", *args],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


class Outputs(threading.Thread):
    """Watches the departments' topics: when did each department last publish?"""

    def __init__(self, broker_url: str, departments: tuple[str, ...]) -> None:
        super().__init__(daemon=True)
        self.broker_url = broker_url
        self.topics = {Topics().department(d): d for d in departments}
        self.last: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        import asyncio

        async def watch() -> None:
            consumer = AIOKafkaConsumer(
                *self.topics, bootstrap_servers=bootstrap_of(self.broker_url), group_id=None
            )
            await consumer.start()
            try:
                while not self.stop.is_set():
                    batches = await consumer.getmany(timeout_ms=200)
                    now = time.time()
                    for tp, records in batches.items():
                        if records:
                            self.last[self.topics[tp.topic]] = now
            finally:
                await consumer.stop()

        asyncio.run(watch())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "linked-faults.yaml"))
    parser.add_argument("--speed", type=float, default=14_400.0)
    parser.add_argument("--first-kill", type=float, default=12.0, help="wall s into the replay")
    parser.add_argument("--between", type=float, default=25.0, help="wall s between kills")
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="govflow-chaos-"))
    env = {"GOVFLOW_DATA_DIR": str(data)}
    settings = Settings(data_dir=data)
    print(f"chaos: twin in {data}", flush=True)
    state = supervisor.up(settings, default_catalog())
    kills: list[dict[str, object]] = []
    outputs = Outputs(state.broker_url, VICTIMS)
    outputs.start()
    out = data / "run"
    try:
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
        for i, victim in enumerate(VICTIMS):
            time.sleep(max(0.0, started + args.first_kill + i * args.between - time.time()))
            if replay.poll() is not None:
                print(f"chaos: the replay ended before killing {victim}", flush=True)
                break
            record = supervisor.TwinState.load(supervisor.state_path(settings)).services[victim]
            killed_at = time.time()
            os.kill(record.pid, signal.SIGKILL)
            new_pid = supervisor.restart(settings, victim)
            ready = supervisor.wait_service_ready(settings, victim, timeout=180)
            ready_s = time.time() - killed_at if ready else None
            working_s = None
            deadline = time.time() + 120
            while time.time() < deadline and replay.poll() is None:
                if outputs.last.get(victim, 0.0) > killed_at + (ready_s or 0.0):
                    working_s = outputs.last[victim] - killed_at
                    break
                time.sleep(0.2)
            kill = {
                "service": victim,
                "old_pid": record.pid,
                "new_pid": new_pid,
                "at_s": round(killed_at - started, 1),
                "ready_s": round(ready_s, 2) if ready_s is not None else None,
                "working_s": round(working_s, 2) if working_s is not None else None,
            }
            kills.append(kill)
            print(f"chaos: killed {victim} at {kill['at_s']} s: {kill}", flush=True)
        replay_output, _ = replay.communicate(timeout=1800)
        print(replay_output[-1500:], flush=True)
        verify = govflow(env, "verify", "--run", str(out))
        verify_output, _ = verify.communicate(timeout=600)
        print(verify_output, flush=True)
        counts = json.loads(verify_output.strip().splitlines()[-1])
    finally:
        outputs.stop.set()
        supervisor.down(settings)
    result = {
        "benchmark": "chaos",
        "scenario": Path(args.scenario).name,
        "speed": args.speed,
        "replay_exit": replay.returncode,
        **counts,
        "kills": len(kills),
        "recovery": kills,
        "goal_met": counts["lost"] == 0 and counts["duplicates"] == 0 and len(kills) == 3,
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0 if result["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
