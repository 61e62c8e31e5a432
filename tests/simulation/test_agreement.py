"""The agreement rule between a live replay and a simulation (simulator/agreement.py)."""

from __future__ import annotations

from simulator.agreement import compare, latency_tolerance
from simulator.summary import Latency, MatterResult, Summary


def summary(**matters: tuple[int, str, float, float]) -> Summary:
    return Summary.model_validate(
        {
            "scenario": "s",
            "replications": 1,
            "seed": 1,
            "horizon": {"start": "2021-03-01", "end": "2021-03-03"},
            "warmup_days": 0,
            "wall_seconds": 0.0,
            "departments": {},
            "bottlenecks": [],
            "matters": {
                m: MatterResult(
                    name=m,
                    attachment=1,
                    cases=n,
                    cases_per_replication=n,
                    rejected=0,
                    latency=Latency(unit=unit, p50=p50, p95=p95),
                    targets=[],
                )
                for m, (n, unit, p50, p95) in matters.items()
            },
        }
    )


SIM = summary(
    property_transfer=(82, "working_days", 1.164, 2.128),
    export_clearance=(12, "hours", 0.324, 0.516),
    mortgage_registration=(85, "working_days", 0.369, 0.576),
    rule_consultation=(0, "calendar_days", 0.0, 0.0),
)


def test_identical_runs_agree_and_empty_matters_are_not_compared():
    assert compare(SIM.model_copy(deep=True), SIM) == (3, [])


def test_five_percent_or_a_twentieth_of_a_working_day():
    assert latency_tolerance("working_days", 2.0) == 0.1
    assert latency_tolerance("working_days", 0.2) == 0.05  # the floor
    assert latency_tolerance("hours", 0.2) == 0.2 * 0.05  # no floor outside working days


def test_each_kind_of_difference_is_named():
    live = SIM.model_copy(deep=True)
    live.matters["property_transfer"].latency.p95 = 2.128 * 1.06  # 6 % slower
    live.matters["mortgage_registration"].latency.p50 = 0.369 + 0.04  # within floor
    live.matters["export_clearance"].cases = 11
    compared, differing = compare(live, SIM)
    assert compared == 2
    assert len(differing) == 2
    assert differing[0].startswith("property_transfer p95")
    assert differing[1] == "export_clearance: 11 cases live, 12 simulated"
    del live.matters["property_transfer"]
    assert "property_transfer: None cases live, 82 simulated" in compare(live, SIM)[1]
