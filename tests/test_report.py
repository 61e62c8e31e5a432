"""HTML reports: self-contained, escaped, Chinese names in tables, targets marked by status."""

from __future__ import annotations

import copy
import html
import re
from typing import Any

import pytest

from simulator.report import write_comparison_report, write_report
from simulator.summary import Summary


def summary_of(data: dict[str, Any]) -> Summary:
    """A typed summary from the plain dict the tests edit (missing parts: empty)."""
    base = {
        "scenario": "empty",
        "replications": 1,
        "seed": 0,
        "horizon": {"start": "2021-01-01", "end": "2021-01-01"},
        "warmup_days": 0,
        "wall_seconds": 0.0,
        "matters": {},
        "departments": {},
        "bottlenecks": [],
    }
    return Summary.model_validate({**base, **data})


def _target(value: float, attainment: float | None, **extra: Any) -> dict[str, Any]:
    target = {
        "metric": "case_duration",
        "value": value,
        "unit": "working_days",
        "scope": "case",
        "statistic": "each",
        "bound": "at_most",
        "year": 2021,
        "applies_to": None,
        "attainment": attainment,
        "ci95": None if attainment is None else [attainment - 0.02, min(1.0, attainment + 0.02)],
        "measured": None if attainment is None else 0.4,
        "note": "not simulated: needs online data" if attainment is None else None,
    }
    target.update(extra)
    return target


def _summary() -> dict[str, Any]:
    edges = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    return {
        "scenario": "shangrao-2021",
        "description": "Baseline year of the plan",
        "replications": 4,
        "seed": 20210101,
        "horizon": {"start": "2021-01-01", "end": "2021-12-31"},
        "warmup_days": 0,
        "wall_seconds": 12.3,
        "matters": {
            "enterprise_establishment": {
                "name": "企业开办",
                "attachment": 1,
                "cases": 72000,
                "cases_per_replication": 18000.0,
                "rejected": 0,
                "latency": {
                    "unit": "working_days",
                    "mean": 0.4,
                    "p50": 0.3,
                    "p90": 0.8,
                    "p95": 1.1,
                    "p99": 2.0,
                    "ci95_mean": [0.39, 0.41],
                    "histogram": {"edges": edges, "counts": [400, 300, 150, 80, 20]},
                },
                # passes (97.5%) and fails (60%)
                "targets": [
                    _target(1.0, 0.975),
                    _target(0.5, 0.6, statistic="mean", scope="matter"),
                ],
            },
            "property_registration": {
                "name": "不动产登记",
                "attachment": 2,
                "cases": 8000,
                "cases_per_replication": 2000.0,
                "rejected": 3,
                "latency": {
                    "unit": "working_days",
                    "mean": 2.0,
                    "p50": 1.8,
                    "p90": 3.0,
                    "p95": 3.5,
                    "p99": 5.0,
                    "ci95_mean": None,
                    "histogram": {"edges": [0.0, 2.0, 4.0, 6.0], "counts": [50, 40, 10]},
                },
                "targets": [
                    _target(3.0, 0.85),
                    _target(90.0, None, metric="online_share", unit="percent", bound="at_least"),
                ],
            },
            "water_connection": {
                "name": "用水报装",
                "attachment": 3,
                "cases": 0,
                "cases_per_replication": 0.0,
                "rejected": 0,
                "latency": {
                    "unit": "working_hours",
                    "mean": None,
                    "p50": None,
                    "p90": None,
                    "p95": None,
                    "p99": None,
                    "ci95_mean": None,
                    "histogram": {"edges": [], "counts": []},
                },
                "targets": [_target(8.0, None, unit="working_hours")],
            },
        },
        "departments": {
            "registry": {
                county: {"clerks": 6, "utilization": u, "mean_wait": 0.8, "max_queue": 12}
                for county, u in zip(
                    ("xinzhou", "guangfeng", "yushan"), (0.71, 0.55, 0.42), strict=True
                )
            },
            "tax": {
                county: {"clerks": 5, "utilization": u, "mean_wait": 3.2, "max_queue": 40}
                for county, u in zip(
                    ("xinzhou", "guangfeng", "yushan"), (0.93, 0.81, 0.6), strict=True
                )
            },
        },
        "bottlenecks": [
            {
                "department": "tax",
                "county": "xinzhou",
                "clerks": 5,
                "utilization": 0.93,
                "mean_wait": 3.2,
                "max_queue": 40,
            },
            {
                "department": "tax",
                "county": "guangfeng",
                "clerks": 5,
                "utilization": 0.81,
                "mean_wait": 1.9,
                "max_queue": 22,
            },
        ],
    }


def _assert_self_contained(text: str) -> None:
    assert text.startswith("<!DOCTYPE html>")
    assert text.count("<html") == 1
    assert text.count("</html>") == 1
    assert text.count("<body") == 1
    assert "http://" not in text
    assert "https://" not in text
    assert "<script" not in text.lower()
    assert "<link" not in text.lower()
    assert "<img" not in text.lower()
    assert "@import" not in text
    assert "<?xml" not in text
    assert "<!DOCTYPE svg" not in text
    assert "<image" not in text  # plots are vector, no embedded rasters
    assert "data:" not in text
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?!#)""", text), "external reference"


def _row_of(text: str, needle: str) -> str:
    """The table row (<tr>…</tr>) whose target cell contains ``needle``."""
    for row in re.findall(r"<tr>.*?</tr>", text, flags=re.S):
        if needle in row:
            return row
    raise AssertionError(f"no row with {needle!r}")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("report") / "nested" / "report.html"
    written = write_report(summary_of(_summary()), path)
    assert written == path
    assert path.is_file()
    return path.read_text(encoding="utf-8")


def test_report_is_a_single_self_contained_html_document(report):
    _assert_self_contained(report)
    assert report.count("<svg") >= 4
    assert report.count("<svg") == report.count("</svg>")
    assert '<meta charset="utf-8">' in report
    assert "<style>" in report


def test_svg_ids_do_not_clash_between_plots(report):
    ids = re.findall(r'\bid="([^"]+)"', report)
    assert ids, "plots define ids"
    assert len(ids) == len(set(ids))
    defined = set(ids)
    for ref in re.findall(r'href="#([^"]+)"', report) + re.findall(r"url\(#([^)]+)\)", report):
        assert ref in defined


def test_header_and_sections(report):
    assert "shangrao-2021" in report
    assert "Baseline year of the plan" in report
    assert "20210101" in report
    assert "2021-01-01" in report
    assert "2021-12-31" in report
    for heading in (
        "Target attainment by matter",
        "Latency distribution per matter against its target",
        "Clerk utilisation, department × county",
        "Bottlenecks",
    ):
        assert f"<h2>{html.escape(heading)}</h2>" in report


def test_chinese_names_in_tables_and_ids_in_plots(report):
    assert html.escape("企业开办") in report
    assert html.escape("不动产登记") in report
    assert "enterprise_establishment" in report
    # the chinese names are only in the HTML, never inside the SVG plots
    for svg in re.findall(r"<svg.*?</svg>", report, flags=re.S):
        assert "企业开办" not in svg
        assert "enterprise_establishment" in svg or "tax" in svg or "registry" in svg


def test_attainment_cells_are_marked_by_status(report):
    passing = _row_of(report, "case_duration case ≤ 1 wd")
    failing = _row_of(report, "case_duration matter ≤ 0.5 wd")
    warning = _row_of(report, "case_duration case ≤ 3 wd")
    missing = _row_of(report, "online_share case ≥ 90%")
    assert "97.5%" in passing
    assert "[95.5–99.5]" in passing  # the CI
    assert "att-pass" in passing and "att-fail" not in passing
    assert "60.0%" in failing
    assert "att-fail" in failing and "att-pass" not in failing
    assert "85.0%" in warning and "att-warn" in warning
    assert "att-na" in missing
    assert "not simulated: needs online data" in missing
    assert ".att-pass" in report and ".att-fail" in report  # the classes are styled


def test_latency_figures_and_bottleneck_table(report):
    assert "0.30 wd" in report  # p50 of enterprise_establishment
    assert "1.10 wd" in report  # p95
    assert "72,000" in report
    assert "93.0%" in report  # bottleneck utilisation
    assert "3.20 wh" in report  # its mean wait, in working hours
    bottlenecks = report.split("<h2>Bottlenecks</h2>", 1)[1]
    assert bottlenecks.index("xinzhou") < bottlenecks.index("guangfeng")  # ranking kept


def test_text_is_escaped(tmp_path):
    summary = _summary()
    summary["description"] = "<script>alert('x')</script> & more"
    summary["scenario"] = "a<b>"
    summary["matters"]["enterprise_establishment"]["name"] = "<b>企业开办</b>"
    text = write_report(summary_of(summary), tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<script" not in text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in text
    assert "a&lt;b&gt;" in text
    assert "&lt;b&gt;企业开办&lt;/b&gt;" in text
    assert "<b>" not in text


def test_custom_title_is_escaped(tmp_path):
    summary = _summary()
    summary["matters"] = {}  # keep it fast: no plots needed here
    text = write_report(
        summary_of(summary), tmp_path / "r.html", title="年度报告 & test"
    ).read_text(encoding="utf-8")
    assert "<title>年度报告 &amp; test</title>" in text
    assert "<h1>年度报告 &amp; test</h1>" in text


def test_empty_summary(tmp_path):
    empty = summary_of({"scenario": "empty"})
    text = write_report(empty, tmp_path / "empty.html").read_text(encoding="utf-8")
    _assert_self_contained(text)
    assert "<svg" not in text
    assert "No matters in this summary." in text
    assert "No bottlenecks reported." in text


def test_single_replication_without_cis(tmp_path):
    summary = _summary()
    summary["replications"] = 1
    for matter in summary["matters"].values():
        matter["latency"]["ci95_mean"] = None
        for target in matter["targets"]:
            target["ci95"] = None
    text = write_report(summary_of(summary), tmp_path / "one.html").read_text(encoding="utf-8")
    _assert_self_contained(text)
    assert "97.5%" in text
    assert "[95.5–99.5]" not in text


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory) -> str:
    a = _summary()
    b = copy.deepcopy(a)
    b["scenario"] = "shangrao-2021-more-clerks"
    matter = b["matters"]["enterprise_establishment"]
    matter["targets"][0]["attainment"] = 0.99  # 97.5% -> 99.0%: +1.5 pp
    matter["targets"][0]["ci95"] = [0.98, 1.0]
    matter["latency"]["p50"] = 0.2  # 0.30 -> 0.20: -0.10 wd
    del b["matters"]["water_connection"]
    path = tmp_path_factory.mktemp("cmp") / "cmp.html"
    assert write_comparison_report(summary_of(a), summary_of(b), path) == path
    return path.read_text(encoding="utf-8")


def test_comparison_is_self_contained_with_both_labels(comparison):
    _assert_self_contained(comparison)
    assert comparison.count("<svg") >= 1
    assert "A: shangrao-2021<" in comparison
    assert "B: shangrao-2021-more-clerks<" in comparison
    assert html.escape("企业开办") in comparison


def test_comparison_shows_differences(comparison):
    row = _row_of(comparison, "case_duration case ≤ 1 wd")
    assert "97.5%" in row and "99.0%" in row
    assert "+1.5 pp" in row
    assert "delta-better" in row
    p50 = _row_of(comparison, "Latency p50")
    assert "-0.10 wd" in p50
    assert "delta-better" in p50
    unchanged = _row_of(comparison, "case_duration matter ≤ 0.5 wd")
    assert "+0.0 pp" in unchanged
    assert "delta-" not in unchanged
    assert "Only in A." in comparison  # water_connection was dropped from B


def test_comparison_custom_labels_and_same_names(tmp_path):
    a = _summary()
    b = copy.deepcopy(a)
    b["matters"]["enterprise_establishment"]["targets"][1]["attainment"] = 0.5
    text = write_comparison_report(
        summary_of(a), summary_of(b), tmp_path / "c.html", labels=("基线", "<new>")
    ).read_text(encoding="utf-8")
    _assert_self_contained(text)
    assert "A: 基线" in text
    assert "B: &lt;new&gt;" in text
    assert "<new>" not in text
    row = _row_of(text, "case_duration matter ≤ 0.5 wd")
    assert "-10.0 pp" in row and "delta-worse" in row
    same = write_comparison_report(summary_of(a), summary_of(a), tmp_path / "same.html")
    same = same.read_text(encoding="utf-8")
    assert "shangrao-2021 (A)" in same and "shangrao-2021 (B)" in same


def test_comparison_of_empty_summaries(tmp_path):
    text = write_comparison_report(
        summary_of({}), summary_of({"scenario": "other"}), tmp_path / "e.html"
    ).read_text(encoding="utf-8")
    _assert_self_contained(text)
    assert "No matters in either summary." in text
