"""Typed input errors that name where the problem is and why.

Bad input must never surface as a traceback: the CLI prints ``str(error)`` — one line
naming the file (or topic), the field path and the reason — and exits with code 2;
services route the same text to the dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError


class InputError(ValueError):
    """Invalid input: ``source`` (file, topic, …), ``field`` (dotted path), ``reason``."""

    def __init__(self, source: str, field: str, reason: str) -> None:
        self.source = source
        self.field = field
        self.reason = reason
        super().__init__(self.render())

    def render(self) -> str:
        where = f"{self.source}: " if self.source else ""
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.reason}"


def field_path(loc: Sequence[int | str]) -> str:
    """``("matters", 3, "targets", 0, "unit")`` -> ``matters[3].targets[0].unit``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def from_validation_error(source: str, exc: ValidationError, prefix: str = "") -> InputError:
    """The first problem pydantic found, as an :class:`InputError` (count of others appended)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = [p for p in first["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    path = field_path(loc)
    if prefix:
        path = f"{prefix}.{path}" if path and not path.startswith("[") else f"{prefix}{path}"
    reason = first["msg"]
    if first["type"] != "missing":
        shown = repr(first["input"])
        if len(shown) <= 60:
            reason += f" (got {shown})"
    if len(errors) > 1:
        reason += f" [and {len(errors) - 1} more problem(s)]"
    return InputError(source, path, reason)
