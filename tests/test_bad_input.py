"""Bad files and arguments at the command line: one line naming the file, field or
address and the reason, exit code 2, no traceback (issue: reliability, bad files)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from tests.test_cli import ROOT, assert_one_line_error, govflow

SCENARIO = ROOT / "scenarios" / "demo.yaml"


def scenario_file(tmp_path: Path, change: dict | None = None, text: str | None = None) -> Path:
    path = tmp_path / "bad.yaml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
        return path
    data = {"base": str(SCENARIO), **(change or {})}
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def a_closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends: nobody listens


@pytest.mark.parametrize(
    ("change", "text", "needles"),
    [
        (None, "demand: [unclosed\n", ("bad.yaml", "invalid YAML")),
        (None, "- just\n- a list\n", ("bad.yaml", "mapping")),
        ({"demand": {"dragon_taming": {"per_year": 5}}}, None, ("dragon_taming", "unknown matter")),
        (
            {"demand": {"tax_handling": {"per_year": -1}}},
            None,
            ("demand.tax_handling.per_year", "greater than or equal to 0"),
        ),
        (
            {"horizon": {"start": "2021-03-05", "end": "2021-03-01"}},
            None,
            ("horizon", "empty horizon"),
        ),
        (
            {
                "faults": {
                    "outages": [
                        {
                            "department": "gas",
                            "start": "2021-03-02T12:00",
                            "end": "2021-03-02T08:00",
                        }
                    ]
                }
            },
            None,
            ("faults.outages", "end must be after start"),
        ),
        (
            {"faults": {"seizure_rate": 1.5}},
            None,
            ("faults.seizure_rate", "less than or equal to 1"),
        ),
    ],
)
def test_bad_scenarios_at_the_command_line(tmp_path, change, text, needles):
    path = scenario_file(tmp_path, change, text)
    result = govflow("simulate", "--scenario", str(path), "--replications", "1")
    assert_one_line_error(result, *needles)


def test_a_missing_scenario_file_is_named(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    for command in (["simulate", "--scenario"], ["plan", "--scenario"], ["replay", "--scenario"]):
        result = govflow(*command, str(missing), env={"GOVFLOW_BROKER_URL": "kafka://127.0.0.1:1"})
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        assert "nowhere.yaml" in " ".join(result.stderr.split())


def test_a_malformed_catalog_file_is_named(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text("matters:\n  - id: x\n    steps: {unclosed\n", encoding="utf-8")
    result = govflow("catalog", "--file", str(path))
    assert_one_line_error(result, str(path))


def test_a_broker_that_is_down_is_named_by_address():
    url = f"kafka://127.0.0.1:{a_closed_port()}"
    for command in (["up"], ["replay", "--scenario", str(SCENARIO)]):
        result = govflow(*command, env={"GOVFLOW_BROKER_URL": url})
        assert_one_line_error(result, url, "broker is down")


def test_verify_needs_a_run_directory(tmp_path):
    result = govflow("verify", "--run", str(tmp_path / "no-such-run"))
    assert_one_line_error(result, "no-such-run", "not a directory")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = govflow("verify", "--run", str(empty))
    assert_one_line_error(result, "ledger.jsonl", "no ledger")


def test_bad_numbers_on_the_command_line_are_refused():
    result = govflow("simulate", "--scenario", str(SCENARIO), "--replications", "0")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "replications" in result.stderr
