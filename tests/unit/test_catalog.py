"""The catalog: complete, quoted verbatim, internally consistent, and strict on bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from services.core.catalog import (
    ATTACHMENTS,
    DEFAULT_CATALOG_PATH,
    PLAN_TEXT_PATH,
    Catalog,
    default_catalog,
    load_catalog,
    plan_text,
)
from services.core.errors import InputError

SHARED_SEED = Path(__file__).resolve().parents[3] / "shared" / "seed" / "000_fb5c1f129d9e99e2.txt"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return default_catalog()


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load(DEFAULT_CATALOG_PATH.read_text(encoding="utf-8"))


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.skipif(not SHARED_SEED.exists(), reason="shared/seed is not beside this checkout")
def test_shipped_plan_text_is_the_seed():
    assert PLAN_TEXT_PATH.read_bytes() == SHARED_SEED.read_bytes()


def test_every_source_quotes_the_plan(catalog):
    text = plan_text()
    quotes = [t.source for m in catalog.matters for t in (*m.targets, *m.baseline)]
    quotes += [c.source for m in catalog.matters for c in m.costs]
    quotes += [i.source for i in catalog.indicators]
    assert len(quotes) > 80
    missing = [q for q in quotes if q not in text]
    assert missing == []


def test_every_attachment_is_modelled_or_explained(catalog):
    modelled = {m.attachment for m in catalog.matters}
    unmodelled = {u.attachment for u in catalog.unmodelled}
    assert modelled | unmodelled == set(ATTACHMENTS)
    assert not modelled & unmodelled
    assert {1, 2, 3, 4, 5, 6, 12, 13} <= modelled
    assert all(len(u.reason) > 20 for u in catalog.unmodelled)


def headline(catalog: Catalog, matter: str, scope: str, year: int = 2021):
    return [
        (t.value, t.unit, t.statistic)
        for t in catalog.matter(matter).targets
        if t.scope == scope and t.year == year
    ]


@pytest.mark.parametrize(
    ("matter", "scope", "expected"),
    [
        ("enterprise_establishment", "case", (1, "working_days", "each")),
        ("enterprise_establishment", "step:registration", (0.5, "working_days", "each")),
        ("enterprise_deregistration", "step:deregistration", (2, "working_days", "each")),
        ("power_low_voltage", "sum:accept,scheme_reply,connection", (6, "working_days", "each")),
        ("power_low_voltage", "step:approval", (5, "working_days", "each")),
        ("power_high_voltage_single", "step:approval", (10, "working_days", "each")),
        ("water_connection", "sum:apply,survey_design,acceptance", (7, "working_days", "each")),
        ("water_connection", "service_steps", (3, "count", "each")),
        ("gas_connection", "sum:apply,survey_design,acceptance", (7, "working_days", "each")),
        ("water_connection", "step:permits", (10, "working_days", "each")),
        ("water_complaint", "case", (3, "working_days", "each")),
        ("property_transfer", "case", (3, "working_days", "each")),
        ("mortgage_registration", "case", (1, "working_days", "each")),
        ("seizure_registration", "case", (0, "working_days", "each")),
        ("cancellation_registration", "case", (0, "working_days", "each")),
        ("objection_registration", "case", (0, "working_days", "each")),
        ("tax_handling", "annual", (110, "hours", "each")),
        ("import_clearance", "case", (26, "hours", "mean")),
        ("export_clearance", "case", (0.8, "hours", "mean")),
        ("procurement_challenge", "case", (7, "working_days", "each")),
        ("procurement_complaint", "case", (30, "working_days", "each")),
        ("procurement_award", "step:determine_winner", (5, "working_days", "each")),
        ("procurement_award", "step:sign_contract", (30, "calendar_days", "each")),
        ("procurement_award", "step:payment", (30, "calendar_days", "each")),
        ("tender_objection", "case", (5, "working_days", "each")),
        ("rule_consultation", "case", (30, "calendar_days", "each")),
    ],
)
def test_plan_targets(catalog, matter, scope, expected):
    assert expected in headline(catalog, matter, scope)


def test_baselines_of_2020(catalog):
    assert headline(catalog, "property_transfer", "case", 2020) == []  # baselines are apart
    base = {(m.id, t.scope): t.value for m in catalog.matters for t in m.baseline}
    assert base[("property_transfer", "case")] == 5
    assert base[("mortgage_registration", "case")] == 2
    assert base[("water_connection", "sum:apply,survey_design,acceptance")] == 12
    assert base[("gas_connection", "sum:apply,survey_design,acceptance")] == 10
    assert base[("water_connection", "service_steps")] == 6
    assert base[("power_low_voltage", "case")] == 25


def test_export_rebate_has_both_averages(catalog):
    rebate = catalog.matter("export_tax_rebate")
    means = sorted((t.value, t.applies_to or "") for t in rebate.targets if t.statistic == "mean")
    assert means == [(5, "一类出口企业"), (8, "")]


def test_low_voltage_max_by_year(catalog):
    maxima = {
        t.year: t.value
        for t in (
            *catalog.matter("power_low_voltage").targets,
            *catalog.matter("power_low_voltage").baseline,
        )
        if t.metric == "full_process_max"
    }
    assert maxima == {2020: 25, 2021: 20, 2022: 15}


def test_inconsistencies_record_both_numbers(catalog):
    by_matter = {(i.matter, i.used): i for i in catalog.inconsistencies}
    assert set(by_matter[("power_high_voltage_dual", 25)].values.values()) >= {32, 30, 25}
    assert set(by_matter[("import_clearance", 26)].values.values()) == {26, 30}
    assert set(by_matter[("export_clearance", 0.8)].values.values()) == {0.8, 1}
    assert set(by_matter[("power_low_voltage", 6)].values.values()) >= {6, 7}
    assert set(by_matter[("enterprise_establishment", 1)].values.values()) == {1.5, 1}
    # the value used is the one the matter's target carries
    dual = catalog.matter("power_high_voltage_dual")
    assert 25 in [t.value for t in dual.targets if t.metric == "utility_duration"]


def test_step_dags(catalog):
    startup = catalog.matter("enterprise_establishment")
    # the one window takes the application in (综合窗口受理), then the registry
    assert [s.id for s in startup.entry_steps] == ["intake"]
    assert {s.id for s in startup.successors("intake")} == {"registration"}
    # on the default path registration fans out to the four parallel steps; 分时办理
    # (route staggered) puts the applicant's interval before all of them but the seal
    default_path = {s.id: s.depends_on for s in startup.route_steps(None)}
    assert {step for step, deps in default_path.items() if "registration" in deps} == {
        "seal",
        "invoice",
        "social_security",
        "housing_fund",
    }
    assert {s.id for s in startup.successors("registration")} == {"seal", "interval"}
    assert startup.stage_count == 2
    linked = catalog.matter("linked_transfer")
    assert {s.department for s in linked.final_steps} == {"power", "water", "gas", "telecom"}
    assert linked.step("tax_clearance").depends_on == ("accept_lock",)
    assert catalog.matter("water_connection").service_step_count == 3
    for matter in catalog.workflows:
        order = [s.id for s in matter.ordered_steps]
        for step in matter.steps:
            assert all(order.index(d) < order.index(step.id) for d in step.depends_on)


def test_counties_and_departments(catalog):
    assert len(catalog.counties) == 12
    assert {"xinzhou", "dexing", "wuyuan", "poyang"} <= catalog.county_ids
    used = {s.department for m in catalog.matters for s in m.steps}
    for dept in (
        "registry",
        "tax",
        "power",
        "property",
        "water",
        "gas",
        "telecom",
        "police",
        "hrss",
        "housingfund",
        "customs",
        "finance",
        "window",
        "housing",
    ):
        assert dept in used


def test_time_targets_use_time_units(catalog):
    for m in catalog.matters:
        for t in m.targets:
            if t.metric.endswith("_duration") or t.metric in ("clearance_time", "comment_period"):
                assert t.is_time, (m.id, t.metric)


# --- broken files: the error names the file, the field and the reason ------------------


def expect_error(tmp_path: Path, data: dict, field: str, reason: str) -> InputError:
    path = write(tmp_path, data)
    with pytest.raises(InputError) as info:
        load_catalog(path)
    err = info.value
    assert err.source == str(path)
    assert err.field == field
    assert reason in err.reason
    assert str(path) in str(err) and field in str(err)
    return err


def test_bad_unit_names_the_field(tmp_path, raw):
    raw["matters"][3]["targets"][0]["unit"] = "fortnights"
    expect_error(tmp_path, raw, "matters[3].targets[0].unit", "Input should be")


def test_misquoted_source_is_rejected(tmp_path, raw):
    raw["matters"][0]["targets"][0]["source"] = "企业开办在半个工作日内办结"
    expect_error(tmp_path, raw, "matters[0].targets[0].source", "not a verbatim quote")


def test_unknown_dependency_is_rejected(tmp_path, raw):
    raw["matters"][0]["steps"][1]["depends_on"] = ["nowhere"]
    expect_error(tmp_path, raw, "matters[0]", "unknown step 'nowhere'")


def test_cycle_is_rejected(tmp_path, raw):
    raw["matters"][0]["steps"][0]["depends_on"] = ["seal"]
    expect_error(tmp_path, raw, "matters[0]", "cycle")


def test_unknown_department_is_rejected(tmp_path, raw):
    raw["matters"][0]["steps"][0]["department"] = "ministry_of_magic"
    err = expect_error(tmp_path, raw, "", "unknown department 'ministry_of_magic'")
    assert "enterprise_establishment" in err.reason


def test_missing_attachment_is_rejected(tmp_path, raw):
    raw["unmodelled"] = [u for u in raw["unmodelled"] if u["attachment"] != 9]
    expect_error(tmp_path, raw, "", "attachment(s) [9] appear neither")


def test_step_count_target_must_match_the_dag(tmp_path, raw):
    water = next(m for m in raw["matters"] if m["id"] == "water_connection")
    water["steps"].append({"id": "extra_visit", "name": "多跑一次", "department": "water"})
    expect_error(tmp_path, raw, f"matters[{raw['matters'].index(water)}]", "the steps give 4")


def test_negative_value_is_rejected(tmp_path, raw):
    raw["matters"][2]["targets"][1]["value"] = -1
    expect_error(tmp_path, raw, "matters[2].targets[1].value", "greater than or equal to 0")


def test_bad_scope_is_rejected(tmp_path, raw):
    raw["matters"][0]["targets"][0]["scope"] = "whole-thing"
    expect_error(tmp_path, raw, "matters[0].targets[0].scope", "is not one of")


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("matters:\n  - id: x\n    name: [unclosed\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_catalog(path)
    assert info.value.field.startswith("line ")
    assert "invalid YAML" in info.value.reason


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_catalog(tmp_path / "absent.yaml")
