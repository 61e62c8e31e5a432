"""Every ``govflow`` command the README shows works exactly as written.

The README's shell blocks are read, and every line that runs govflow is run verbatim —
block by block, in order, in a temporary copy of the repository (so relative paths such
as ``scenarios/…`` and ``out/…`` mean what they mean for a reader, and nothing lands in
the working tree).  A block that brings the twin up is brought down again whatever
happens.  Lines that are not govflow commands (``make``, ``docker compose``) are tested
elsewhere: ``.ci/run`` runs ``make test``, tests/deploy validates the compose file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: What the copy needs to run the README's commands (the code runs from .venv).
COPIED = ("scenarios", "services", "simulator", "govflow", "deploy", "pyproject.toml")
_BLOCK = re.compile(r"^```(?:sh|bash|console)\n(.*?)^```", re.S | re.M)
_GOVFLOW = re.compile(r"^(?:\.venv/bin/)?govflow\s")

pytestmark = pytest.mark.readme


def readme_blocks(text: str) -> list[list[str]]:
    """The govflow lines of each shell block (blocks without any are left out)."""
    blocks = []
    for body in _BLOCK.findall(text):
        lines = [line.strip() for line in body.splitlines()]
        commands = [line for line in lines if _GOVFLOW.match(line)]
        if commands:
            blocks.append(commands)
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_shows_govflow_commands():
    flat = [line for block in BLOCKS for line in block]
    assert len(BLOCKS) >= 4 and len(flat) >= 15, flat
    for command in ("catalog", "simulate", "plan", "compare", "up", "replay", "verify", "down"):
        assert any(line.split()[1] == command for line in flat), command


def test_the_extraction_sees_blocks_and_leaves_other_lines():
    text = "x\n```sh\n.venv/bin/govflow up   # start\nmake demo\n```\n```\ngovflow not shell\n```\n"
    assert readme_blocks(text) == [[".venv/bin/govflow up   # start"]]


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's files the commands read, and its virtualenv, in a temp folder."""
    folder = tmp_path_factory.mktemp("readme")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, folder / name)
    (folder / ".venv").symlink_to(ROOT / ".venv")
    if (ROOT / ".kafka").is_dir():  # `make kafka`, which `make test` runs first
        (folder / ".kafka").symlink_to(ROOT / ".kafka")
    return folder


def run(line: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "100"}
    env.pop("GOVFLOW_DATA_DIR", None)  # the README's own defaults
    return subprocess.run(
        ["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i + 1}" for i in range(len(BLOCKS))])
def test_every_readme_command_runs_as_written(block: list[str], copy: Path) -> None:
    brings_up = any(line.split()[1] == "up" for line in block)
    try:
        for line in block:
            result = run(line, copy, timeout=1500)
            assert result.returncode == 0, (
                f"README line failed ({result.returncode}): {line}\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
            assert "Traceback" not in result.stderr, line
    finally:
        if brings_up:
            run(".venv/bin/govflow down", copy, timeout=120)
