"""The data contract's per-record rules in plain Python (stdlib only).

The Spark job judges records with column expressions (:mod:`spjobs.processor.transforms`);
a producer that wants to refuse a bad record *before* it reaches Kafka (the REST
service's POST) cannot run Spark, so the same rules live here too, as a pure function
that reports every bad field of a record instead of the first one.  It is stricter than
the job where the job has no way to be: a value must be a JSON string (the job reads
every field as text), and a field the contract does not name is refused.  The test
suite holds this module and the Spark rules to the same verdicts on the same records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Final, Literal

from . import contract as C

Kind = Literal["customer", "transaction"]

# Reasons the Spark job has no use for: it never sees these records.
REASON_WRONG_TYPE: Final = "wrong_type"
REASON_UNKNOWN_FIELD: Final = "unknown_field"
REASON_NOT_AN_OBJECT: Final = C.REASON_MALFORMED_JSON
REASON_INVALID_CURRENCY: Final = "invalid_currency"

# Same shapes as the Spark job's regular expressions (transforms.py).
_AMOUNT_RE: Final = re.compile(r"-?[0-9]{1,10}(\.[0-9]{1,2})?")
_DATE_RE: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TS_RE: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?"
    r"(Z|[+-][0-9]{2}:?[0-9]{2})?"
)
MAX_FIELD_CHARS: Final = 1000  # no contract field is anywhere near this; a bound for hostile input


@dataclass(frozen=True)
class FieldError:
    """One bad field of one record: which, why (a reason code), and a sentence."""

    field: str
    reason: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason, "message": self.message}


def parse_date(text: str) -> date | None:
    """``yyyy-MM-dd`` that is a real calendar date, else None."""
    m = _DATE_RE.fullmatch(text)
    if not m:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def parse_timestamp(text: str) -> datetime | None:
    """An ISO-8601 timestamp as the job accepts it (UTC when no offset), else None."""
    m = _TS_RE.fullmatch(text)
    if not m:
        return None
    tz = timezone.utc
    off = m[8]
    if off and off != "Z":
        digits = off[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 18 or minutes > 59:
            return None
        delta = timedelta(hours=hours, minutes=minutes)
        tz = timezone(delta if off[0] == "+" else -delta)
    micros = int((m[7] or ".0")[1:7].ljust(6, "0"))
    try:
        return datetime(int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6]), micros, tzinfo=tz)
    except ValueError:
        return None


def _check_amount(text: str) -> FieldError | None:
    value = text.strip()
    if not _AMOUNT_RE.fullmatch(value):
        return FieldError(
            "amount", C.REASON_INVALID_AMOUNT, f"amount is not a decimal with at most 2 places: {text!r}"
        )
    if float(value) <= 0:
        return FieldError("amount", C.REASON_NON_POSITIVE_AMOUNT, f"amount must be > 0, got {text!r}")
    return None


def _fields(kind: Kind) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if kind == "customer":
        return C.CUSTOMER_FIELDS, C.CUSTOMER_REQUIRED
    return C.TRANSACTION_FIELDS, C.TRANSACTION_REQUIRED


def validate(kind: Kind, record: Any) -> list[FieldError]:
    """Every defect of ``record`` as a ``kind`` record; an empty list means it is valid."""
    if not isinstance(record, dict):
        return [FieldError("", REASON_NOT_AN_OBJECT, f"a record must be a JSON object, got {_type(record)}")]
    fields, required = _fields(kind)
    errors: list[FieldError] = []
    for name in sorted(k for k in record if k not in fields):
        shown = name if len(name) <= 80 else name[:80] + "..."
        errors.append(FieldError(shown, REASON_UNKNOWN_FIELD, f"{kind} records have no field {shown!r}"))
    text: dict[str, str] = {}
    for name in fields:
        value = record.get(name)
        if value is None:
            if name in required:
                errors.append(FieldError(name, C.REASON_MISSING_FIELD, f"missing required field {name!r}"))
            continue
        if not isinstance(value, str):
            errors.append(
                FieldError(name, REASON_WRONG_TYPE, f"{name} must be a JSON string, got {_type(value)}")
            )
            continue
        if len(value) > MAX_FIELD_CHARS:
            errors.append(
                FieldError(name, REASON_WRONG_TYPE, f"{name} is longer than {MAX_FIELD_CHARS} characters")
            )
            continue
        if not value.strip():
            if name in required:
                errors.append(FieldError(name, C.REASON_MISSING_FIELD, f"required field {name!r} is blank"))
            continue
        text[name] = value
    errors += _check_values(kind, text)
    return errors


def _check_values(kind: Kind, text: dict[str, str]) -> list[FieldError]:
    errors: list[FieldError] = []
    if kind == "customer":
        if "birth_date" in text and parse_date(text["birth_date"]) is None:
            errors.append(
                FieldError(
                    "birth_date",
                    C.REASON_MALFORMED_DATE,
                    f"birth_date is not yyyy-MM-dd: {text['birth_date']!r}",
                )
            )
        timestamps = ("signup_time", "updated_at")
    else:
        timestamps = ("event_time",)
        if "amount" in text and (err := _check_amount(text["amount"])):
            errors.append(err)
        if "category" in text and text["category"] not in C.CATEGORIES:
            errors.append(
                FieldError("category", C.REASON_UNKNOWN_CATEGORY, f"unknown category: {text['category']!r}")
            )
        if "payment_method" in text and text["payment_method"] not in C.PAYMENT_METHODS:
            errors.append(
                FieldError(
                    "payment_method",
                    C.REASON_UNKNOWN_PAYMENT_METHOD,
                    f"unknown payment_method: {text['payment_method']!r}",
                )
            )
        if "currency" in text and text["currency"] != C.CURRENCY:
            errors.append(
                FieldError(
                    "currency",
                    REASON_INVALID_CURRENCY,
                    f"currency must be {C.CURRENCY!r}, got {text['currency']!r}",
                )
            )
    for name in timestamps:
        if name in text and parse_timestamp(text[name]) is None:
            errors.append(
                FieldError(
                    name, C.REASON_MALFORMED_DATE, f"{name} is not an ISO-8601 timestamp: {text[name]!r}"
                )
            )
    return errors


def _type(value: Any) -> str:
    """The JSON name of a Python value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


__all__ = ["FieldError", "Kind", "parse_date", "parse_timestamp", "validate"]
