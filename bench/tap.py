"""A diagnostic tap for the chaos bench: every record of every topic, and every consumer
group's committed offsets, written to files beside a run's logs.

``bench/chaos.py --tap`` starts :func:`tap` in a process of its own once the twin is up
and calls :func:`write_committed` before the twin goes down, so a run that lost cases
can be read afterwards even on the embedded broker, which keeps nothing: was the lost
case's input ever handled (its state in the department's changelog), was its offset
committed, did the department publish anything for it?

``tap.jsonl`` — one line per record: ``topic``, ``partition``, ``offset``, ``key``,
``value`` (UTF-8, undecodable bytes replaced; null for a tombstone) and the record's
``timestamp`` (ms).  ``committed.json`` — ``{group: {"topic[partition]": offset}}``.

Reading a kept run afterwards — every record that names a case, in the order the broker
stamped them, each input record marked with whether each group's commit covers it:

    .venv/bin/python bench/tap.py /tmp/govflow-chaos-XXXX CASE_ID [CASE_ID …]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import re
import sys
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

EVERY_TOPIC = re.compile(r"^(?!__).*")  # not the broker's own (offsets, transactions)


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", errors="replace")


async def _tap(bootstrap: str, path: Path, stop: Any) -> None:
    with path.open("a", encoding="utf-8") as out:
        while not stop.is_set():
            consumer = AIOKafkaConsumer(
                bootstrap_servers=bootstrap,
                group_id=None,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
                metadata_max_age_ms=1000,  # new topics (changelogs) within a second
            )
            positions: dict[tuple[str, int], int] = {}
            try:
                await consumer.start()
                consumer.subscribe(pattern=EVERY_TOPIC.pattern)
                while not stop.is_set():
                    batches = await consumer.getmany(timeout_ms=200)
                    for tp, records in batches.items():
                        for record in records:
                            if record.offset < positions.get((tp.topic, tp.partition), 0):
                                continue  # read again after a reconnect
                            positions[(tp.topic, tp.partition)] = record.offset + 1
                            line = {
                                "topic": tp.topic,
                                "partition": tp.partition,
                                "offset": record.offset,
                                "key": _text(record.key),
                                "value": _text(record.value),
                                "timestamp": record.timestamp,
                            }
                            out.write(json.dumps(line, ensure_ascii=False) + "\n")
                    out.flush()
            except Exception:  # the broker went away: tap again once it is back
                await asyncio.sleep(0.5)
            finally:
                await consumer.stop()


def _run(bootstrap: str, path: str, stop: Any) -> None:  # pragma: no cover - a process
    asyncio.run(_tap(bootstrap, Path(path), stop))


def tap(bootstrap: str, path: Path) -> tuple[multiprocessing.Process, Any]:
    """Start the tap in a process; set the returned event to stop it."""
    stop = multiprocessing.Event()
    process = multiprocessing.Process(target=_run, args=(bootstrap, str(path), stop), daemon=True)
    process.start()
    return process, stop


async def committed_offsets(bootstrap: str) -> dict[str, dict[str, int]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        groups = await admin.list_consumer_groups()
        found: dict[str, dict[str, int]] = {}
        for group in groups:
            name = group[0] if isinstance(group, tuple) else group
            offsets = await admin.list_consumer_group_offsets(name)
            found[name] = {
                f"{tp.topic}[{tp.partition}]": meta.offset for tp, meta in offsets.items()
            }
        return found
    finally:
        await admin.close()


def write_committed(bootstrap: str, path: Path) -> None:
    try:
        found: Any = asyncio.run(committed_offsets(bootstrap))
    except Exception as exc:  # a diagnostic: say why, do not fail the run
        found = {"error": repr(exc)}
    path.write_text(json.dumps(found, indent=1, sort_keys=True), encoding="utf-8")


def trace(data: Path, case_ids: list[str]) -> list[str]:
    """The lines of :func:`main`'s report for ``case_ids``."""
    committed: dict[str, dict[str, int]] = {}
    if (data / "committed.json").exists():
        committed = json.loads((data / "committed.json").read_text(encoding="utf-8"))
    lines: list[str] = []
    records = [
        json.loads(line)
        for line in (data / "tap.jsonl").read_text(encoding="utf-8").splitlines()
        if any(case in line for case in case_ids)
    ]
    records.sort(key=lambda r: (r["timestamp"] or 0, r["topic"], r["offset"]))
    first = records[0]["timestamp"] if records else 0
    for r in records:
        where = f"{r['topic']}[{r['partition']}]"
        covered = [
            group
            for group, offsets in committed.items()
            if isinstance(offsets, dict) and offsets.get(where, -1) > r["offset"]
        ]
        value = (r["value"] or "<tombstone>")[:400]
        lines.append(
            f"+{((r['timestamp'] or 0) - first) / 1000:8.3f}s {where}@{r['offset']} "
            f"key={r['key']} committed-by={','.join(covered) or '-'}\n    {value}"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description="trace cases through a tapped chaos run")
    parser.add_argument("data", type=Path, help="the run's data dir (kept by bench/chaos.py)")
    parser.add_argument("cases", nargs="+")
    args = parser.parse_args()
    if not (args.data / "tap.jsonl").exists():
        print(f"{args.data / 'tap.jsonl'}: no tap here (run bench/chaos.py --tap)")
        return 2
    print("\n".join(trace(args.data, args.cases)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
