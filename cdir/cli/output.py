"""Rendering of results as table, json or csv — the same pydantic shapes as the REST API."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel

FORMATS = ("table", "json", "csv")


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, dict):
        return ", ".join(f"{k}={val}" for k, val in v.items())
    if isinstance(v, list):
        return ", ".join(map(str, v))
    return str(v)


def emit(
    rows: Sequence[BaseModel | dict[str, Any]],
    fmt: str,
    columns: Sequence[str],
    *,
    title: str | None = None,
    headers: Sequence[str] | None = None,
    sizes: Sequence[str] = ("size",),
) -> None:
    """Print rows: json carries every field; csv and the table `columns`, one flat value per
    cell (see _flat)."""
    dicts = [r.model_dump(mode="json") if isinstance(r, BaseModel) else r for r in rows]
    if fmt == "json":
        sys.stdout.write(json.dumps(dicts, indent=2, ensure_ascii=False) + "\n")
        return
    if fmt == "csv":
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(columns)
        for d in dicts:
            w.writerow(["" if d.get(c) is None else _flat(d.get(c)) for c in columns])
        return
    raw = [r.model_dump() if isinstance(r, BaseModel) else r for r in rows]
    cells = [list(headers or columns)] + [
        [human_size(d.get(c)) if c in sizes else _cell(d.get(c)) for c in columns] for d in raw
    ]
    # plain aligned columns: as readable as a rich table, and 10,000 rows print in milliseconds
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    out = sys.stdout
    if title:
        out.write(title + "\n")
    for row in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n")


def replicas_cell(replicas: Sequence[dict[str, Any]] | None, sep: str = ";") -> str:
    """Replicas as `provider:state` joined by `sep` (`laptop:current;archive:stale`)."""
    return sep.join(f"{r['provider']}:{r['state']}" for r in replicas or [])


def _flat(v: Any) -> str:
    """A csv cell, never nested JSON: replicas `provider:state;…`, mappings `k=v;k=v`,
    other lists `a;b`."""
    if isinstance(v, dict):
        return ";".join(f"{k}={_atom(x)}" for k, x in v.items())
    if isinstance(v, list):
        if all(isinstance(x, dict) and {"provider", "state"} <= x.keys() for x in v):
            return replicas_cell(v)
        return ";".join(_atom(x) for x in v)
    return str(v)


def _atom(v: Any) -> str:
    if isinstance(v, dict):
        return ",".join(f"{k}={_atom(x)}" for k, x in v.items())
    if isinstance(v, list):
        return ",".join(_atom(x) for x in v)
    return "" if v is None else str(v)
