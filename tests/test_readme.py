"""Every ``govflow`` command the README shows works exactly as written.

The README's shell blocks are read, and every line that runs govflow is run verbatim —
block by block, in order, in a temporary copy of the repository (so relative paths such
as ``scenarios/…`` and ``out/…`` mean what they mean for a reader, and nothing lands in
the working tree).  A block that brings the twin up is brought down again whatever
happens.  Lines that are not govflow commands (``make``, ``docker compose``) are tested
elsewhere: ``.ci/run`` runs ``make test``, tests/deploy validates the compose file.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: What the copy needs to run the README's commands (the code runs from .venv).
COPIED = ("scenarios", "services", "simulator", "govflow", "deploy", "pyproject.toml")
_BLOCK = re.compile(r"^```(?:sh|bash|console)\n(.*?)^```", re.S | re.M)
_GOVFLOW = re.compile(r"^(?:\.venv/bin/)?govflow\s")
#: A Dask scheduler or worker the block starts in the background for its govflow lines.
_DASK = re.compile(r"^(?:\.venv/bin/)?dask\s+(?:scheduler|worker)\s.*&$")

pytestmark = pytest.mark.readme


def readme_blocks(text: str) -> list[list[str]]:
    """The govflow lines of each shell block (blocks without any are left out), after
    the Dask scheduler and workers it starts in the background (``dask … &``)."""
    blocks = []
    for body in _BLOCK.findall(text):
        lines = [line.strip() for line in body.splitlines()]
        commands = [line for line in lines if _GOVFLOW.match(line)]
        if commands:
            blocks.append([line for line in lines if _DASK.match(line)] + commands)
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


def start_in_background(line: str, cwd: Path) -> subprocess.Popen[bytes]:
    """A ``dask scheduler … &`` / ``dask worker … &`` line, left running; the scheduler's
    port answering (or the worker given two seconds) before the block goes on."""
    command = line.removesuffix("&").strip()
    if command.startswith("dask "):
        command = f"{ROOT / '.venv' / 'bin'}/{command}"  # the venv's dask, as .venv/bin/govflow
    process = subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    port = re.search(r"--port\s+(\d+)", command)
    deadline = time.monotonic() + 30
    while port and time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", int(port[1])), 1):
            break
        time.sleep(0.2)
    if not port:
        time.sleep(2)
    return process


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i + 1}" for i in range(len(BLOCKS))])
def test_every_readme_command_runs_as_written(block: list[str], copy: Path) -> None:
    brings_up = any(line.split()[1] == "up" for line in block if _GOVFLOW.match(line))
    background = [start_in_background(line, copy) for line in block if _DASK.match(line)]
    try:
        for line in (line for line in block if _GOVFLOW.match(line)):
            result = run(line, copy, timeout=1500)
            assert result.returncode == 0, (
                f"README line failed ({result.returncode}): {line}\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
            assert "Traceback" not in result.stderr, line
    finally:
        if brings_up:
            run(".venv/bin/govflow down", copy, timeout=120)
        for process in reversed(background):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
