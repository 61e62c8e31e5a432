"""Run the govflow command line from a benchmark, as a user would (a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def govflow(
    env: dict[str, str], *args: str, timeout: float = 900, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """``govflow ARGS`` with ``env`` added to the environment; output captured."""
    return subprocess.run(
        [sys.executable, "-m", "govflow.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200", **env},
        timeout=timeout,
        check=check,
    )
