"""The StreamPipeline custom resource: the single source of truth for its spec.

Every field is declared once, as a frozen dataclass field whose metadata carries a
:class:`FieldInfo` (a *kind* such as :class:`Int` or :class:`Duration`, a description
and whether it is required).  The same declarations drive

* parsing, defaulting and validation (:func:`load_manifest`, :func:`parse_spec`),
* serialisation (:meth:`StreamPipeline.to_manifest`, :meth:`StreamPipeline.to_job_config`),
* the CRD's structural OpenAPI v3 schema (:func:`openapi_schema`), and
* the field reference in ``docs/spec.md`` (:func:`markdown_reference`).

Validation never stops at the first problem: every error is collected and raised
together as one :class:`SpecError` whose ``errors`` are :class:`FieldError` objects
with a field path such as ``spec.generator.ratePerSecond``.

Defaulting follows Kubernetes' structural-schema semantics so that a manifest defaulted
by the API server and one defaulted here are identical: a default applies only when the
field is absent (an explicit ``null`` counts as absent); object fields default to ``{}``
so that their own fields are defaulted in turn; maps and lists are replaced, never merged.
"""

# spec_field() returns a dataclasses.Field, like dataclasses.field() itself:
# ruff: noqa: RUF009

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Final

import yaml

from spjobs.durations import DURATION_PATTERN, EXAMPLES, parse_duration
from spjobs.kafka_time import LOG_APPEND_TIME, TIMESTAMP_TYPE

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "CustomersTopicSpec",
    "DriverMemoryEstimate",
    "DriverSpec",
    "ExecutorSpec",
    "FieldError",
    "FrozenMap",
    "GeneratorSpec",
    "KafkaSpec",
    "PipelineSpec",
    "ProcessingSpec",
    "ResourceList",
    "ResourcesSpec",
    "SinkSpec",
    "SpecError",
    "StreamPipeline",
    "TopicSpec",
    "TopicsSpec",
    "TransactionsTopicSpec",
    "VolumeSpec",
    "load_manifest",
    "markdown_reference",
    "memory_step",
    "openapi_schema",
    "parse_duration",
    "parse_quantity",
    "parse_spark_memory",
    "parse_spec",
]

# The driver's memory outside the JVM heap, measured in local mode (Python RSS against batch
# size and remembered ids; README, "Driver memory on Kubernetes"): Spark's own minimum for
# a JVM's non-heap memory (384 MiB) plus the Python runtime with pyspark, pyarrow and
# pandas loaded (192 MiB); then per record of a batch (collected, checked, settled and
# written: peak, not average) and per id in the deduplication window.
DRIVER_BASE_OVERHEAD_MIB: Final = 384 + 192
DRIVER_BYTES_PER_BATCH_ROW: Final = 1600
DRIVER_BYTES_PER_WINDOW_ID: Final = 180


def memory_step(mib: float) -> str:
    """A Spark memory size for ``mib``: the smallest of 768m, 1g, 1536m, 2g, 3g, 4g, 6g, ...
    that holds it (capped at 1024g, beyond any pod)."""
    step = 768
    while step < min(mib, 2**20):  # also ends for inf and nan
        step = step * 4 // 3 if step & (step - 1) else step * 3 // 2  # 2^k -> 1.5x, 1.5x -> 2^k
    return f"{step // 1024}g" if step % 1024 == 0 else f"{step}m"


@dataclass(frozen=True)
class DriverMemoryEstimate:
    """The Spark driver's memory outside its JVM heap: estimated need against what it gets."""

    needed_mib: float  # without the window when its size is unknown (window_ids None)
    configured_mib: float  # memoryOverhead, or Spark's default for a Python job
    explicit: bool  # memoryOverhead is set
    batch_records: int
    window_ids: float | None  # None: ratePerSecond 0 ("as fast as possible"): unknown

    @property
    def sufficient(self) -> bool | None:
        """Whether the configured overhead holds the estimate; None if the window is unknown."""
        if self.configured_mib < self.needed_mib:
            return False  # short even without the window
        return None if self.window_ids is None else True

    @property
    def suggestion(self) -> str:
        """A ``memoryOverhead`` value that holds the estimate."""
        return memory_step(self.needed_mib)


GROUP: Final = "streampipeline.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "StreamPipeline"
PLURAL: Final = "streampipelines"
DEFAULT_NAMESPACE: Final = "default"
MAX_NAME_LENGTH: Final = 40

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


class SpecError(ValueError):
    """An invalid StreamPipeline; ``errors`` lists every problem found."""

    def __init__(self, errors: Iterable[FieldError], source: str | None = None) -> None:
        self.errors: list[FieldError] = list(errors)
        self.source = source
        n = len(self.errors)
        where = f" in {source}" if source else ""
        lines = [f"invalid {KIND}{where}: {n} error{'' if n == 1 else 's'}"]
        lines += [f"  - {e}" for e in self.errors]
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple[Any, ...]:
        return (SpecError, (self.errors, self.source))

    @property
    def paths(self) -> list[str]:
        return [e.path for e in self.errors]

    def __str__(self) -> str:
        return str(self.args[0])


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
    if suffix[:1] in ("e", "E") and len(suffix) > 1:
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
        message += " (YAML reads unquoted yes/no/on/off/true/false as booleans; quote the value)"
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
    type_name: ClassVar[str] = "string"

    def parse(self, raw, path, errs, line):
        if not isinstance(raw, str):
            errs.add(path, _string_type_error(raw), line)
            return _INVALID
        if self.enum is not None and raw not in self.enum:
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
        if self.enum is not None:
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


@dataclass(frozen=True)
class Duration(Kind):
    """A Go-style duration string; kept as written (``"1m30s"``), parsed to check it."""

    minimum: str = "0"
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
        return raw

    def schema(self):
        return {"type": "string", "pattern": DURATION_PATTERN}

    def constraints(self):
        out = ["Go duration: `250ms`, `5s`, `1m30s`, `2h`"]
        if parse_duration(self.minimum) > 0:
            out.append(f">= {self.minimum}")
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


@dataclass(frozen=True)
class ListOf(Kind):
    item: Kind
    min_items: int | None = None
    max_items: int | None = None
    check: Callable[[tuple], str | None] | None = None
    check_desc: str | None = None

    @property
    def type_name(self) -> str:  # type: ignore[override]
        return f"list of {self.item.type_name}"

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


@dataclass(frozen=True)
class FieldInfo:
    """What the dataclass field means in the manifest (kept in the field's metadata)."""

    kind: Kind
    doc: str
    required: bool = False
    computed_default: str | None = None  # docs text of a default computed from other fields


_META = "streampipeline.spec"


def spec_field(
    kind: Kind,
    doc: str,
    *,
    default: Any = None,
    default_factory: Callable[[], Any] | None = None,
    required: bool = False,
    computed_default: str | None = None,
) -> Any:
    """A dataclass field described by a :class:`FieldInfo`.  Optional fields without a
    default are ``None`` when absent."""
    metadata = {_META: FieldInfo(kind, doc, required, computed_default)}
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
    checks that involve several of its fields.
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


# --- patterns and checks ----------------------------------------------------------------

DNS1123_LABEL: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS1123_SUB = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
DNS1123_SUBDOMAIN: Final = rf"^{_DNS1123_SUB}$"
TOPIC_NAME: Final = r"^[a-zA-Z0-9._-]{1,249}$"
_HOST = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)"
BOOTSTRAP_SERVERS: Final = rf"^{_HOST}:[0-9]{{1,5}}(,{_HOST}:[0-9]{{1,5}})*$"
LOCALE: Final = r"^[a-z]{2}(_[A-Z]{2})?$"
ABSOLUTE_PATH: Final = r"^/[^\x00]+$"
KAFKA_CONFIG_KEY: Final = r"^[a-z0-9]+([._-][a-z0-9]+)*$"
_LABEL_KEY = rf"^({_DNS1123_SUB}/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
_LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"

_DNS_LABEL_DESC = (
    "a DNS-1123 label (lower-case letters, digits and '-', starting and ending with a letter or digit)"
)
_DNS_SUBDOMAIN_DESC = "a DNS-1123 subdomain (lower-case letters, digits, '-' and '.')"


def _check_topic_name(name: str) -> str | None:
    return "must not be '.' or '..'" if name in (".", "..") else None


def _check_ports(servers: str) -> str | None:
    for server in servers.split(","):
        port = int(server.rsplit(":", 1)[1])
        if not 1 <= port <= 65535:
            return f"port must be 1..65535, got {port} in {server!r}"
    return None


def _check_sink_path(path: str) -> str | None:
    if path.rstrip("/") == "":
        return "must not be the root directory"
    if ".." in path.split("/"):
        return f"must not contain '..' segments, got {path!r}"
    return None


def _check_ascending(bands: tuple) -> str | None:
    for lower, upper in itertools.pairwise(bands):
        if upper <= lower:
            return f"must be strictly ascending, got {list(bands)} ({upper} after {lower})"
    return None


def _dns_label(max_length: int = 63, reason: str = "") -> Str:
    return Str(DNS1123_LABEL, _DNS_LABEL_DESC, min_length=1, max_length=max_length, length_reason=reason)


def _dns_subdomain() -> Str:
    return Str(DNS1123_SUBDOMAIN, _DNS_SUBDOMAIN_DESC, min_length=1, max_length=253)


def _kafka_config_kind() -> MapOf:
    return MapOf(
        Str(),
        key_pattern=KAFKA_CONFIG_KEY,
        key_desc="a Kafka topic config name such as 'retention.ms'",
    )


# --- the spec ---------------------------------------------------------------------------

_TOPIC_NAME_KIND: Final = Str(
    TOPIC_NAME,
    "a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)",
    min_length=1,
    max_length=249,
    check=_check_topic_name,
    check_desc="not `.` or `..`",
)


@dataclass(frozen=True)
class TopicSpec:
    """One Kafka topic (a Strimzi ``KafkaTopic``). Subclasses fix the role and the config default."""

    ROLE: ClassVar[str] = ""

    name: str | None = spec_field(_TOPIC_NAME_KIND, "Kafka topic name.")
    partitions: int = spec_field(Int(1, 1000), "Number of partitions.", default=3)
    replicas: int = spec_field(
        Int(1, 10),
        "Replication factor. 1 suits a single-broker development cluster; use 3 in production. "
        "Strimzi changes it on an existing topic only with Cruise Control; without it the "
        "KafkaTopic stays not ready (TopicsReady says why).",
        default=1,
    )
    config: FrozenMap = spec_field(
        _kafka_config_kind(),
        "Kafka topic configs (string values: quote numbers). Replaces the default map as a whole.",
        default=FrozenMap(),
    )

    def resolved_name(self, pipeline_name: str) -> str:
        """``name`` if set, else ``<pipeline name>-<role>``."""
        return self.name or f"{pipeline_name}-{self.ROLE}"


@dataclass(frozen=True)
class CustomersTopicSpec(TopicSpec):
    """The compacted customers topic (key = customer_id, latest version wins)."""

    ROLE: ClassVar[str] = "customers"

    name: str | None = spec_field(
        _TOPIC_NAME_KIND,
        "Kafka topic name.",
        computed_default="`<metadata.name>-customers`",
    )
    config: FrozenMap = spec_field(
        _kafka_config_kind(),
        "Kafka topic configs (string values: quote numbers). Replaces the default map as a whole, "
        "so keep `cleanup.policy: compact` when overriding it.",
        default=FrozenMap({"cleanup.policy": "compact"}),
    )


@dataclass(frozen=True)
class TransactionsTopicSpec(TopicSpec):
    """The transactions topic (an append-only event stream)."""

    ROLE: ClassVar[str] = "transactions"

    name: str | None = spec_field(
        _TOPIC_NAME_KIND,
        "Kafka topic name.",
        computed_default="`<metadata.name>-transactions`",
    )
    config: FrozenMap = spec_field(
        _kafka_config_kind(),
        "Kafka topic configs (string values: quote numbers). Replaces the default map as a whole.",
        default=FrozenMap({"retention.ms": "604800000"}),
    )


@dataclass(frozen=True)
class TopicsSpec:
    """The pipeline's two input topics."""

    customers: CustomersTopicSpec = spec_field(
        Obj(CustomersTopicSpec), "Customer records (compacted).", default_factory=CustomersTopicSpec
    )
    transactions: TransactionsTopicSpec = spec_field(
        Obj(TransactionsTopicSpec), "Transaction events.", default_factory=TransactionsTopicSpec
    )


@dataclass(frozen=True)
class KafkaSpec:
    """Where the topics live."""

    cluster: str = spec_field(
        _dns_label(47, " ('<cluster>-kafka-bootstrap' must fit in 63)"),
        "Name of the Strimzi `Kafka` cluster (in the pipeline's namespace) that hosts the topics.",
        required=True,
    )
    bootstrap_servers: str | None = spec_field(
        Str(
            BOOTSTRAP_SERVERS,
            "a comma-separated list of host:port",
            check=_check_ports,
            check_desc="ports 1..65535",
        ),
        "Kafka bootstrap servers the generator and the Spark job connect to.",
        computed_default="`<cluster>-kafka-bootstrap:9092` (Strimzi's plain listener)",
    )
    topics: TopicsSpec = spec_field(Obj(TopicsSpec), "The input topics.", default_factory=TopicsSpec)

    def resolved_bootstrap_servers(self) -> str:
        """``bootstrapServers`` if set, else Strimzi's in-namespace bootstrap service."""
        return self.bootstrap_servers or f"{self.cluster}-kafka-bootstrap:9092"


@dataclass(frozen=True)
class ResourceList:
    """CPU and memory amounts (a subset of a Kubernetes ResourceList)."""

    cpu: str | None = spec_field(Quantity(), "CPU, e.g. `100m` or `1`.")
    memory: str | None = spec_field(Quantity(memory=True), "Memory, e.g. `128Mi` or `1Gi`.")


@dataclass(frozen=True)
class ResourcesSpec:
    """Kubernetes ResourceRequirements (cpu and memory only)."""

    requests: ResourceList = spec_field(
        Obj(ResourceList, omit_none=True), "Guaranteed resources.", default_factory=ResourceList
    )
    limits: ResourceList = spec_field(
        Obj(ResourceList, omit_none=True),
        "Hard caps; each must be >= its request.",
        default_factory=ResourceList,
    )

    def _problems(self) -> Iterator[tuple[str, str]]:
        for resource in ("cpu", "memory"):
            request, limit = getattr(self.requests, resource), getattr(self.limits, resource)
            if request is not None and limit is not None and parse_quantity(limit) < parse_quantity(request):
                yield f"limits.{resource}", f"must be >= requests.{resource} ({request}), got {limit!r}"

    def to_k8s(self) -> dict[str, dict[str, str]]:
        """As a Kubernetes ``resources`` block (unset amounts left out)."""
        return Obj(ResourcesSpec).plain(self, keep_none=False)


DEFAULT_GENERATOR_RESOURCES: Final = ResourcesSpec(
    requests=ResourceList(cpu="100m", memory="128Mi"), limits=ResourceList(memory="512Mi")
)


@dataclass(frozen=True)
class GeneratorSpec:
    """The data generator Deployment."""

    replicas: int = spec_field(Int(0, 100), "Generator pods; 0 pauses data generation.", default=1)
    rate_per_second: float = spec_field(
        Number(0, 1_000_000),
        "Transactions per second produced by each replica; 0 means as fast as possible.",
        default=100.0,
    )
    customers: int = spec_field(
        Int(1, 10_000_000), "Number of simulated customers (distinct customer ids).", default=1000
    )
    locale: str = spec_field(
        Str(LOCALE, "a locale such as 'pt_BR' or 'en' (xx or xx_YY)"),
        "Faker locale for names, cities and states.",
        default="pt_BR",
    )
    seed: int = spec_field(Int(0, 2**32 - 1), "Random seed, for reproducible data.", default=42)
    invalid_ratio: float = spec_field(
        Number(0, 1),
        "Fraction of records deliberately made invalid, to exercise the quarantine.",
        default=0.02,
    )
    max_lateness: str = spec_field(
        Duration(),
        "How far behind the wall clock an event's event_time may be (simulated late data).",
        default="5s",
    )
    resources: ResourcesSpec = spec_field(
        Obj(ResourcesSpec),
        "CPU/memory requests and limits of each generator pod. Replaces the default as a whole.",
        default=DEFAULT_GENERATOR_RESOURCES,
    )


@dataclass(frozen=True)
class DriverSpec:
    """The Spark driver."""

    cores: int = spec_field(Int(1, 64), "Driver cores (`spark.driver.cores`).", default=1)
    memory: str = spec_field(SparkMemory(), "Driver heap (`spark.driver.memory`).", default="1g")
    memory_overhead: str | None = spec_field(
        SparkMemory(minimum="1m"),
        "Driver memory outside the JVM heap (`spark.driver.memoryOverhead`): the JVM's own "
        "non-heap memory and the Python process, which holds each batch and the deduplication "
        "window's ids. Unset: Spark's default (for Python jobs on Kubernetes 40% of `memory`, "
        "at least 384 MiB). The status condition `DriverMemorySufficient` compares it with "
        "an estimate (576 MiB + 1,600 B per record of a full batch + 180 B per id in the "
        "window) and says what to set; `streampipeline validate` prints the same.",
    )


@dataclass(frozen=True)
class ExecutorSpec:
    """The Spark executors (ignored by the local runner, which runs Spark in local mode)."""

    instances: int = spec_field(Int(1, 100), "Executor pods (`spark.executor.instances`).", default=1)
    cores: int = spec_field(Int(1, 64), "Cores per executor (`spark.executor.cores`).", default=1)
    memory: str = spec_field(SparkMemory(), "Heap per executor (`spark.executor.memory`).", default="1g")


@dataclass(frozen=True)
class ProcessingSpec:
    """The Spark Structured Streaming job."""

    trigger: str = spec_field(Duration(minimum="100ms"), "Micro-batch interval.", default="5s")
    watermark: str = spec_field(
        Duration(),
        "Event-time lateness bound: transactions older than the latest event time minus this are "
        "flagged is_late (they are still written and aggregated).",
        default="30s",
    )
    deduplication_window: str = spec_field(
        Duration(minimum="1s"),
        "How long a transaction id is remembered, in Kafka time: a record whose id was "
        "accepted less than this before it is quarantined as duplicate_transaction_id; older "
        "ids are forgotten (up to 1/16 later), which bounds the job's state. Each remembered "
        "id costs about 180 bytes of driver memory: ratePerSecond x replicas x window.",
        default="1h",
    )
    max_offsets_per_trigger: int = spec_field(
        Int(minimum=1),
        "Upper bound on transaction records read per micro-batch. A batch is collected on the "
        "Spark driver after validation, so this also bounds the driver's memory per batch.",
        default=100_000,
    )
    age_bands: tuple[int, ...] = spec_field(
        ListOf(
            Int(1, 150),
            min_items=1,
            max_items=10,
            check=_check_ascending,
            check_desc="strictly ascending",
        ),
        "Age cut-offs in years; n cut-offs make n+1 bands (the default gives <30, 30-59, 60+).",
        default=(30, 60),
    )
    driver: DriverSpec = spec_field(Obj(DriverSpec), "Spark driver.", default_factory=DriverSpec)
    executor: ExecutorSpec = spec_field(Obj(ExecutorSpec), "Spark executors.", default_factory=ExecutorSpec)


@dataclass(frozen=True)
class VolumeSpec:
    """The PersistentVolumeClaim that holds the sink."""

    size: str = spec_field(Quantity(positive=True), "Requested storage.", default="10Gi")
    storage_class_name: str | None = spec_field(
        Str(
            rf"^({_DNS1123_SUB})?$",
            "empty or " + _DNS_SUBDOMAIN_DESC,
            max_length=253,
        ),
        'StorageClass; unset uses the cluster default, "" disables dynamic provisioning.',
    )
    existing_claim: str | None = spec_field(
        _dns_subdomain(),
        "Use this existing PVC instead of creating one (`size` and `storageClassName` are then ignored).",
    )


@dataclass(frozen=True)
class SinkSpec:
    """Where the Parquet output goes."""

    path: str = spec_field(
        Str(ABSOLUTE_PATH, "an absolute path", check=_check_sink_path, check_desc="not `/`, no `..`"),
        "Directory (the volume's mount point) for the Parquet datasets and checkpoints.",
        default="/data/streampipeline",
    )
    volume: VolumeSpec = spec_field(Obj(VolumeSpec), "Storage for `path`.", default_factory=VolumeSpec)
    retain_on_delete: bool = spec_field(
        Bool(),
        "Keep the volume and the two Kafka topics (the checkpoint on the volume refers to their "
        "offsets) when the StreamPipeline is deleted: re-created, it resumes where it stopped.",
        default=True,
    )


@dataclass(frozen=True)
class PipelineSpec:
    """Desired state of a StreamPipeline: Kafka topics, a data generator and a Spark
    Structured Streaming job that writes Parquet."""

    kafka: KafkaSpec = spec_field(Obj(KafkaSpec), "Kafka cluster and topics.", required=True)
    generator: GeneratorSpec = spec_field(
        Obj(GeneratorSpec), "Data generator.", default_factory=GeneratorSpec
    )
    processing: ProcessingSpec = spec_field(
        Obj(ProcessingSpec), "Spark streaming job.", default_factory=ProcessingSpec
    )
    sink: SinkSpec = spec_field(Obj(SinkSpec), "Parquet output.", default_factory=SinkSpec)
    suspend: bool = spec_field(
        Bool(), "Stop the generator and the Spark job, keeping topics and data.", default=False
    )


# --- the manifest -----------------------------------------------------------------------

_NAME_KIND: Final = _dns_label(MAX_NAME_LENGTH, " (child resource names append suffixes)")
_NAMESPACE_KIND: Final = _dns_label()

# ObjectMeta fields the API server fills in; accepted (e.g. from `kubectl get -o yaml`) and dropped.
_SERVER_METADATA: Final = frozenset(
    {
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "finalizers",
        "ownerReferences",
        "managedFields",
        "selfLink",
        "generateName",
    }
)


@dataclass(frozen=True)
class _Metadata:
    name: str = spec_field(_NAME_KIND, "Pipeline name.", required=True)
    namespace: str | None = spec_field(_NAMESPACE_KIND, "Namespace.")
    labels: FrozenMap = spec_field(
        MapOf(
            Str(_LABEL_VALUE, "a label value (<= 63 of A-Z a-z 0-9 - _ .)", max_length=63),
            key_pattern=_LABEL_KEY,
            key_desc="a label key such as 'app.kubernetes.io/part-of'",
        ),
        "Labels.",
        default=FrozenMap(),
    )
    annotations: FrozenMap = spec_field(
        MapOf(Str(), key_pattern=_LABEL_KEY, key_desc="an annotation key such as 'example.com/owner'"),
        "Annotations.",
        default=FrozenMap(),
    )


@dataclass(frozen=True)
class _Manifest:
    api_version: str = spec_field(Str(enum=(API_VERSION,)), "API version.", required=True)
    kind: str = spec_field(Str(enum=(KIND,)), "Kind.", required=True)
    metadata: _Metadata = spec_field(Obj(_Metadata, ignored=_SERVER_METADATA), "Metadata.", required=True)
    spec: PipelineSpec = spec_field(Obj(PipelineSpec), "Spec.", required=True)


_MANIFEST_KIND: Final = Obj(_Manifest, ignored=frozenset({"status"}))
_SPEC_KIND: Final = Obj(PipelineSpec)


@dataclass(frozen=True)
class StreamPipeline:
    """A validated, fully defaulted StreamPipeline."""

    name: str
    namespace: str
    spec: PipelineSpec
    labels: FrozenMap = FrozenMap()
    annotations: FrozenMap = FrozenMap()

    @property
    def bootstrap_servers(self) -> str:
        return self.spec.kafka.resolved_bootstrap_servers()

    @property
    def customers_topic(self) -> str:
        return self.spec.kafka.topics.customers.resolved_name(self.name)

    @property
    def transactions_topic(self) -> str:
        return self.spec.kafka.topics.transactions.resolved_name(self.name)

    def driver_memory(self) -> DriverMemoryEstimate:
        """What the Spark driver needs outside its JVM heap on Kubernetes, and what it gets.

        The pod's memory limit is heap + ``memoryOverhead``, and the overhead must hold the
        JVM's own non-heap memory and the whole Python process, with a collected batch and
        the deduplication window's ids. Spark's default (40% of the heap, at least 384 MiB)
        is less than the example's Python process alone once its window has filled, and a
        driver killed for memory rebuilds the same window when it restarts: a crash loop.
        The operator reports this as a condition; it does not size the pod itself, because
        the window outlives a change of rate (a lower rate would shrink the pod below the
        window it still has to rebuild).
        """
        g, proc = self.spec.generator, self.spec.processing
        # Each generator pod has its own customer population, and the first batch (or the
        # first after a rollout) carries every customer version: customers are not capped.
        batch = proc.max_offsets_per_trigger + g.customers * max(g.replicas, 1)
        ids: float | None = None
        if g.rate_per_second > 0 or g.replicas == 0:
            window_s = parse_duration(proc.deduplication_window)
            ids = g.rate_per_second * g.replicas * (1 - g.invalid_ratio) * window_s * 17 / 16
        needed = (
            DRIVER_BASE_OVERHEAD_MIB
            + (batch * DRIVER_BYTES_PER_BATCH_ROW + (ids or 0) * DRIVER_BYTES_PER_WINDOW_ID) / 2**20
        )
        explicit = proc.driver.memory_overhead
        if explicit:
            configured = parse_spark_memory(explicit) / 2**20
        else:  # Spark's default for a Python job on Kubernetes
            configured = max(0.4 * parse_spark_memory(proc.driver.memory) / 2**20, 384.0)
        return DriverMemoryEstimate(needed, configured, bool(explicit), batch, ids)

    def to_manifest(self) -> dict[str, Any]:
        """The fully defaulted manifest (computed defaults stay implicit); it round-trips
        through :func:`load_manifest`."""
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if self.labels:
            metadata["labels"] = dict(self.labels)
        if self.annotations:
            metadata["annotations"] = dict(self.annotations)
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": metadata,
            "spec": _SPEC_KIND.plain(self.spec, keep_none=False),
        }

    def to_job_config(self) -> dict[str, Any]:
        """The JSON-serialisable config the generator and the Spark job read: camelCase,
        every field present (unset optional fields as ``None``), computed defaults resolved,
        durations as written ("5s"); ``suspend`` is left out (it is not the jobs' business)."""
        spec = _SPEC_KIND.plain(self.spec, keep_none=True)
        del spec["suspend"]
        kafka = spec["kafka"]
        kafka["bootstrapServers"] = self.bootstrap_servers
        kafka["topics"]["customers"]["name"] = self.customers_topic
        kafka["topics"]["transactions"]["name"] = self.transactions_topic
        return {"name": self.name, "namespace": self.namespace, **spec}


def _finish(
    name: Any, namespace: str, spec: Any, labels: Any, annotations: Any, errs: _Errors, source: str | None
) -> StreamPipeline:
    pipeline = None
    if not any(part is _INVALID for part in (name, namespace, spec, labels, annotations)):
        pipeline = StreamPipeline(name, namespace, spec, labels, annotations)
        for role in ("customers", "transactions"):
            stamped = getattr(spec.kafka.topics, role).config.get(TIMESTAMP_TYPE, LOG_APPEND_TIME)
            if stamped != LOG_APPEND_TIME:
                errs.add(
                    f'spec.kafka.topics.{role}.config["{TIMESTAMP_TYPE}"]',
                    f"must be {LOG_APPEND_TIME} (the broker's clock; the job measures deduplication, "
                    f"enrichment and lateness in Kafka time, so producers must not set it), got "
                    f"{stamped!r}: remove it, the pipeline's topics always use {LOG_APPEND_TIME}",
                )
        if pipeline.customers_topic == pipeline.transactions_topic:
            errs.add(
                "spec.kafka.topics.transactions.name",
                f"must differ from the customers topic, both are {pipeline.customers_topic!r}",
            )
    if errs.items or pipeline is None:
        raise SpecError(errs.items, source)
    return pipeline


def parse_spec(
    name: str, spec: Mapping[str, Any] | None, namespace: str = DEFAULT_NAMESPACE
) -> StreamPipeline:
    """Validate a custom resource's ``spec`` (e.g. kopf's ``spec`` argument).

    Raises :class:`SpecError` listing every problem, including a bad ``name``/``namespace``.
    """
    errs = _Errors()
    parsed_name = _NAME_KIND.parse(name, "metadata.name", errs, None)
    parsed_namespace = _NAMESPACE_KIND.parse(namespace, "metadata.namespace", errs, None)
    if spec is None:
        errs.add("spec", "required field is missing")
        parsed_spec = _INVALID
    else:
        parsed_spec = _SPEC_KIND.parse(spec, "spec", errs, None)
    return _finish(parsed_name, parsed_namespace, parsed_spec, FrozenMap(), FrozenMap(), errs, None)


def load_manifest(
    source: str | Path | Mapping[str, Any], *, default_namespace: str = DEFAULT_NAMESPACE
) -> StreamPipeline:
    """Load a StreamPipeline manifest from a file path, YAML text or an already-parsed dict.

    A ``str`` is YAML text if it spans several lines or looks like a mapping, else a path.
    ``default_namespace`` applies when ``metadata.namespace`` is absent.  Raises
    :class:`SpecError` (with line numbers when the input was YAML) for malformed YAML,
    several documents, an empty document and every invalid field; ``OSError`` if a file
    cannot be read.
    """
    errs = _Errors()
    label: str | None = None
    if isinstance(source, Mapping):
        raw: Any = source
    elif isinstance(source, (str, Path)):
        if isinstance(source, Path) or not _looks_like_yaml(source):
            label = str(source)
            text = Path(source).read_text(encoding="utf-8")
        else:
            text = source
        raw = _load_yaml(text, errs)
        if raw is _INVALID:
            raise SpecError(errs.items, label)
    else:
        raise TypeError(f"load_manifest() takes a path, YAML text or a dict, not {type(source).__name__}")
    manifest = _MANIFEST_KIND.parse(raw, "", errs, None)
    if manifest is _INVALID:
        raise SpecError(errs.items, label)
    meta = manifest.metadata
    namespace = meta.namespace or default_namespace
    return _finish(meta.name, namespace, manifest.spec, meta.labels, meta.annotations, errs, label)


def _looks_like_yaml(text: str) -> bool:
    stripped = text.strip()
    if not stripped or "\n" in stripped or ": " in stripped or stripped.endswith(":"):
        return True
    return stripped[:1] in ("{", "[", "-", "#")


# --- YAML loading with line numbers and duplicate-key detection -------------------------


class _LineDict(dict):
    """A mapping from YAML that remembers the line of each key."""

    lines: dict[Any, int]


class _LineList(list):
    """A sequence from YAML that remembers the line of each item."""

    lines: list[int]


class _Loader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[FieldError] = []


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Iterator[_LineDict]:
    data = _LineDict()
    data.lines = {}
    yield data
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:  # explicit keys only: merged (<<) keys may be overridden
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if isinstance(key, (str, int, float, bool)) and key in seen:
            loader.duplicates.append(
                FieldError("<yaml>", f"duplicate key {key!r} (first defined on line {seen[key]})", line)
            )
        elif isinstance(key, (str, int, float, bool)):
            seen[key] = line
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "found an unhashable key",
                key_node.start_mark,
            ) from None
        data[key] = loader.construct_object(value_node, deep=True)
        data.lines[key] = key_node.start_mark.line + 1


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> Iterator[_LineList]:
    data = _LineList()
    data.lines = []
    yield data
    for child in node.value:
        data.append(loader.construct_object(child, deep=True))
        data.lines.append(child.start_mark.line + 1)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def _load_yaml(text: str, errs: _Errors) -> Any:
    """The single document in *text* (errors reported to *errs*; ``_INVALID`` if unusable)."""
    loader = _Loader(text)
    try:
        documents = []
        while loader.check_data():
            documents.append(loader.get_data())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        errs.add("<yaml>", f"malformed YAML{where}: {problem}", line)
        return _INVALID
    except yaml.YAMLError as exc:
        errs.add("<yaml>", f"malformed YAML: {exc}")
        return _INVALID
    finally:
        loader.dispose()
    errs.items.extend(loader.duplicates)
    documents = [d for d in documents if d is not None]
    if not documents:
        errs.add("<yaml>", f"the document is empty; expected one {KIND} manifest")
        return _INVALID
    if len(documents) > 1:
        errs.add("<yaml>", f"expected exactly one YAML document (one {KIND}), found {len(documents)}")
        return _INVALID
    return documents[0]


# --- generated artefacts ----------------------------------------------------------------


def openapi_schema() -> dict[str, Any]:
    """The structural OpenAPI v3 schema of ``spec`` for the CRD (``properties.spec``).

    Checks that a schema cannot express (ascending ``ageBands``, minimum trigger and Spark
    memory, limits >= requests, distinct topic names...) are enforced by :func:`parse_spec`.
    """
    schema = _SPEC_KIND.schema()
    return {"description": _first_paragraph(PipelineSpec.__doc__), **copy.deepcopy(schema)}


def _first_paragraph(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def _default_text(f: _Field) -> str:
    if f.info.required:
        return "**required**"
    if f.info.computed_default:
        return f.info.computed_default
    default = _schema_default(f)
    if default is MISSING:
        return "unset"
    if default == {}:
        return "`{}`"
    return f"`{json.dumps(default)}`"


def _reference_rows(cls: type, prefix: str) -> Iterator[str]:
    for f in spec_fields(cls):
        path = f"{prefix}.{f.yaml}"
        constraints = "; ".join(f.kind.constraints()) or ""
        cells = [f"`{path}`", f.kind.type_name, _default_text(f), constraints, f.info.doc]
        yield "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
        if isinstance(f.kind, Obj):
            yield from _reference_rows(f.kind.cls, path)


def markdown_reference() -> str:
    """The field table of ``docs/spec.md`` (a test keeps the two identical)."""
    header = ["| Field | Type | Default | Constraints | Meaning |", "|---|---|---|---|---|"]
    return "\n".join([*header, *_reference_rows(PipelineSpec, "spec")]) + "\n"


if __name__ == "__main__":  # python -m streampipeline.spec [schema|markdown]
    import sys

    if sys.argv[1:] == ["markdown"]:
        print(markdown_reference(), end="")
    else:
        print(json.dumps(openapi_schema(), indent=2, ensure_ascii=False))
