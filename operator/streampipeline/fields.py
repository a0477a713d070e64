"""The declarative field framework behind :mod:`streampipeline.spec`.

A spec object is a frozen dataclass whose fields carry a :class:`FieldInfo` (made by
:func:`spec_field`): a *kind* (:class:`Int`, :class:`Duration`, :class:`Obj`...) that
parses, validates, serialises and describes (OpenAPI schema, docs constraints) one YAML
value. Kinds report every problem to an error collector instead of raising, so one pass
finds all of them. This module knows nothing about StreamPipeline itself: the model and
its manifest live in :mod:`streampipeline.spec`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass
from decimal import Decimal
from typing import Any, ClassVar, Final

from spjobs.durations import DURATION_PATTERN, EXAMPLES, parse_duration

# --- errors ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    """One problem with one field. ``path`` is e.g. ``spec.processing.ageBands[1]``;
    ``<yaml>`` is the document as a whole; ``line`` is 1-based when known."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path} (line {self.line})" if self.line else self.path
        return f"{where}: {self.message}"


class _Errors:
    def __init__(self) -> None:
        self.items: list[FieldError] = []

    def add(self, path: str, message: str, line: int | None = None) -> None:
        self.items.append(FieldError(path or "<root>", message, line))

    def __len__(self) -> int:
        return len(self.items)


# --- small value helpers ----------------------------------------------------------------


class FrozenMap(Mapping[str, Any]):
    """An immutable, hashable ``dict`` (keeps the frozen dataclasses hashable)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | Iterable[tuple[str, Any]] = (), /) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


_INVALID: Final = object()  # what a kind's parse returns after reporting an error


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _describe(value: object) -> str:
    """How a YAML value is named in messages: ``string 'ten'``, ``boolean true``..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {_short(value)}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"{type(value).__name__} {_short(str(value))}"


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(number)


_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _join(path: str, key: object) -> str:
    if isinstance(key, str) and _SIMPLE_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key) if isinstance(key, str) else repr(key)}]"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _suggest(key: object, known: Sequence[str]) -> str:
    if not isinstance(key, str):
        return f"unknown field; expected one of: {', '.join(known)}"

    def norm(text: str) -> str:
        return re.sub(r"[^a-z0-9]", "", text.lower())

    match = next((k for k in known if norm(k) == norm(key)), None)
    if match is None:
        lowered = {k.lower(): k for k in known}
        close = difflib.get_close_matches(key.lower(), list(lowered), n=1, cutoff=0.6)
        match = lowered[close[0]] if close else None
    if match is not None:
        return f"unknown field (did you mean {match!r}?)"
    return f"unknown field; expected one of: {', '.join(known)}"


# --- quantities -------------------------------------------------------------------------

_QTY_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_QTY_SUFFIX = r"(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)"
QUANTITY_PATTERN: Final = rf"^{_QTY_NUMBER}{_QTY_SUFFIX}?$"
_QTY_RE = re.compile(rf"^({_QTY_NUMBER})({_QTY_SUFFIX})?$")
_QTY_FACTORS: Final = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    **{s + "i": Decimal(1024) ** (i + 1) for i, s in enumerate("KMGTPE")},
}


def parse_quantity(text: str | int) -> Decimal:
    """The value of a (non-negative) Kubernetes quantity: ``"500m"`` -> 0.5, ``"1Gi"`` -> 2**30."""
    if _is_int(text):
        if text < 0:  # type: ignore[operator]
            raise ValueError(f"invalid quantity {text!r}: must not be negative")
        return Decimal(text)  # type: ignore[arg-type]
    match = _QTY_RE.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"invalid quantity {text!r}")
    number, suffix = match.group(1), match.group(2) or ""
    if suffix[:1] in ("e", "E") and suffix[1:2] not in ("", "i"):  # "1e3"; "1E" is exa, "1Ei" exbi
        return Decimal(number) * Decimal(10) ** int(suffix[1:])
    return Decimal(number) * _QTY_FACTORS[suffix]


SPARK_MEMORY_PATTERN: Final = r"^[0-9]+[kKmMgGtT][bB]?$"
_SPARK_MEMORY_RE = re.compile(r"^([0-9]+)([kKmMgGtT])[bB]?$")


def parse_spark_memory(text: str) -> int:
    """Bytes in a Spark memory string (binary units, as Spark reads them): ``"1g"`` -> 2**30."""
    match = _SPARK_MEMORY_RE.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"invalid Spark memory size {text!r}")
    return int(match.group(1)) * 1024 ** ("kmgt".index(match.group(2).lower()) + 1)


# --- kinds: how one field's YAML value is parsed, serialised and described -------------


class Kind:
    """Base of the field kinds. Subclasses are frozen dataclasses."""

    type_name: ClassVar[str] = "value"

    def parse(self, raw: Any, path: str, errs: _Errors, line: int | None) -> Any:
        raise NotImplementedError

    def plain(self, value: Any, keep_none: bool) -> Any:
        """Python value -> JSON/YAML-ready value."""
        return value

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def constraints(self) -> list[str]:
        return []

    def rules(self, path: str) -> list[dict[str, str]]:
        """CEL ``x-kubernetes-validations`` for this field's schema node: what ``parse``
        checks beyond the OpenAPI schema, each message starting with ``path``."""
        return []


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """One CEL validation rule as the CRD states it."""
    out = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


def _range_constraints(minimum: float | None, maximum: float | None) -> list[str]:
    if minimum is not None and maximum is not None:
        return [f"{_fmt(minimum)}..{_fmt(maximum)}"]
    if minimum is not None:
        return [f">= {_fmt(minimum)}"]
    if maximum is not None:
        return [f"<= {_fmt(maximum)}"]
    return []


def _check_range(
    value: float, raw: Any, minimum: float | None, maximum: float | None, path: str, errs: _Errors, line
) -> Any:
    if minimum is not None and value < minimum:
        errs.add(path, f"must be >= {_fmt(minimum)}, got {raw!r}", line)
        return _INVALID
    if maximum is not None and value > maximum:
        errs.add(path, f"must be <= {_fmt(maximum)}, got {raw!r}", line)
        return _INVALID
    return value


def _range_schema(minimum: float | None, maximum: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if minimum is not None:
        out["minimum"] = minimum
    if maximum is not None:
        out["maximum"] = maximum
    return out


@dataclass(frozen=True)
class Int(Kind):
    minimum: int | None = None
    maximum: int | None = None
    type_name: ClassVar[str] = "integer"

    def parse(self, raw, path, errs, line):
        if not _is_int(raw):
            hint = " (write it without quotes)" if isinstance(raw, str) and raw.strip().isdigit() else ""
            errs.add(path, f"must be an integer, got {_describe(raw)}{hint}", line)
            return _INVALID
        return _check_range(raw, raw, self.minimum, self.maximum, path, errs, line)

    def schema(self):
        return {"type": "integer", **_range_schema(self.minimum, self.maximum)}

    def constraints(self):
        return _range_constraints(self.minimum, self.maximum)


@dataclass(frozen=True)
class Number(Kind):
    minimum: float | None = None
    maximum: float | None = None
    type_name: ClassVar[str] = "number"

    def parse(self, raw, path, errs, line):
        if not _is_number(raw):
            errs.add(path, f"must be a number, got {_describe(raw)}", line)
            return _INVALID
        try:
            finite = math.isfinite(raw)
        except OverflowError:
            finite = False
        if not finite:
            errs.add(path, f"must be a finite number, got {_short(str(raw))}", line)
            return _INVALID
        value = _check_range(raw, raw, self.minimum, self.maximum, path, errs, line)
        return value if value is _INVALID else float(value)

    def schema(self):
        return {"type": "number", **_range_schema(self.minimum, self.maximum)}

    def constraints(self):
        return _range_constraints(self.minimum, self.maximum)


@dataclass(frozen=True)
class Bool(Kind):
    type_name: ClassVar[str] = "boolean"

    def parse(self, raw, path, errs, line):
        if not isinstance(raw, bool):
            errs.add(path, f"must be a boolean (true or false), got {_describe(raw)}", line)
            return _INVALID
        return raw

    def schema(self):
        return {"type": "boolean"}


def _string_type_error(raw: Any, what: str = "a string") -> str:
    message = f"must be {what}, got {_describe(raw)}"
    if isinstance(raw, bool):
        message += " (YAML reads unquoted yes/no/on/off/y/n/true/false as booleans; quote the value)"
    elif _is_number(raw):
        message += f' (quote it: "{raw}")'
    return message


@dataclass(frozen=True)
class Str(Kind):
    """A string, optionally constrained by regex/length/enum and a Python-only ``check``."""

    pattern: str | None = None
    pattern_desc: str | None = None  # "a DNS-1123 label (...)": used in messages and docs
    min_length: int | None = None
    max_length: int | None = None
    length_reason: str = ""
    enum: tuple[str, ...] | None = None
    check: Callable[[str], str | None] | None = None  # returns an error message or None
    check_desc: str | None = None
    # The same check as CEL for the CRD: (rule, message after the field path) pairs.
    check_cel: tuple[tuple[str, str], ...] = ()
    enum_desc: str | None = None  # for long enums: "a Faker locale"; messages then suggest one
    type_name: ClassVar[str] = "string"

    def parse(self, raw, path, errs, line):
        if not isinstance(raw, str):
            errs.add(path, _string_type_error(raw), line)
            return _INVALID
        if self.enum is not None and raw not in self.enum:
            if self.enum_desc:
                close = difflib.get_close_matches(raw, self.enum, n=3, cutoff=0.5)
                hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
                errs.add(path, f"must be {self.enum_desc}, got {_short(raw)}{hint}", line)
            else:
                choices = " or ".join(repr(e) for e in self.enum)
                errs.add(path, f"must be {choices}, got {_short(raw)}", line)
            return _INVALID
        if self.min_length and not raw:
            errs.add(path, "must not be empty", line)
            return _INVALID
        ok = True
        if self.max_length is not None and len(raw) > self.max_length:
            errs.add(
                path,
                f"must be at most {self.max_length} characters{self.length_reason}, "
                f"got {len(raw)} ({_short(raw)})",
                line,
            )
            ok = False
        if self.pattern is not None and not re.fullmatch(self.pattern, raw):
            errs.add(path, f"must be {self.pattern_desc or 'match ' + self.pattern}, got {_short(raw)}", line)
            ok = False
        if ok and self.check is not None:
            problem = self.check(raw)
            if problem:
                errs.add(path, problem, line)
                ok = False
        return raw if ok else _INVALID

    def schema(self):
        out: dict[str, Any] = {"type": "string"}
        if self.enum is not None:
            out["enum"] = list(self.enum)
        if self.pattern is not None:
            out["pattern"] = self.pattern
        if self.min_length is not None:
            out["minLength"] = self.min_length
        if self.max_length is not None:
            out["maxLength"] = self.max_length
        return out

    def constraints(self):
        out = []
        if self.enum is not None and self.enum_desc:
            out.append(self.enum_desc)
        elif self.enum is not None:
            out.append("one of " + ", ".join(f"`{e}`" for e in self.enum))
        if self.pattern_desc:
            out.append(self.pattern_desc)
        if self.min_length:
            out.append("non-empty")
        if self.max_length is not None:
            out.append(f"at most {self.max_length} characters")
        if self.check_desc:
            out.append(self.check_desc)
        return out

    def rules(self, path):
        return [cel(rule, f"{path} {message}") for rule, message in self.check_cel]


# Go's time.Duration (an int64 of nanoseconds), which Kubernetes' CEL duration() also uses.
GO_MAX_DURATION: Final = "2562047h"


@dataclass(frozen=True)
class Duration(Kind):
    """A Go-style duration string; kept as written (``"1m30s"``), parsed to check it."""

    minimum: str = "0"
    maximum: str = GO_MAX_DURATION
    type_name: ClassVar[str] = "duration"

    def parse(self, raw, path, errs, line):
        if not isinstance(raw, str):
            hint = f" (add a unit, e.g. '{raw}s')" if _is_number(raw) else ""
            errs.add(path, f"must be a duration string such as {EXAMPLES}, got {_describe(raw)}{hint}", line)
            return _INVALID
        try:
            seconds = parse_duration(raw)
        except ValueError:
            errs.add(path, f"must be a duration such as {EXAMPLES}, got {_short(raw)}", line)
            return _INVALID
        if seconds < parse_duration(self.minimum):
            errs.add(path, f"must be at least {self.minimum}, got {_short(raw)}", line)
            return _INVALID
        if seconds > parse_duration(self.maximum):
            errs.add(path, f"must be at most {self.maximum}, got {_short(raw)}", line)
            return _INVALID
        return raw

    def schema(self):
        return {"type": "string", "pattern": DURATION_PATTERN}

    def constraints(self):
        out = ["Go duration: `250ms`, `5s`, `1m30s`, `2h`"]
        if parse_duration(self.minimum) > 0:
            out.append(f">= {self.minimum}")
        out.append(f"<= {self.maximum}")
        return out

    def rules(self, path):
        # A duration beyond Go's range makes CEL's duration() fail; the size check keeps
        # the message ours (no valid duration of <= maximum needs more characters).
        out = []
        if parse_duration(self.minimum) > 0:
            out.append(
                cel(
                    f"duration(self) >= duration('{self.minimum}')", f"{path} must be at least {self.minimum}"
                )
            )
        out.append(
            cel(
                f"self.size() <= 40 && duration(self) <= duration('{self.maximum}')",
                f"{path} must be at most {self.maximum}",
            )
        )
        return out


@dataclass(frozen=True)
class Quantity(Kind):
    """A Kubernetes resource quantity (``500m``, ``2``, ``256Mi``, ``10Gi``); an integer is
    accepted (as in any Kubernetes manifest) and stored as its string."""

    positive: bool = False
    memory: bool = False  # reject the 'm' (milli) suffix, a classic mistake for 'Mi'
    type_name: ClassVar[str] = "quantity"
    _EXAMPLES: ClassVar[str] = "'500m', '2', '256Mi' or '10Gi'"

    def parse(self, raw, path, errs, line):
        if _is_int(raw):
            text = str(raw)
        elif isinstance(raw, str):
            text = raw
        else:
            hint = f' (quote it: "{raw}")' if isinstance(raw, float) else ""
            errs.add(path, f"must be a quantity such as {self._EXAMPLES}, got {_describe(raw)}{hint}", line)
            return _INVALID
        if not _QTY_RE.fullmatch(text):
            errs.add(path, f"must be a quantity such as {self._EXAMPLES}, got {_short(text)}", line)
            return _INVALID
        if self.memory and text.endswith("m"):
            errs.add(
                path,
                f"{text!r} means {text[:-1]} millibytes; use {text[:-1] + 'Mi'!r} (mebibytes) "
                f"or {text[:-1] + 'M'!r} (megabytes)",
                line,
            )
            return _INVALID
        if self.positive and parse_quantity(text) <= 0:
            errs.add(path, f"must be greater than zero, got {text!r}", line)
            return _INVALID
        return text

    def schema(self):
        return {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }

    def constraints(self):
        out = ["Kubernetes quantity: `500m`, `2`, `256Mi`, `10Gi`"]
        if self.memory:
            out.append("no `m` suffix")
        if self.positive:
            out.append("> 0")
        return out

    def rules(self, path):
        # The pattern applies to strings only: an integer must not be negative either.
        out = [cel("type(self) != int || self >= 0", f"{path} must be a quantity such as {self._EXAMPLES}")]
        if self.memory:
            out.append(
                cel(
                    "type(self) != string || !self.endsWith('m')",
                    f"{path} must not use the 'm' (milli) suffix: write Mi (mebibytes) or M (megabytes)",
                )
            )
        if self.positive:
            rule = "quantity(string(self)).isGreaterThan(quantity('0'))"
            out.append(cel(rule, f"{path} must be greater than zero"))
        return out


@dataclass(frozen=True)
class SparkMemory(Kind):
    """A Spark JVM memory size (``512m``, ``1g``, ``2g``); binary units, unit required."""

    minimum: str = "512m"
    type_name: ClassVar[str] = "string"
    _WHAT: ClassVar[str] = "a Spark memory size such as '512m' or '2g'"

    def parse(self, raw, path, errs, line):
        if not isinstance(raw, str):
            hint = f" (add a unit, e.g. '{raw}g')" if _is_int(raw) else ""
            errs.add(path, f"must be {self._WHAT}, got {_describe(raw)}{hint}", line)
            return _INVALID
        if not _SPARK_MEMORY_RE.fullmatch(raw):
            hint = ""
            match = _QTY_RE.fullmatch(raw)
            if match and (match.group(2) or "").endswith("i"):
                hint = f" (Spark writes {match.group(1) + match.group(2)[0].lower()!r}, not {raw!r})"
            errs.add(path, f"must be {self._WHAT}, got {_short(raw)}{hint}", line)
            return _INVALID
        if parse_spark_memory(raw) < parse_spark_memory(self.minimum):
            message = f"must be at least {self.minimum} (Spark refuses to start with less), got {raw!r}"
            errs.add(path, message, line)
            return _INVALID
        return raw

    def schema(self):
        return {"type": "string", "pattern": SPARK_MEMORY_PATTERN}

    def constraints(self):
        return [f"Spark size with unit k/m/g/t (`512m`, `2g`), >= {self.minimum}"]

    def rules(self, path):
        # In KiB: '<digits><k|m|g|t>[b]'. Longer strings are not converted (int() of the
        # product could overflow); 9+ characters are >= 10000000k (9.5 GiB) anyway.
        minimum_k = parse_spark_memory(self.minimum) // 1024
        factor = (
            "(self.matches('^[0-9]+[kK]') ? 1 : self.matches('^[0-9]+[mM]') ? 1024 : "
            "self.matches('^[0-9]+[gG]') ? 1048576 : 1073741824)"
        )
        rule = f"self.size() > 9 || int(self.findAll('[0-9]+')[0]) * {factor} >= {minimum_k}"
        return [cel(rule, f"{path} must be at least {self.minimum} (Spark refuses to start with less)")]


@dataclass(frozen=True)
class ListOf(Kind):
    item: Kind
    min_items: int | None = None
    max_items: int | None = None
    check: Callable[[tuple], str | None] | None = None
    check_desc: str | None = None
    check_cel: tuple[tuple[str, str], ...] = ()  # the check as CEL: (rule, message after the path)

    @property
    def type_name(self) -> str:  # type: ignore[override]
        return f"list of {self.item.type_name}"

    def rules(self, path):
        return [cel(rule, f"{path} {message}") for rule, message in self.check_cel]

    def parse(self, raw, path, errs, line):
        if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Sequence):
            errs.add(path, f"must be a list, got {_describe(raw)}", line)
            return _INVALID
        item_lines = getattr(raw, "lines", None) or []
        items, ok = [], True
        for i, item in enumerate(raw):
            item_line = item_lines[i] if i < len(item_lines) else line
            value = self.item.parse(item, f"{path}[{i}]", errs, item_line)
            ok = ok and value is not _INVALID
            items.append(value)
        if self.min_items is not None and len(raw) < self.min_items:
            plural = "s" if self.min_items != 1 else ""
            errs.add(path, f"must have at least {self.min_items} item{plural}, got {len(raw)}", line)
            return _INVALID
        if self.max_items is not None and len(raw) > self.max_items:
            errs.add(path, f"must have at most {self.max_items} items, got {len(raw)}", line)
            return _INVALID
        if not ok:
            return _INVALID
        result = tuple(items)
        if self.check is not None:
            problem = self.check(result)
            if problem:
                errs.add(path, problem, line)
                return _INVALID
        return result

    def plain(self, value, keep_none):
        return [self.item.plain(v, keep_none) for v in value]

    def schema(self):
        out: dict[str, Any] = {"type": "array", "items": self.item.schema()}
        if self.min_items is not None:
            out["minItems"] = self.min_items
        if self.max_items is not None:
            out["maxItems"] = self.max_items
        return out

    def constraints(self):
        out = []
        if self.min_items is not None and self.max_items is not None:
            out.append(f"{self.min_items}..{self.max_items} items")
        out += [f"items {c}" for c in self.item.constraints()]
        if self.check_desc:
            out.append(self.check_desc)
        return out


@dataclass(frozen=True)
class MapOf(Kind):
    value: Kind
    key_pattern: str | None = None
    key_desc: str | None = None

    @property
    def type_name(self) -> str:  # type: ignore[override]
        return f"map of string to {self.value.type_name}"

    def parse(self, raw, path, errs, line):
        if not isinstance(raw, Mapping):
            errs.add(path, f"must be a map of string to {self.value.type_name}, got {_describe(raw)}", line)
            return _INVALID
        lines = getattr(raw, "lines", None) or {}
        out, ok = {}, True
        for key, item in raw.items():
            child, child_line = _join(path, key), lines.get(key, line)
            if not isinstance(key, str):
                errs.add(child, f"keys must be strings, got {_describe(key)}", child_line)
                ok = False
                continue
            if self.key_pattern is not None and not re.fullmatch(self.key_pattern, key):
                errs.add(child, f"key must be {self.key_desc or 'match ' + self.key_pattern}", child_line)
                ok = False
            value = self.value.parse(item, child, errs, child_line)
            ok = ok and value is not _INVALID
            out[key] = value
        return FrozenMap(out) if ok else _INVALID

    def plain(self, value, keep_none):
        return {k: self.value.plain(v, keep_none) for k, v in value.items()}

    def schema(self):
        return {"type": "object", "additionalProperties": self.value.schema()}

    def constraints(self):
        out = [f"keys: {self.key_desc}"] if self.key_desc else []
        return out + [f"values: {c}" for c in self.value.constraints()]

    def rules(self, path):
        if self.key_pattern is None:
            return []
        rule = f"self.all(k, k.matches('{self.key_pattern}'))"
        return [cel(rule, f"{path} keys must be {self.key_desc or 'match ' + self.key_pattern}")]


@dataclass(frozen=True)
class FieldInfo:
    """What the dataclass field means in the manifest (kept in the field's metadata)."""

    kind: Kind
    doc: str
    required: bool = False
    computed_default: str | None = None  # docs text of a default computed from other fields
    # How the field may change on an update: "immutable" or "grow" (never decrease), and why.
    transition: str | None = None
    transition_reason: str = ""


_META = "streampipeline.spec"


def spec_field(
    kind: Kind,
    doc: str,
    *,
    default: Any = None,
    default_factory: Callable[[], Any] | None = None,
    required: bool = False,
    computed_default: str | None = None,
    transition: str | None = None,
    transition_reason: str = "",
) -> Any:
    """A dataclass field described by a :class:`FieldInfo`.  Optional fields without a
    default are ``None`` when absent."""
    assert transition in (None, "immutable", "grow"), transition
    info = FieldInfo(kind, doc, required, computed_default, transition, transition_reason)
    metadata = {_META: info}
    if required:
        return dataclasses.field(metadata=metadata)
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class _Field:
    attr: str
    yaml: str
    info: FieldInfo
    default: Any  # MISSING when required

    @property
    def kind(self) -> Kind:
        return self.info.kind


@functools.cache
def spec_fields(cls: type) -> tuple[_Field, ...]:
    """The declared fields of one spec dataclass, in order."""
    out = []
    for f in dataclasses.fields(cls):
        info = f.metadata.get(_META)
        if info is None:
            continue
        if f.default is not MISSING:
            default = f.default
        elif f.default_factory is not MISSING:
            default = f.default_factory()
        else:
            default = MISSING
        out.append(_Field(f.name, _camel(f.name), info, default))
    return tuple(out)


@dataclass(frozen=True)
class Obj(Kind):
    """A nested spec object, described by the dataclass ``cls``.

    ``ignored`` names keys that are accepted and dropped (server-populated metadata).
    ``omit_none`` leaves unset fields out even of the job config (for k8s-shaped maps).
    A dataclass may define ``_problems(self) -> Iterable[(relative path, message)]`` for
    checks that involve several of its fields, and must then state the same checks as CEL
    in ``CEL: ClassVar[tuple[(rule, relative path, message), ...]]`` for the CRD.
    """

    cls: type
    ignored: frozenset[str] = frozenset()
    omit_none: bool = False
    type_name: ClassVar[str] = "object"

    def parse(self, raw, path, errs, line):
        if not isinstance(raw, Mapping):
            errs.add(path, f"must be an object (a mapping of fields), got {_describe(raw)}", line)
            return _INVALID
        fields = spec_fields(self.cls)
        known = [f.yaml for f in fields]
        lines = getattr(raw, "lines", None) or {}
        for key in raw:
            if key not in known and key not in self.ignored:
                errs.add(_join(path, key), _suggest(key, known), lines.get(key))
        kwargs, ok = {}, True
        for f in fields:
            child = _join(path, f.yaml)
            value = raw.get(f.yaml)
            if value is None:  # absent or null: Kubernetes prunes nulls before defaulting
                if f.info.required:
                    errs.add(child, "required field is missing", lines.get(f.yaml, line))
                    ok = False
                continue
            parsed = f.kind.parse(value, child, errs, lines.get(f.yaml, line))
            if parsed is _INVALID:
                ok = False
            else:
                kwargs[f.attr] = parsed
        if not ok:
            return _INVALID
        obj = self.cls(**kwargs)
        problems = list(obj._problems()) if hasattr(obj, "_problems") else []
        for rel, message in problems:
            child, child_line, node = path, line, raw
            for part in rel.split(".") if rel else ():
                child = _join(child, part)
                node_lines = getattr(node, "lines", None) or {}
                child_line = node_lines.get(part, child_line)
                node = node.get(part) if isinstance(node, Mapping) else None
            errs.add(child, message, child_line)
        return _INVALID if problems else obj

    def plain(self, value, keep_none):
        out = {}
        for f in spec_fields(self.cls):
            item = getattr(value, f.attr)
            if item is None:
                if keep_none and not self.omit_none:
                    out[f.yaml] = None
                continue
            out[f.yaml] = f.kind.plain(item, keep_none)
        return out

    def schema(self):
        properties, required = {}, []
        for f in spec_fields(self.cls):
            properties[f.yaml] = _field_schema(f)
            if f.info.required:
                required.append(f.yaml)
        out: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            out["required"] = required
        return out

    def rules(self, path):
        out = []
        for rule, rel, message in getattr(self.cls, "CEL", ()):
            field = ".".join(p for p in (path, rel) if p)
            out.append(cel(rule, f"{field} {message}", f".{rel}" if rel else None))
        for f in spec_fields(self.cls):
            # Transition rules of optional fields sit here, on the parent, so that setting
            # or unsetting the field counts as a change (a rule on the field itself runs
            # only when both the old and the new object have it).
            if f.info.transition == "immutable" and not f.info.required:
                rule = f"has(self.{f.yaml}) == has(oldSelf.{f.yaml}) && "
                rule += f"(!has(self.{f.yaml}) || self.{f.yaml} == oldSelf.{f.yaml})"
                out.append(cel(rule, _transition_message(f, _join(path, f.yaml)), f".{f.yaml}"))
        return out

    def transition_errors(self, old: Any, new: Any, path: str) -> Iterator[FieldError]:
        """What the CRD's transition rules refuse in an update from ``old`` to ``new``."""
        for f in spec_fields(self.cls):
            before, after, child = getattr(old, f.attr), getattr(new, f.attr), _join(path, f.yaml)
            if (f.info.transition == "immutable" and before != after) or (
                f.info.transition == "grow" and after < before
            ):
                yield FieldError(child, _transition_message(f, child).removeprefix(child + " "))
            elif isinstance(f.kind, Obj) and before is not None and after is not None:
                yield from f.kind.transition_errors(before, after, child)


def _transition_message(f: _Field, path: str) -> str:
    what = "is immutable" if f.info.transition == "immutable" else "may only grow"
    return f"{path} {what}: {f.info.transition_reason}" if f.info.transition_reason else f"{path} {what}"


def _transition_rules(f: _Field, path: str) -> list[dict[str, str]]:
    """Transition rules that sit on the field's own schema node."""
    if f.info.transition == "immutable" and f.info.required:
        return [cel("self == oldSelf", _transition_message(f, path))]
    if f.info.transition == "grow":
        return [cel("self >= oldSelf", _transition_message(f, path))]
    return []


def attach_rules(kind: Kind, node: dict[str, Any], path: str) -> None:
    """Add every field's CEL :meth:`Kind.rules` to its node of ``kind.schema()`` (in place)."""
    rules = kind.rules(path)
    if rules:
        node.setdefault("x-kubernetes-validations", []).extend(rules)
    if isinstance(kind, Obj):
        for f in spec_fields(kind.cls):
            child_path, child = _join(path, f.yaml), node["properties"][f.yaml]
            attach_rules(f.kind, child, child_path)
            transitions = _transition_rules(f, child_path)
            if transitions:
                child.setdefault("x-kubernetes-validations", []).extend(transitions)


def _schema_default(f: _Field) -> Any:
    """The field's default as the CRD states it (MISSING if it has none)."""
    if f.default is MISSING or f.default is None:
        return MISSING
    if isinstance(f.kind, Obj) and f.default == f.kind.cls():
        return {}  # "default every nested field", the structural-schema idiom
    return f.kind.plain(f.default, keep_none=False)


def _field_description(f: _Field) -> str:
    text = f.info.doc
    if f.info.computed_default:
        text += f" Defaults to {f.info.computed_default}."
    return text


def _field_schema(f: _Field) -> dict[str, Any]:
    out = {"description": _field_description(f), **f.kind.schema()}
    default = _schema_default(f)
    if default is not MISSING:
        out["default"] = default
    return out
