"""Small typed readers for YAML documents that name the offending key on error.

Study files and site profiles are plain YAML; every value is checked once, on load,
and a bad one is refused with its YAML path, e.g.
`sweeps/x.yaml: grid.wrs[1]: expected true or false`. Nothing here knows what a
study is; `study.py` and `site.py` build on it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from medaug.errors import MedaugError


class Doc:
    """A loaded YAML file: its source name (for messages) and its parsed data."""

    def __init__(self, source: str, data: Any) -> None:
        self.source = source
        self.data = data

    @classmethod
    def load(cls, path: str | Path) -> Doc:
        path = Path(path)
        if not path.is_file():
            raise MedaugError(f"{path}: no such file")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            raise MedaugError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
        return cls(str(path), data)

    def error(self, where: str, message: str) -> MedaugError:
        return MedaugError(f"{self.source}: {where}: {message}" if where else f"{self.source}: {message}")


def join(where: str, key: str | int) -> str:
    """YAML path of a child: `grid` + `wrs` -> `grid.wrs`; `grid.wrs` + 1 -> `grid.wrs[1]`."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else str(key)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def mapping(doc: Doc, value: Any, where: str, allowed: Iterable[str] | None = None,
            required: Iterable[str] = ()) -> dict[str, Any]:
    """A mapping with string keys; unknown keys (when `allowed` is given) and missing required ones refused."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise doc.error(where, f"expected a mapping, got {_kind(value)}")
    for key in value:
        if not isinstance(key, str):
            raise doc.error(where, f"key {key!r} is not a string")
    if allowed is not None:
        allowed = list(allowed)
        for key in value:
            if key not in allowed:
                raise doc.error(join(where, key), f"unknown key{did_you_mean(key, allowed)}; expected one of: "
                                + ", ".join(allowed))
    for key in required:
        if key not in value:
            raise doc.error(where, f"missing required key {key!r}")
    return dict(value)


def sequence(doc: Doc, value: Any, where: str, non_empty: bool = True) -> list[Any]:
    if not isinstance(value, list):
        raise doc.error(where, f"expected a list, got {_kind(value)}")
    if non_empty and not value:
        raise doc.error(where, "expected a non-empty list")
    return value


def string(doc: Doc, value: Any, where: str, pattern: str | None = None, what: str = "a string") -> str:
    if not isinstance(value, str) or not value:
        raise doc.error(where, f"expected {what}, got {_kind(value)}")
    if pattern is not None and not re.fullmatch(pattern, value):
        raise doc.error(where, f"expected {what}, got {value!r}")
    return value


def boolean(doc: Doc, value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise doc.error(where, "expected true or false")
    return value


def integer(doc: Doc, value: Any, where: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise doc.error(where, f"expected an integer, got {_kind(value)}")
    if minimum is not None and value < minimum:
        raise doc.error(where, f"expected an integer >= {minimum}, got {value}")
    return value


def number(doc: Doc, value: Any, where: str, minimum: float | None = None, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise doc.error(where, f"expected a number, got {_kind(value)}")
    if positive and not value > 0:
        raise doc.error(where, f"expected a number > 0, got {value}")
    if minimum is not None and value < minimum:
        raise doc.error(where, f"expected a number >= {minimum}, got {value}")
    return float(value)


def optional_string(doc: Doc, value: Any, where: str) -> str | None:
    return None if value is None else string(doc, value, where)


def string_list(doc: Doc, value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    return [string(doc, v, join(where, i)) for i, v in enumerate(sequence(doc, value, where, non_empty=False))]


_TIME = re.compile(r"(?:(\d+)-)?(\d+):(\d{1,2}):(\d{1,2})")
_UNIT_TIME = re.compile(r"(\d+(?:\.\d+)?)\s*(m|min|h|d)")


def minutes(doc: Doc, value: Any, where: str) -> int:
    """SLURM-style time limit -> whole minutes: 90, "90m", "2h", "01:30:00", "1-00:00:00"."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        m = _TIME.fullmatch(value.strip())
        if m:
            days, hours, mins, secs = (int(g or 0) for g in m.groups())
            total = days * 1440 + hours * 60 + mins + (1 if secs else 0)
            if total > 0:
                return total
        m = _UNIT_TIME.fullmatch(value.strip())
        if m:
            scale = {"m": 1, "min": 1, "h": 60, "d": 1440}[m.group(2)]
            total = int(round(float(m.group(1)) * scale))
            if total > 0:
                return total
    raise doc.error(where, f"expected a time limit (minutes, '90m', '2h', 'HH:MM:SS' or 'D-HH:MM:SS'), got {value!r}")


_MEM = re.compile(r"(\d+)\s*([KMGT]?)B?", re.IGNORECASE)


def memory(doc: Doc, value: Any, where: str) -> str:
    """Memory as SLURM writes it: 4000 (MB), "4G", "500M" -> "4G", "500M", "4000M"."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return f"{value}M"
    if isinstance(value, str):
        m = _MEM.fullmatch(value.strip())
        if m and int(m.group(1)) > 0:
            return f"{int(m.group(1))}{(m.group(2) or 'M').upper()}"
    raise doc.error(where, f"expected a memory amount (MB as an integer, or '4G', '500M'), got {value!r}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, (int, float)):
        return f"{value!r} (a number)"
    if isinstance(value, str):
        return f"{value!r} (a string)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__
