"""Small typed readers for YAML documents that name the offending key on error.

Study files and site profiles are plain YAML; every value is checked once, on load,
and a bad one is refused with its YAML path, e.g.
`sweeps/x.yaml: grid.wrs[1]: expected true or false`. Nothing here knows what a
study is; `study.py` and `site.py` build on it.

Two rules hold for every document, whatever its schema:

- a key appears once per mapping (`epochs: 1` then `epochs: 50` is refused with both
  lines, not silently "the last one wins"), at any depth;
- every number is finite: `.inf`, `.nan` and literals beyond float range such as
  `1e400` (which YAML reads as infinity) are refused with their YAML path.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from medaug.errors import MedaugError


#: The largest integer a document may hold: what an int64 column, a NumPy seed and a
#: SLURM count can all carry. Larger ones are refused at their YAML path.
INT_MAX = 2**63 - 1


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping names a key twice; `line`/`first_line` are 1-based."""

    def __init__(self, key: Any, line: int, first_line: int, mark: yaml.Mark) -> None:
        super().__init__(None, None, f"duplicate key {key!r}", mark)
        self.key, self.line, self.first_line = key, line, first_line


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, refusing a key written twice in one mapping (YAML 1.2 says keys
    are unique; PyYAML keeps the last). Keys brought in by a `<<` merge may be overridden."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    if key in first_line:
                        raise DuplicateKeyError(key, key_node.start_mark.line + 1, first_line[key],
                                                key_node.start_mark)
                except TypeError:  # an unhashable key: SafeLoader's own error says so
                    break
                first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


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
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise MedaugError(f"{path}: cannot read ({exc.__class__.__name__}: {exc})") from None
        try:
            data = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
        except DuplicateKeyError as exc:
            raise MedaugError(f"{path}: line {exc.line}: duplicate key {exc.key!r} (first on line "
                              f"{exc.first_line}); a key may appear once per mapping") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            raise MedaugError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
        except (ValueError, OverflowError, RecursionError) as exc:  # e.g. an integer literal of 5000 digits
            raise MedaugError(f"{path}: not valid YAML: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                              ) from None
        doc = cls(str(path), data)
        doc.check_numbers()
        return doc

    def check_numbers(self) -> None:
        """Refuse any non-finite number (`.inf`, `.nan`, `1e400`) or integer beyond INT_MAX,
        wherever it is in the document: no setting of any schema takes one."""
        stack: list[tuple[str, Any]] = [("", self.data)]
        seen: set[int] = set()
        while stack:
            where, value = stack.pop()
            if isinstance(value, (Mapping, list)):
                if id(value) in seen:  # an alias: checked where its anchor is
                    continue
                seen.add(id(value))
                items = value.items() if isinstance(value, Mapping) else enumerate(value)
                stack.extend((join(where, k if isinstance(k, (str, int)) else str(k)), v) for k, v in items)
            elif isinstance(value, float) and not math.isfinite(value):
                raise self.error(where, f"expected a finite number, got {_kind(value)}")
            elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT_MAX:
                raise self.error(where, f"expected an integer of at most {INT_MAX}, got one of "
                                 f"{value.bit_length()} bits")

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


def string(doc: Doc, value: Any, where: str, pattern: str | None = None, what: str = "a string",
           multiline: bool = False) -> str:
    if not isinstance(value, str) or not value:
        raise doc.error(where, f"expected {what}, got {_kind(value)}")
    if re.search(r"[\x00-\x08\x0b-\x1f\x7f]" if multiline else r"[\x00-\x1f\x7f]", value):
        raise doc.error(where, f"expected {what} on one line without control characters, got {value[:60]!r}")
    if pattern is not None and not re.fullmatch(pattern, value):
        raise doc.error(where, f"expected {what}, got {value!r}")
    return value


def boolean(doc: Doc, value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise doc.error(where, "expected true or false")
    return value


def integer(doc: Doc, value: Any, where: str, minimum: int | None = None, maximum: int = INT_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise doc.error(where, f"expected an integer, got {_kind(value)}")
    if minimum is not None and value < minimum:
        raise doc.error(where, f"expected an integer >= {minimum}, got {value}")
    if value > maximum:
        raise doc.error(where, f"expected an integer <= {maximum}, got {value}")
    return value


def number(doc: Doc, value: Any, where: str, minimum: float | None = None, positive: bool = False,
           maximum: float | None = None) -> float:
    """A finite number (int or float; returned as float) within the given bounds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise doc.error(where, f"expected a number, got {_kind(value)}{_float_hint(value)}")
    if abs(value) > INT_MAX if isinstance(value, int) else not math.isfinite(value):
        raise doc.error(where, f"expected a finite number, got {_kind(value)}")
    if positive and not value > 0:
        raise doc.error(where, f"expected a number > 0, got {value}")
    if minimum is not None and value < minimum:
        raise doc.error(where, f"expected a number >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise doc.error(where, f"expected a number <= {maximum:g}, got {value:g}")
    return float(value)


def _float_hint(value: Any) -> str:
    """YAML 1.1 (PyYAML) reads `1e-3` as text: a float needs a dot and a signed exponent."""
    if isinstance(value, str) and re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", value.strip()):
        mantissa, _, exponent = value.strip().lower().partition("e")
        sign = "" if exponent.startswith(("-", "+")) else "+"
        mantissa = mantissa if "." in mantissa else mantissa + ".0"
        return f"; write {mantissa}e{sign}{exponent} (YAML reads {value} as text)"
    return ""


def optional_string(doc: Doc, value: Any, where: str, multiline: bool = False) -> str | None:
    return None if value is None else string(doc, value, where, multiline=multiline)


def string_list(doc: Doc, value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    return [string(doc, v, join(where, i)) for i, v in enumerate(sequence(doc, value, where, non_empty=False))]


#: SLURM stores a time limit in minutes as a 32-bit number.
MAX_MINUTES = 2**31 - 2
_TIME = re.compile(r"(?:(\d{1,9})-)?(\d{1,12}):(\d{1,2}):(\d{1,2})")
_UNIT_TIME = re.compile(r"(\d{1,12}(?:\.\d{1,12})?)\s*(m|min|h|d)")


def minutes(doc: Doc, value: Any, where: str) -> int:
    """SLURM-style time limit -> whole minutes: 90, "90m", "2h", "01:30:00", "1-00:00:00"."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return _at_most_max_minutes(doc, value, where)
    if isinstance(value, str):
        m = _TIME.fullmatch(value.strip())
        if m:
            days, hours, mins, secs = (int(g or 0) for g in m.groups())
            total = days * 1440 + hours * 60 + mins + (1 if secs else 0)
            if total > 0:
                return _at_most_max_minutes(doc, total, where)
        m = _UNIT_TIME.fullmatch(value.strip())
        if m:
            scale = {"m": 1, "min": 1, "h": 60, "d": 1440}[m.group(2)]
            amount = float(m.group(1)) * scale
            total = int(round(amount)) if math.isfinite(amount) else MAX_MINUTES + 1
            if total > 0:
                return _at_most_max_minutes(doc, total, where)
    raise doc.error(where, f"expected a time limit (minutes, '90m', '2h', 'HH:MM:SS' or 'D-HH:MM:SS'), got {value!r}")


def _at_most_max_minutes(doc: Doc, total: int, where: str) -> int:
    if total > MAX_MINUTES:
        raise doc.error(where, f"expected a time limit of at most {MAX_MINUTES} minutes (SLURM's largest), "
                        f"got {total} minutes")
    return total


_MEM = re.compile(r"(\d{1,19})\s*([KMGT]?)B?", re.IGNORECASE)


def memory(doc: Doc, value: Any, where: str) -> str:
    """Memory as SLURM writes it: 4000 (MB), "4G", "500M" -> "4G", "500M", "4000M"."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= INT_MAX:
        return f"{value}M"
    if isinstance(value, str):
        m = _MEM.fullmatch(value.strip())
        if m and 0 < int(m.group(1)) <= INT_MAX:
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
