"""How the CLI shows results: JSON with --json (stable, for scripts), aligned tables otherwise."""
from __future__ import annotations

import json
from typing import Any, Iterable, Sequence, TextIO


def as_json(value: Any, out: TextIO) -> None:
    out.write(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ",".join(cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return ",".join(f"{k}={cell(v)}" for k, v in value.items()) or "-"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def table(rows: Iterable[dict[str, Any]], columns: Sequence[str], out: TextIO,
          headers: Sequence[str] | None = None) -> None:
    rows = list(rows)
    titles = [h.upper() for h in (headers or columns)]
    cells = [[cell(_get(row, c)) for c in columns] for row in rows]
    widths = [max([len(t)] + [len(r[i]) for r in cells]) for i, t in enumerate(titles)]
    out.write("  ".join(t.ljust(w) for t, w in zip(titles, widths)).rstrip() + "\n")
    for r in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() + "\n")
    if not rows:
        out.write("(none)\n")


def record(value: dict[str, Any], fields: Sequence[str], out: TextIO) -> None:
    """One object as ``key: value`` lines, in the given order, then nothing else."""
    width = max(len(f) for f in fields)
    for field in fields:
        out.write(f"{field.ljust(width)}  {cell(_get(value, field))}\n")


def _get(row: dict[str, Any], dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
