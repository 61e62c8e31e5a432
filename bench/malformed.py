"""Malformed input at volume: at least 1,000 malformed messages on every service input
topic (every family in simulator/malformed.py), interleaved with a replay of linked
transfers and exact duplicates of its events, on a fresh twin.

    .venv/bin/python bench/malformed.py [--per-family 84]

Checks that every malformed message is dead-lettered with a reason by every service
that reads its topic, that the cases complete and `govflow verify` holds, and that no
service restarted. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.core.catalog import default_catalog  # noqa: E402
from services.runtime import supervisor  # noqa: E402
from services.runtime.processes import process_alive  # noqa: E402
from services.runtime.settings import Settings  # noqa: E402
from simulator.malformed import FAMILIES, flood_during_replay  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-family", type=int, default=84, help="messages per family and topic")
    parser.add_argument("--speed", type=float, default=86_400.0)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="govflow-malformed-"))
    settings = Settings(data_dir=data)
    catalog = default_catalog()
    state = supervisor.up(settings, catalog)
    pids = {name: p.pid for name, p in state.services.items()}
    started = time.time()
    try:
        report = flood_during_replay(
            state.broker_url,
            catalog,
            list(state.services),
            ROOT / "scenarios" / "linked-faults.yaml",
            args.speed,
            data / "run",
            per_family=args.per_family,
            tag=f"flood{uuid.uuid4().hex[:8]}",
            letters_timeout=900.0,
        )
        now = supervisor.TwinState.load(supervisor.state_path(settings))
        restarted = sorted(
            name
            for name, p in (now.services.items() if now else [])
            if p.pid != pids[name] or not process_alive(p.pid)
        )
    finally:
        supervisor.down(settings)
    verify = report["verify"] or {}
    result = {
        "benchmark": "malformed",
        "families": len(FAMILIES),
        **{k: v for k, v in report.items() if k not in ("families", "verify")},
        "mismatched_readers": len(report["mismatched_readers"]),
        "verify": verify,
        "restarted": restarted,
        "elapsed_s": round(time.time() - started, 1),
    }
    result["goal_met"] = (
        report["per_topic"] >= 1000
        and result["letters"] == result["letters_expected"]
        and result["mismatched_readers"] == 0
        and result["letters_without_reason"] == 0
        and report["terminal"] == report["submitted"]
        and verify.get("lost") == 0
        and verify.get("duplicates") == 0
        and verify.get("mismatched_units") == 0
        and verify.get("locked_units") == 0
        and not restarted
    )
    for line in report["mismatched_readers"][:20]:
        print("mismatch:", line)
    print(json.dumps(result, ensure_ascii=False))
    return 0 if result["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
