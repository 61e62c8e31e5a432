"""The event logs a run writes, read back by PM4Py: events.xes (XES, IEEE 1849) and
ocel.json (OCEL 2.0, the linked transfers) — and PM4Py's Inductive Miner rediscovers
each matter's step graph from them.

PM4Py is the reading client here only (a test dependency, AGPL): govflow never imports
it (checked below).
"""

from __future__ import annotations

import ast
import csv
import json
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pandas as pd
import pm4py
import pytest
import yaml
from pm4py.objects.process_tree.obj import Operator, ProcessTree

from services.core.catalog import default_catalog
from services.core.scenario import load_scenario
from simulator.engine import run_replication
from simulator.montecarlo import replication_seeds
from simulator.outputs import (
    ACCOUNT_TYPES,
    CASE_TYPE,
    UNIT_TYPE,
    EventLogs,
    write_events,
    write_xes,
)
from simulator.planner import restrict
from simulator.run import simulate
from tests.simulation.test_commands import govflow

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
XES = "{http://www.xes-standard.org/}"
#: a (matter, route) is mined when the run has this many complete, unrejected cases of it
MIN_CASES = 30


def scenario_file(tmp: Path, name: str, base: str, **fields: object) -> Path:
    path = tmp / f"{name}.yaml"
    document = {"base": str(SCENARIOS / base), "name": name, **fields}
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def fortnight(tmp_path_factory):
    """Two weeks of the 2021 city (about 19,000 cases, 55,000 attempts): events.xes and
    ocel.json through `simulate`, and events.csv of the same replication."""
    tmp = tmp_path_factory.mktemp("logs")
    catalog = default_catalog()
    path = scenario_file(
        tmp,
        "fortnight",
        "shangrao-2021.yaml",
        horizon={"start": "2021-03-01", "end": "2021-03-14"},
    )
    scenario = load_scenario(path, catalog)
    result = simulate(catalog, scenario, replications=1, out=tmp / "run", log_format="xes")
    # replication 0 of a run is the engine's run with the first replication seed
    rep = run_replication(catalog, scenario, replication_seeds(scenario.seed, 1)[0])
    rows = write_events(rep, tmp / "csv" / "events.csv")
    with (tmp / "csv" / "events.csv").open(encoding="utf-8", newline="") as f:
        events = list(csv.DictReader(f))
    assert rows == len(events)
    xes = pm4py.read_xes(str(tmp / "run" / "events.xes"), show_progress_bar=False)
    return {
        "catalog": catalog,
        "scenario": scenario,
        "result": result,
        "out": tmp / "run",
        "csv": events,
        "xes": xes,
    }


# --- events.xes ------------------------------------------------------------------------


def test_simulate_writes_xes_and_ocel_instead_of_csv(fortnight):
    out = fortnight["out"]
    assert fortnight["result"].logs == (out / "events.xes", out / "ocel.json")
    assert not (out / "events.csv").exists()
    assert (out / "ledger.jsonl").exists() and (out / "summary.json").exists()


def test_xes_holds_a_start_and_a_complete_event_per_attempt_of_events_csv(fortnight):
    xes, rows = fortnight["xes"], fortnight["csv"]
    assert set(xes["lifecycle:transition"]) == {"start", "complete"}
    complete = xes[xes["lifecycle:transition"] == "complete"]
    start = xes[xes["lifecycle:transition"] == "start"]
    assert len(complete) == len(rows) == len(start)
    assert len(rows) > 40_000

    def stamp(text: str) -> pd.Timestamp:
        return pd.Timestamp(text).tz_convert("UTC")

    # the complete events are the rows of events.csv, field by field
    keys = ["case:concept:name", "concept:name", "attempt"]
    from_csv = Counter(
        (
            r["case:concept:name"],
            r["concept:name"],
            int(r["attempt"]),
            stamp(r["time:timestamp"]),
            r["org:resource"],
            r["org:group"],
            r["outcome"],
        )
        for r in rows
    )
    fields = ["time:timestamp", "org:resource", "org:group", "outcome"]
    from_xes = Counter(tuple(t) for t in complete[keys + fields].itertuples(index=False))
    assert from_xes == from_csv
    # one trace per case, with the case's attributes
    cases = {r["case:concept:name"]: r for r in rows}
    assert xes["case:concept:name"].nunique() == len(cases) == fortnight["result"].reps[0].cases
    traces = xes.drop_duplicates("case:concept:name").set_index("case:concept:name")
    for attribute in ("matter", "county", "segment"):
        expected = pd.Series({c: r[f"case:{attribute}"] for c, r in cases.items()})
        got = traces[f"case:{attribute}"].fillna("")
        assert (got.sort_index() == expected.sort_index()).all(), attribute
    # each attempt starts no later than it completes, at the start_timestamp of events.csv
    paired = start.merge(complete, on=keys, suffixes=("_start", "_complete"), validate="1:1")
    assert len(paired) == len(rows)
    assert (paired["time:timestamp_start"] <= paired["time:timestamp_complete"]).all()
    assert (paired["time:timestamp_start"] < paired["time:timestamp_complete"]).any()
    starts = Counter(
        (r["case:concept:name"], r["concept:name"], int(r["attempt"]), stamp(r["start_timestamp"]))
        for r in rows
    )
    assert Counter(tuple(t) for t in start[[*keys, "time:timestamp"]].itertuples(index=False)) == (
        starts
    )


def test_xes_is_well_formed_ordered_by_time_and_escapes_its_text(tmp_path):
    catalog = default_catalog()
    scenario = load_scenario(SCENARIOS / "demo.yaml", catalog)
    rep = run_replication(catalog, scenario, replication_seeds(scenario.seed, 1)[0])
    rep.scenario = "demo <\"&> 'run'"
    path = tmp_path / "events.xes"
    attempts = write_xes(rep, path)
    root = ET.parse(path).getroot()  # the file as written, not PM4Py's reading of it
    assert root.tag == f"{XES}log"
    extensions = {e.get("prefix"): e.get("uri") for e in root.iter(f"{XES}extension")}
    assert set(extensions) == {"concept", "time", "lifecycle", "org"}
    scopes = {g.get("scope") for g in root.iter(f"{XES}global")}
    assert scopes == {"trace", "event"}
    name = next(a for a in root.findall(f"{XES}string") if a.get("key") == "concept:name")
    assert name.get("value") == rep.scenario
    traces = root.findall(f"{XES}trace")
    assert len(traces) == rep.cases
    events = 0
    for trace in traces:
        seen: dict[tuple[str, str], str] = {}
        times = []
        for event in trace.findall(f"{XES}event"):
            values = {a.get("key"): a.get("value") for a in event}
            times.append(pd.Timestamp(values["time:timestamp"]))
            attempt = (values["concept:name"], values["attempt"])
            if values["lifecycle:transition"] == "start":
                assert attempt not in seen
                seen[attempt] = "start"
            else:  # completes the attempt it started, never before it
                assert seen.pop(attempt) == "start"
            assert event.find(f"{XES}int").get("key") == "attempt"
            events += 1
        assert not seen
        assert times == sorted(times)
    assert events == 2 * attempts


# --- ocel.json --------------------------------------------------------------------------


def test_ocel_reads_back_with_its_objects_and_relations(fortnight):
    out, rows = fortnight["out"], fortnight["csv"]
    catalog = fortnight["catalog"]
    linked = [r for r in rows if r["case:matter"] == "linked_transfer"]
    assert len(linked) > 1000
    ledger = [json.loads(line) for line in (out / "ledger.jsonl").open(encoding="utf-8")]
    units = {f["unit"]: f for f in ledger if f["fact"] == "unit" and f["linked"]}
    holders = {(f["utility"], f["unit"]): f["holder"] for f in ledger if f["fact"] == "holder"}
    utilities = {
        s.id: s.department for s in catalog.matter("linked_transfer").steps if s.effect == "account"
    }
    assert set(utilities.values()) == set(ACCOUNT_TYPES)

    raw = json.loads((out / "ocel.json").read_text(encoding="utf-8"))
    assert set(raw) == {"objectTypes", "eventTypes", "objects", "events"}
    raw_types = Counter(o["type"] for o in raw["objects"])
    cases = {r["case:concept:name"] for r in linked}
    # every case, every unit once, one account per utility and unit
    assert raw_types[CASE_TYPE] == len(cases)
    assert raw_types[UNIT_TYPE] == len(units) > 0
    for utility in ACCOUNT_TYPES.values():
        assert raw_types[utility] == len(units)

    ocel = pm4py.read_ocel2_json(str(out / "ocel.json"))
    assert set(ocel.objects["ocel:type"]) == {CASE_TYPE, UNIT_TYPE, *ACCOUNT_TYPES.values()}
    assert len(ocel.events) == len(linked)
    assert Counter(ocel.events["ocel:activity"]) == Counter(r["concept:name"] for r in linked)
    by_type = ocel.objects.groupby("ocel:type")["ocel:oid"].apply(set)
    assert by_type[CASE_TYPE] == cases
    assert by_type[UNIT_TYPE] == set(units)
    # PM4Py keeps the objects some event concerns: of the accounts, those of the units
    # whose transfer reached the utilities — the accounts the engine moved
    for department, name in ACCOUNT_TYPES.items():
        account_units = {oid.removesuffix(f"/{department}") for oid in by_type[name]}
        assert account_units <= set(units)
        assert account_units == {unit for (d, unit) in holders if d == department}

    # every event: its case, the case's unit and — a utility's step — that account only
    case_unit = ocel.o2o[ocel.o2o["ocel:qualifier"] == "transfers"]
    case_unit = dict(zip(case_unit["ocel:oid"], case_unit["ocel:oid_2"], strict=True))
    assert len(case_unit) == len(cases)
    relations = ocel.relations
    for eid, related in relations.groupby("ocel:eid"):
        case = eid.split("/")[0]
        step = related["ocel:activity"].iloc[0]
        objects = dict(zip(related["ocel:type"], related["ocel:oid"], strict=True))
        assert len(objects) == len(related)
        assert objects[CASE_TYPE] == case
        assert objects[UNIT_TYPE] == case_unit[case]
        accounts = {t for t in objects if t not in (CASE_TYPE, UNIT_TYPE)}
        if step in utilities:
            department = utilities[step]
            assert accounts == {ACCOUNT_TYPES[department]}
            assert objects[ACCOUNT_TYPES[department]] == f"{case_unit[case]}/{department}"
        else:
            assert accounts == set()
    assert relations["ocel:eid"].nunique() == len(linked)

    # the owners and holders over time end where the engine's register and accounts end
    final = _final_values(ocel, "holder")
    assert {(oid.rpartition("/")[2], oid.rpartition("/")[0]): v for oid, v in final.items()} == (
        holders
    )
    owners = _final_values(ocel, "owner")
    assert owners == {code: fact["owner"] for code, fact in units.items()}
    assert any(o.startswith("买受人-") for o in owners.values())


def _final_values(ocel, field: str) -> dict[str, str]:
    """Each object's value of ``field`` after its last change (the initial one without)."""
    initial = ocel.objects.dropna(subset=[field]).set_index("ocel:oid")[field]
    changes = ocel.object_changes
    changes = changes[changes["ocel:field"] == field].sort_values("ocel:timestamp", kind="stable")
    last = changes.groupby("ocel:oid")[field].last()
    values = initial.to_dict()
    values.update(last.to_dict())
    return values


def test_ocel_is_written_when_the_run_has_linked_transfers_unless_told(tmp_path):
    catalog = default_catalog()
    demo = load_scenario(SCENARIOS / "demo.yaml", catalog)
    seed = replication_seeds(demo.seed, 1)[0]
    with_linked = run_replication(catalog, demo, seed)
    without = run_replication(catalog, restrict(demo, "property_transfer"), seed)
    assert len(with_linked.outcomes["linked_transfer"].arrivals) > 0

    def written(rep, **options) -> set[str]:
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        paths = EventLogs(folder, **options).write(rep)
        assert {p.name for p in folder.iterdir()} == {p.name for p in paths}
        return {p.name for p in paths}

    assert written(with_linked) == {"events.csv", "ocel.json"}
    assert written(with_linked, format="xes", ocel=False) == {"events.xes"}
    assert written(without) == {"events.csv"}
    assert written(without, format="xes", ocel=True) == {"events.xes", "ocel.json"}
    empty = json.loads((tmp_path / "3" / "ocel.json").read_text(encoding="utf-8"))
    assert empty["events"] == [] and empty["objects"] == []
    with pytest.raises(ValueError, match="log format"):
        EventLogs(tmp_path / "bad", format="json").write(without)  # type: ignore[arg-type]


# --- the command line --------------------------------------------------------------------


def test_simulate_log_format_and_ocel_options(tmp_path):
    scenario = str(SCENARIOS / "demo.yaml")
    out = tmp_path / "xes"
    result = govflow(
        "simulate", "--scenario", scenario, "-r", "1", "--log-format", "xes", "-o", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert {"events.xes", "ocel.json"} <= {p.name for p in out.iterdir()}
    assert not (out / "events.csv").exists()
    assert "events.xes" in result.stdout and "ocel.json" in result.stdout
    quiet = tmp_path / "csv"
    result = govflow("simulate", "--scenario", scenario, "-r", "1", "--no-ocel", "-o", str(quiet))
    assert result.returncode == 0, result.stderr
    assert (quiet / "events.csv").exists() and not (quiet / "ocel.json").exists()
    bad = govflow("simulate", "--scenario", scenario, "--log-format", "json", "-o", str(quiet))
    assert bad.returncode == 2
    assert "--log-format" in bad.stderr and "Traceback" not in bad.stderr


def test_govflow_never_imports_pm4py():
    for package in ("govflow", "services", "simulator"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                assert not [n for n in names if n.split(".")[0] == "pm4py"], path


# --- the Inductive Miner rediscovers the catalog's step graphs -------------------------


def _leaf_path(tree: ProcessTree, label: str) -> list[ProcessTree]:
    if not tree.children:
        return [tree] if tree.label == label else []
    for child in tree.children:
        below = _leaf_path(child, label)
        if below:
            return [tree, *below]
    return []


def relation(tree: ProcessTree, a: str, b: str) -> tuple[Operator | None, bool]:
    """The operator of the lowest node above both activities, and whether ``a`` comes
    first among its children."""
    pa, pb = _leaf_path(tree, a), _leaf_path(tree, b)
    assert pa and pb, f"{a} or {b} is not in the model"
    depth = 0
    while pa[depth] is pb[depth]:
        depth += 1
    node = pa[depth - 1]
    return node.operator, node.children.index(pa[depth]) < node.children.index(pb[depth])


def test_inductive_miner_rediscovers_each_matter_step_graph(fortnight):
    """Per matter and route with at least MIN_CASES cases: the completions of the done
    attempts of complete cases.  Rejected cases are left out (their traces stop short of
    the graph); rework and retry attempts are left out by taking done attempts only (they
    repeat one step — a self-loop, not the graph's order).  Each step is then done once
    per case, and the model PM4Py's Inductive Miner discovers must replay the log
    perfectly (token-based fitness 1.0) and agree with the catalog's graph: a pair the
    catalog orders is a sequence in that order; a pair it runs in parallel is parallel —
    unless the log itself never shows the pair in both orders (one step always outlasts
    the other: no miner can see concurrency the log does not show)."""
    catalog, scenario, xes = fortnight["catalog"], fortnight["scenario"], fortnight["xes"]
    routes = {
        (m, s.name): s.route for m, demand in scenario.demand.items() for s in demand.segments
    }
    xes = xes.assign(
        route=[routes.get(k) for k in zip(xes["case:matter"], xes["case:segment"], strict=True)]
    )
    rejected = set(xes.loc[xes["outcome"] == "rejected", "case:concept:name"])
    done = xes[
        (xes["lifecycle:transition"] == "complete")
        & (xes["outcome"] == "done")
        & ~xes["case:concept:name"].isin(rejected)
    ]
    mined: dict[tuple[str, str | None], float] = {}
    parallel_seen = fixed_order = 0
    for (matter_id, route), log in done.groupby(["case:matter", "route"], dropna=False):
        route = None if pd.isna(route) else route
        steps = catalog.matter(matter_id).route_steps(route)
        ids = {s.id for s in steps}
        per_case = log.groupby("case:concept:name")["concept:name"]
        assert (per_case.size() == per_case.nunique()).all(), "a step done twice"
        complete = per_case.nunique()[per_case.nunique() == len(ids)].index
        log = log[log["case:concept:name"].isin(complete)]
        if len(complete) < MIN_CASES:
            continue
        assert set(log["concept:name"]) == ids
        tree = pm4py.discover_process_tree_inductive(log)
        net, im, fm = pm4py.convert_to_petri_net(tree)
        fitness = pm4py.fitness_token_based_replay(log, net, im, fm)["log_fitness"]
        mined[(matter_id, route)] = fitness
        assert fitness == pytest.approx(1.0), (matter_id, route, str(tree))

        ancestors: dict[str, set[str]] = {}
        for s in catalog.matter(matter_id).route_steps(route):  # predecessors first
            ancestors[s.id] = set(s.depends_on).union(*(ancestors[d] for d in s.depends_on))
        orders = _observed_orders(log)
        for a in sorted(ids):
            for b in sorted(ids):
                if a >= b:
                    continue
                operator, a_first = relation(tree, a, b)
                where = (matter_id, route, a, b, str(tree))
                if a in ancestors[b] or b in ancestors[a]:
                    assert operator == Operator.SEQUENCE and a_first == (a in ancestors[b]), where
                elif orders[(a, b)] and orders[(b, a)]:
                    assert operator == Operator.PARALLEL, where
                    parallel_seen += 1
                else:  # the log fixes the order: the model may follow it, in that order
                    assert operator in (Operator.PARALLEL, Operator.SEQUENCE), where
                    if operator == Operator.SEQUENCE:
                        assert a_first == bool(orders[(a, b)]), where
                    fixed_order += 1
    print("token-based fitness per (matter, route):", mined)
    print(f"parallel pairs shown both ways: {parallel_seen}; in one order only: {fixed_order}")
    # the miner saw enough of the city: the parallel parts of the big matters included
    assert {
        ("linked_transfer", None),
        ("property_transfer", None),
        ("property_transfer", "online"),
        ("enterprise_establishment", None),
        ("enterprise_establishment", "online"),
        ("mortgage_registration", "bank_window"),
        ("tax_handling", None),
    } <= set(mined)
    assert len(mined) >= 20
    assert parallel_seen >= 20


def _observed_orders(log: pd.DataFrame) -> Counter[tuple[str, str]]:
    """How many cases complete step ``a`` before step ``b``, per (a, b)."""
    orders: Counter[tuple[str, str]] = Counter()
    ordered = log.sort_values(["case:concept:name", "time:timestamp"], kind="stable")
    for _, steps in ordered.groupby("case:concept:name", sort=False)["concept:name"]:
        sequence = list(steps)
        for i, a in enumerate(sequence):
            for b in sequence[i + 1 :]:
                orders[(a, b)] += 1
    return orders
