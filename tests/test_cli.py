"""The command line as a user runs it: a subprocess, real exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from services.core.catalog import DEFAULT_CATALOG_PATH, plan_text

ROOT = Path(__file__).resolve().parents[1]


def govflow(
    *args: str, env: dict[str, str] | None = None, columns: int = 160
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": str(columns), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "govflow.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=full_env,
        timeout=60,
    )


@pytest.fixture(scope="module")
def catalog_json() -> dict:
    result = govflow("catalog", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_catalog_json_has_the_documented_shape(catalog_json):
    units = {"working_days", "working_hours", "hours", "calendar_days", "count", "percent"}
    assert set(catalog_json) >= {"matters", "unmodelled", "inconsistencies"}
    for matter in catalog_json["matters"]:
        assert isinstance(matter["id"], str) and isinstance(matter["name"], str)
        assert isinstance(matter["attachment"], int)
        assert isinstance(matter["lead_department"], str)
        for target in matter["targets"] + matter["baseline"]:
            assert set(target) >= {"metric", "value", "unit", "scope", "source"}
            assert isinstance(target["value"], int | float)
            assert target["unit"] in units
        for step in matter["steps"]:
            assert set(step) >= {"id", "name", "department", "depends_on", "channel"}
            assert step["channel"] in ("online", "offline", "onsite")
            assert isinstance(step["depends_on"], list)
    for u in catalog_json["unmodelled"]:
        assert isinstance(u["attachment"], int) and u["reason"]
    for i in catalog_json["inconsistencies"]:
        assert isinstance(i["attachment"], int) and i["description"]
        assert isinstance(i["used"], int | float)


def test_catalog_json_covers_attachments_and_quotes_the_plan(catalog_json):
    attachments = {m["attachment"] for m in catalog_json["matters"]}
    attachments |= {u["attachment"] for u in catalog_json["unmodelled"]}
    assert attachments == set(range(1, 18))
    text = plan_text()
    for matter in catalog_json["matters"]:
        for target in matter["targets"] + matter["baseline"]:
            assert target["source"] in text


def test_catalog_table_is_readable():
    result = govflow("catalog")
    assert result.returncode == 0, result.stderr
    for needle in (
        "企业开办",
        "房电水气网联动过户",
        "出口整体通关",
        "≤ 0.8 h (mean)",
        "immediate (即时)",
        "Where the plan contradicts itself",
        "办理破产",
        "step:accept",  # domain text, not rich's :accept: emoji
    ):
        assert needle in result.stdout


def test_catalog_one_matter():
    result = govflow("catalog", "--json", "--matter", "mortgage_registration")
    assert [m["id"] for m in json.loads(result.stdout)["matters"]] == ["mortgage_registration"]


@pytest.mark.parametrize("matter", ["linked_transfer", "enterprise_establishment"])
def test_one_matter_reads_at_80_columns_with_nothing_cut_off(matter):
    from services.core.catalog import default_catalog

    result = govflow("catalog", "--matter", matter, columns=80)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert "…" not in result.stdout  # no cell truncated
    chosen = default_catalog().matter(matter)
    assert chosen.name in result.stdout and chosen.id in result.stdout
    flat = " ".join(result.stdout.split())
    for step in chosen.steps:
        assert step.id in flat and step.name in flat
    for target in chosen.targets:
        assert target.metric in flat
        assert " ".join(target.source.split())[:12] in flat.replace(" ", " ")


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    message = " ".join(result.stderr.split())
    assert message.startswith("error:")
    for needle in needles:
        assert needle in message, message


def test_broken_catalog_file_is_named_with_field_and_reason(tmp_path):
    data = yaml.safe_load(DEFAULT_CATALOG_PATH.read_text(encoding="utf-8"))
    data["matters"][1]["steps"][0]["channel"] = "carrier pigeon"
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    result = govflow("catalog", "--file", str(path))
    assert_one_line_error(
        result, str(path), "matters[1].steps[0].channel", "'online', 'offline' or 'onsite'"
    )


def test_catalog_from_environment_is_used(tmp_path):
    path = tmp_path / "missing.yaml"
    result = govflow("catalog", env={"GOVFLOW_CATALOG_PATH": str(path)})
    assert_one_line_error(result, str(path), "file not found")


def test_unknown_matter_is_an_input_error():
    result = govflow("catalog", "--matter", "dragon_taming")
    assert_one_line_error(result, "--matter", "dragon_taming", "unknown matter")


def test_bad_environment_is_an_input_error():
    result = govflow("catalog", env={"GOVFLOW_SPEED": "fast"})
    assert_one_line_error(result, "GOVFLOW_SPEED")


def test_consoles_print_scopes_as_text():
    from govflow.cli import console, err_console

    for c in (console, err_console):
        with c.capture() as captured:
            c.print("power step:accept: 7 counties")
        assert "step:accept: 7" in captured.get()
