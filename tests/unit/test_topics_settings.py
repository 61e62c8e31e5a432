"""Topic wiring from the catalog DAG, and settings from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.core.catalog import default_catalog
from services.core.errors import InputError
from services.core.topics import Topics, hears_rejections
from services.runtime.settings import load_settings


def test_department_inputs_follow_the_dag():
    topics = Topics()
    catalog = default_catalog()
    # police engraves seals after registration, in parallel with tax, social security and
    # the housing fund: a rejection among them must reach it
    assert topics.inputs_of(catalog, "police") == ("govflow.dept.registry", "govflow.rejections")
    # tax: entry steps (清税, rebates, …), after registration and property acceptance; its
    # own successors (a rebate's review after its declaration) it enables itself
    tax = topics.inputs_of(catalog, "tax")
    assert set(tax) == {
        "govflow.submissions",
        "govflow.dept.registry",
        "govflow.dept.property",
        "govflow.rejections",
    }
    # telecom transfers accounts after the property registration, beside the other utilities
    assert topics.inputs_of(catalog, "telecom") == ("govflow.dept.property", "govflow.rejections")
    # approval follows the utilities' designs; on the 容缺 route the applicant's
    # supplement runs beside the permits, and a missed deadline may reject the case
    assert hears_rejections(catalog, "approval")
    assert "govflow.rejections" in topics.inputs_of(catalog, "approval")
    # the one window: entry steps, 企业开办's issue after police, tax, hrss, housing fund,
    # and the 涉电 approval's intake after power's scheme
    assert set(topics.inputs_of(catalog, "window")) == {
        "govflow.submissions",
        "govflow.dept.power",
        "govflow.dept.police",
        "govflow.dept.tax",
        "govflow.dept.hrss",
        "govflow.dept.housingfund",
    }  # nothing runs beside the window's steps: no rejection to hear
    # registry: after the window's intake, or (一网通办, route online) the submission
    assert {"govflow.submissions", "govflow.dept.window"} <= set(
        topics.inputs_of(catalog, "registry")
    )
    assert "govflow.deadletter" in topics.all(catalog)
    assert len(topics.all(catalog)) == 5 + len(catalog.departments)


def test_a_department_that_locks_hears_rejections_even_without_parallel_steps():
    catalog = default_catalog()
    # property takes the linked transfer's lock: a refusal at the tax pivot releases it
    assert hears_rejections(catalog, "property")
    assert "govflow.rejections" in Topics().inputs_of(catalog, "property")


def test_topic_prefix_is_checked():
    assert Topics("shangrao-test").cases == "shangrao-test.cases"
    with pytest.raises(ValueError, match="prefix"):
        Topics("Bad Prefix")


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("GOVFLOW_BROKER_URL", "kafka:9092")
    monkeypatch.setenv("GOVFLOW_SPEED", "2880")
    monkeypatch.setenv("GOVFLOW_DATA_DIR", "/tmp/govflow-x")
    settings = load_settings()
    assert settings.broker_url == "kafka://kafka:9092"
    assert settings.speed == 2880.0
    assert settings.data_dir == Path("/tmp/govflow-x")


def test_defaults_use_the_embedded_broker(monkeypatch):
    for name in ("GOVFLOW_BROKER_URL", "GOVFLOW_SPEED", "GOVFLOW_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.broker_url is None
    assert settings.topic_prefix == "govflow"


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("GOVFLOW_BROKER_URL", "http://kafka:9092", "kafka://host:port"),
        ("GOVFLOW_SPEED", "-3", "greater than 0"),
        ("GOVFLOW_METRICS_PORT", "70000", "less than or equal"),
    ],
)
def test_bad_environment_names_the_variable(monkeypatch, name, value, reason):
    monkeypatch.setenv(name, value)
    with pytest.raises(InputError) as info:
        load_settings()
    assert info.value.field == name
    assert reason in info.value.reason
