"""Typed provider options: declared once per provider, parsed once, rejected in one place.

A provider lists its options as `OptionSpec`s; `parse_options` turns what the command line
(strings) or the catalog (JSON values) gives into Python values with defaults filled in, and
refuses unknown names and bad values with one line naming the provider and the option.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cdir.errors import UsageError

Kind = Literal["str", "int", "float", "size", "bool", "choice"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(?:i?b)?\s*$", re.I)


@dataclass(frozen=True)
class OptionSpec:
    """One `provider add` option. `secret` ones go to the vault, never the catalog.

    kind: str, int, float (seconds…), size (bytes; "16MiB", "8M", "1G" or a number), bool
    (true/yes/on/1, false/no/off/0) or choice (one of `choices`). `minimum` bounds numbers.
    """

    name: str
    help: str
    kind: Kind = "str"
    default: Any = None
    secret: bool = False
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None


def parse_size(text: str) -> int:
    """ "16MiB" → 16777216 (binary units; the B, iB suffixes optional). ValueError if not."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(text)
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word not in _TRUE | _FALSE:
        raise ValueError(value)
    return word in _TRUE


def _convert(spec: OptionSpec, value: Any) -> Any:
    if spec.kind == "bool":
        return _bool(value)
    if spec.kind in ("int", "size"):
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, int):
            return value
        return parse_size(str(value)) if spec.kind == "size" else int(str(value).strip())
    if spec.kind == "float":
        return float(value)
    text = str(value)
    if spec.kind == "choice" and text not in spec.choices:
        raise ValueError(value)
    return text


_EXPECTED = {
    "int": "an integer",
    "float": "a number",
    "size": "a size such as 16MiB",
    "bool": "true or false",
}


def parse_option(owner: str, spec: OptionSpec, value: Any) -> Any:
    """One option's value in its Python type; UsageError naming `owner` and the option."""
    try:
        out = _convert(spec, value)
    except (TypeError, ValueError):
        expected = (
            "one of " + ", ".join(spec.choices)
            if spec.kind == "choice"
            else _EXPECTED.get(spec.kind, "text")
        )
        raise UsageError(f"{owner}: option {spec.name} must be {expected}, not {value!r}") from None
    if spec.minimum is not None and out < spec.minimum:
        raise UsageError(f"{owner}: option {spec.name} must be at least {spec.minimum:g}")
    return out


def parse_options(
    owner: str, specs: Iterable[OptionSpec], given: Mapping[str, Any], kind: str = ""
) -> dict[str, Any]:
    """Every declared option (but `root`) in its type, defaults filled in (None when a
    declared option has no default and was not given). Unknown names are refused."""
    by_name = {s.name: s for s in specs}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        known = ", ".join(sorted(k for k in by_name if k != "root")) or "none"
        raise UsageError(
            f"unknown option(s) for {kind or owner}: {', '.join(unknown)} (known: {known})"
        )
    out: dict[str, Any] = {}
    for name, spec in by_name.items():
        if name == "root":
            continue
        value = given.get(name)
        if value is None or value == "":
            out[name] = spec.default
        else:
            out[name] = parse_option(owner, spec, value)
    return out


def missing_required(specs: Iterable[OptionSpec], given: Mapping[str, Any]) -> list[str]:
    return [s.name for s in specs if s.required and s.name != "root" and s.name not in given]
