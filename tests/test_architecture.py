"""Imports point one way (DESIGN.md): the pure domain imports no Kafka or SimPy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEPARTMENTS = [
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
    "approval",
    "tendering",
    "tracker",
]
INFRASTRUCTURE = {"faust", "aiokafka", "kafka", "simpy", "prometheus_client", "mode"}


def imported_modules(package: Path) -> dict[Path, set[str]]:
    found: dict[Path, set[str]] = {}
    for path in package.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        found[path] = names
    return found


def test_core_imports_no_infrastructure_and_no_other_layer():
    for path, names in imported_modules(ROOT / "services" / "core").items():
        roots = {n.split(".")[0] for n in names}
        assert not roots & INFRASTRUCTURE, f"{path} imports {roots & INFRASTRUCTURE}"
        outside = {
            n
            for n in names
            if n.startswith(("services.", "simulator", "govflow"))
            and not n.startswith("services.core")
        }
        assert not outside, f"{path} imports {outside}"


@pytest.mark.parametrize("department", DEPARTMENTS)
def test_no_department_imports_another(department):
    assert (ROOT / "services" / department / "__init__.py").exists()
    others = {f"services.{d}" for d in DEPARTMENTS if d != department}
    for path, names in imported_modules(ROOT / "services" / department).items():
        bad = {n for n in names if any(n == o or n.startswith(o + ".") for o in others)}
        assert not bad, f"{path} imports {bad}"


def test_scanner_sees_imports(tmp_path):
    # the check above must be able to fail
    (tmp_path / "m.py").write_text("import faust\nfrom services.tax import rules\n")
    names = imported_modules(tmp_path)[tmp_path / "m.py"]
    assert names == {"faust", "services.tax"}
