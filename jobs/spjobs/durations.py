"""Go-style duration strings ("250ms", "5s", "1m30s", "2h").

The one parser for durations: the spec model (and so the CRD pattern), the generator
and the Spark job all use it, so "1m30s" means the same everywhere.  Stdlib only: it
lives with the jobs, which run in images without the operator package.
The grammar is Go's ``time.ParseDuration`` without signs: one or more
``<number><unit>`` parts, where the number may have a fraction (``1.5h``, ``.5s``)
and the unit is one of ``ns``, ``us`` (or ``µs``), ``ms``, ``s``, ``m``, ``h``.
The bare string ``"0"`` is also accepted.  A number without a unit is rejected.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final

_NUMBER: Final = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_UNIT: Final = r"(?:ns|us|µs|μs|ms|s|m|h)"  # Go accepts both micro signs (U+00B5, U+03BC)

#: Regular expression (RE2 and ECMA-262 compatible) for a valid duration; used in the CRD.
DURATION_PATTERN: Final = rf"^(?:0|(?:{_NUMBER}{_UNIT})+)$"

_DURATION_RE: Final = re.compile(DURATION_PATTERN)
_PART_RE: Final = re.compile(rf"({_NUMBER})({_UNIT})")
_UNIT_SECONDS: Final = {
    "ns": Decimal("1e-9"),
    "us": Decimal("1e-6"),
    "µs": Decimal("1e-6"),
    "μs": Decimal("1e-6"),
    "ms": Decimal("1e-3"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
}

EXAMPLES: Final = "'250ms', '5s', '1m30s' or '2h'"


def is_duration(text: object) -> bool:
    """True if *text* is a string :func:`parse_duration` accepts."""
    return isinstance(text, str) and _DURATION_RE.fullmatch(text) is not None


def parse_duration(text: str) -> float:
    """Return the duration *text* in seconds.

    >>> parse_duration("1m30s")
    90.0
    >>> parse_duration("250ms")
    0.25

    Raises ``ValueError`` for anything that is not a Go-style duration (including
    negative durations and numbers without a unit) and ``TypeError`` for non-strings.
    """
    if not isinstance(text, str):
        raise TypeError(f"duration must be a string, got {type(text).__name__}")
    if not _DURATION_RE.fullmatch(text):
        raise ValueError(
            f"invalid duration {text!r}: expected numbers with units (ns, us, ms, s, m, h), e.g. {EXAMPLES}"
        )
    if text == "0":
        return 0.0
    return float(sum(Decimal(number) * _UNIT_SECONDS[unit] for number, unit in _PART_RE.findall(text)))


def to_seconds(value: str | float | int) -> float:
    """A duration string, or a plain number of seconds (for command-line flags)."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"negative duration: {value!r}")
        return float(value)
    return parse_duration(value)
