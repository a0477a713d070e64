"""The record checks: one Kafka record's bytes against the contract, strictly, in plain Python.

Why Python and not Spark's ``from_json``: Jackson in PERMISSIVE mode accepts what the
contract forbids (single quotes, trailing garbage, a second object silently dropped,
invalid UTF-8 replaced by U+FFFD, objects and numbers re-printed as strings), and none of
that can be switched off per record.  The standard library's decoder is RFC 8259 once
its three hooks reject NaN/Infinity and duplicate names and keep numbers as text; the
bytes are decoded as strict UTF-8 first.  Every outcome is a value: a check never
raises, whatever the bytes (:func:`check` is property-tested on random input), so no
record can fail a batch.

The functions run on the executors (``mapInArrow``, see :mod:`.transforms`) and return
the typed fields the driver needs: instants as microseconds since the epoch, a date as
days, an amount as integer cents.  Order of the checks and every limit: :mod:`spjobs.contract`.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any, NamedTuple

from .. import contract as C

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MIN_US = C.MIN_TIMESTAMP_MS * 1000
_MAX_US = C.MAX_TIMESTAMP_MS * 1000
_US_PER_DAY = 86_400_000_000
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TS = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(?:(Z)|([+-])([0-9]{2}):([0-9]{2}))"
)
_AMOUNT = re.compile(C.AMOUNT_PATTERN)
_CATEGORIES = frozenset(C.CATEGORIES)
_PAYMENT_METHODS = frozenset(C.PAYMENT_METHODS)
_RANGE_TEXT = "[1970-01-01T00:00:00Z, 2100-01-01T00:00:00Z)"


class _Number:
    """A JSON number, kept as its text: no field is a number, so it is only ever a wrong
    type, and converting it could itself fail (an int of 5,000 digits raises).  Not a
    str subclass, so that ``str.join`` refuses it (the fast path of :func:`_fields`)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class _Duplicate(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _Constant(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _Duplicate(name)
            seen.add(name)
    return obj


def _constant(name: str) -> Any:
    raise _Constant(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs, parse_float=_Number, parse_int=_Number, parse_constant=_constant
)
_SCAN = _DECODER.scan_once


def _type_name(v: object) -> str:
    if isinstance(v, _Number):
        return "number"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, dict):
        return "object"
    if isinstance(v, list):
        return "array"
    return type(v).__name__  # not reached: JSON has no other types


def show(v: str, limit: int = 80) -> str:
    """A field's value for a detail message: quoted, escaped, bounded."""
    text = json.dumps(v, ensure_ascii=not encodable(v))
    return text if len(text) <= limit else text[: limit - 4] + '..."'


def encodable(s: str) -> bool:
    """False for a str holding a lone surrogate (a ``\\ud800`` escape): not Unicode text."""
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Rejected(NamedTuple):
    reason: str
    detail: str


_SECONDS: dict[str, int] = {}  # "yyyy-MM-ddTHH:mm:ss" -> its microseconds, once validated


def instant_us(text: str) -> int | Rejected:
    """Microseconds since the epoch of a contract timestamp, or why not (never raises).

    Computed from the fields, not with ``datetime``: applying an offset to
    9999-12-31T23:59:59-05:00 would overflow ``datetime``'s range.  The usual form
    (``...ss.SSSZ``) is looked up by its second, which a batch shares across records.
    """
    if len(text) == 24 and text[19] == "." and text[23] == "Z":
        base, millis = _SECONDS.get(text[:19]), text[20:23]
        if base is not None and millis.isascii() and millis.isdigit():
            return base + int(millis) * 1000  # base + 999 ms is in range: see below
    us = _instant_us(text)
    if len(text) == 24 and type(us) is int and text[19] == "." and text[23] == "Z":
        base = us - int(text[20:23]) * 1000
        if base + 999_000 < _MAX_US:
            if len(_SECONDS) >= 4096:
                _SECONDS.clear()
            _SECONDS[text[:19]] = base
    return us


def _instant_us(text: str) -> int | Rejected:
    m = _TS.fullmatch(text)
    if m is None:
        return Rejected(C.REASON_MALFORMED_DATE, "is not yyyy-MM-ddTHH:mm:ss[.fraction](Z|+HH:MM|-HH:MM)")
    y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
    h, mi, s = int(h), int(mi), int(s)
    if h > 23 or mi > 59 or s > 59:
        return Rejected(C.REASON_MALFORMED_DATE, "has no such time of day")
    try:
        days = date(int(y), int(mo), int(d)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return Rejected(C.REASON_MALFORMED_DATE, "has no such calendar day")
    offset = 0
    if z is None:
        if int(oh) > 23 or int(om) > 59:
            return Rejected(C.REASON_MALFORMED_DATE, "has an offset beyond +-23:59")
        offset = (int(oh) * 3600 + int(om) * 60) * (1 if sign == "+" else -1)
    us = ((days * 86_400 + h * 3600 + mi * 60 + s - offset) * 1_000_000) + (
        int(frac[:6].ljust(6, "0")) if frac else 0
    )
    if not _MIN_US <= us < _MAX_US:
        return Rejected(C.REASON_TIMESTAMP_OUT_OF_RANGE, f"is outside {_RANGE_TEXT} in UTC")
    return us


def date_days(text: str) -> int | None:
    """Days since the epoch of a yyyy-MM-dd calendar day, else None (never raises)."""
    m = _DATE.fullmatch(text)
    if m is None:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3])).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None


def _years_before_days(days: int, years: int) -> int:
    """The day ``years`` before ``days`` (29 February becomes the 28th)."""
    d = date.fromordinal(days + _EPOCH_ORDINAL)
    y = d.year - years
    if y < 1:
        return -(10**9)
    try:
        return date(y, d.month, d.day).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return date(y, d.month, 28).toordinal() - _EPOCH_ORDINAL


def decode(value: bytes | None) -> dict[str, Any] | Rejected:
    """The record's JSON object, or why not: the checks up to ``malformed_json`` and
    ``duplicate_field`` (the Kafka timestamp is :func:`check`'s)."""
    if value is None:
        return Rejected(C.REASON_NULL_VALUE, "the record has no value (a tombstone)")
    if len(value) > C.MAX_RECORD_BYTES:
        return Rejected(
            C.REASON_RECORD_TOO_LARGE, f"value is {len(value)} bytes, more than {C.MAX_RECORD_BYTES}"
        )
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as e:
        return Rejected(
            C.REASON_INVALID_ENCODING,
            f"value is not UTF-8: {e.reason} 0x{value[e.start]:02x} at byte {e.start}",
        )
    if text.startswith("\ufeff"):
        return Rejected(C.REASON_MALFORMED_JSON, "value starts with a byte order mark (RFC 8259 8.1)")
    try:
        # The common case without the decoder's two Python frames and whitespace scans:
        # an object from the first character to the last.  Anything else (whitespace
        # around it, trailing data, an error) takes the full path for its message.
        obj, end = _SCAN(text, 0) if text[:1] == "{" else (None, -1)
        if end != len(text):
            obj = _DECODER.decode(text)
    except _Duplicate as e:
        return Rejected(C.REASON_DUPLICATE_FIELD, f"name {show(e.name)} appears twice in one object")
    except json.JSONDecodeError as e:
        return Rejected(C.REASON_MALFORMED_JSON, f"not JSON: {e.msg} at char {e.pos}")
    except StopIteration as e:  # the scanner's "no value here", at the first character
        return Rejected(C.REASON_MALFORMED_JSON, f"not JSON: expecting a value at char {e.value}")
    except (ValueError, RecursionError) as e:  # NaN/Infinity; nesting too deep for the parser
        msg = str(e) if isinstance(e, _Constant) else "nested too deeply"
        return Rejected(C.REASON_MALFORMED_JSON, f"not JSON: {msg}")
    if type(obj) is not dict:
        name = "null" if obj is None else "string" if type(obj) is str else _type_name(obj)
        return Rejected(C.REASON_MALFORMED_JSON, f"the value is a JSON {name}, not an object")
    return obj


_STR_OR_NONE = frozenset((str, type(None)))


def _order(fields: tuple[str, ...], required: tuple[str, ...]) -> tuple[str, ...]:
    return (*required, *(f for f in fields if f not in required))


_CUSTOMER_ORDER = _order(C.CUSTOMER_FIELDS, C.CUSTOMER_REQUIRED)
_TRANSACTION_ORDER = _order(C.TRANSACTION_FIELDS, C.TRANSACTION_REQUIRED)


def _fields(
    obj: dict[str, Any], fields: tuple[str, ...], required: tuple[str, ...], order: tuple[str, ...]
) -> list | Rejected:
    """The record type's fields, required ones first (:func:`_order`), each a str or None;
    or the first of wrong_type, lone surrogate, missing_field and field_too_long, each
    over all fields (in contract order) before the next.  One cheap pass decides for a
    clean record; only a bad one is scanned check by check."""
    vals = list(map(obj.get, order))
    req = vals[: len(required)]
    try:  # every field present and a str (join refuses None and numbers): the usual record
        text = "".join(vals)
    except TypeError:
        pass
    else:
        if (
            all(map(str.strip, req))
            and (text.isascii() or encodable(text))
            and max(map(len, vals)) <= C.MAX_FIELD_CHARS
        ):
            return vals
    if set(map(type, vals)) <= _STR_OR_NONE and None not in req and all(map(str.strip, req)):
        present = [v for v in vals if v is not None]
        text = "".join(present)
        if (text.isascii() or encodable(text)) and max(map(len, present)) <= C.MAX_FIELD_CHARS:
            return vals
    got = dict(zip(order, vals))
    for f in fields:
        v = got[f]
        if v is not None and type(v) is not str:
            return Rejected(
                C.REASON_WRONG_TYPE, f"field '{f}' must be a JSON string, not a JSON {_type_name(v)}"
            )
    for f in fields:
        v = got[f]
        if v is not None and not encodable(v):
            return Rejected(C.REASON_INVALID_ENCODING, f"field '{f}' holds a lone UTF-16 surrogate escape")
    for f in fields:
        v = got[f]
        if f in required and (v is None or not v.strip()):
            return Rejected(C.REASON_MISSING_FIELD, f"missing required field '{f}'")
    for f in fields:
        v = got[f]
        if v is not None and len(v) > C.MAX_FIELD_CHARS:
            return Rejected(
                C.REASON_FIELD_TOO_LONG, f"field '{f}' has {len(v)} characters, more than {C.MAX_FIELD_CHARS}"
            )
    raise AssertionError("unreachable: the fast path passes a record none of the checks rejects")


def _id(obj: dict[str, Any] | Rejected, name: str) -> str | None:
    """An id for a quarantined record's row, when the payload has a clean one."""
    if type(obj) is not dict:
        return None
    v = obj.get(name)
    return v if type(v) is str and encodable(v) else None


class Customer(NamedTuple):
    customer_id: str
    name: str
    email: str
    birth_date: int  # days since the epoch
    state: str
    city: str
    signup_time: int  # microseconds since the epoch
    updated_at: int


class Transaction(NamedTuple):
    transaction_id: str
    customer_id: str
    event_time: int  # microseconds since the epoch (UTC)
    amount_cents: int
    currency: str | None
    category: str
    city: str
    payment_method: str
    merchant: str | None


def _check_kafka_time(kafka_us: int | None) -> Rejected | None:
    if kafka_us is None or not _MIN_US <= kafka_us < _MAX_US:
        return Rejected(C.REASON_TIMESTAMP_OUT_OF_RANGE, f"the Kafka timestamp is outside {_RANGE_TEXT}")
    return None


def check_customer(value: bytes | None, kafka_us: int | None) -> Customer | tuple[Rejected, Any]:
    """A valid customer, or (why not, the decoded payload or the rejection)."""
    bad = _check_kafka_time(kafka_us)
    obj = decode(value)
    if bad is None and type(obj) is not dict:
        bad = obj
    if bad is not None:
        return bad, obj
    got = _fields(obj, C.CUSTOMER_FIELDS, C.CUSTOMER_REQUIRED, _CUSTOMER_ORDER)
    if type(got) is Rejected:
        return got, obj
    customer_id, name, email, birth_text, state, city, signup_text, updated_text = got
    birth = date_days(birth_text)
    if birth is None:
        return Rejected(
            C.REASON_MALFORMED_DATE, f"birth_date is not a yyyy-MM-dd day: {show(birth_text)}"
        ), obj
    named = (("signup_time", signup_text), ("updated_at", updated_text))
    times = [instant_us(text) for _, text in named]
    for reason in (C.REASON_MALFORMED_DATE, C.REASON_TIMESTAMP_OUT_OF_RANGE):
        for (f, text), us in zip(named, times):
            if type(us) is Rejected and us.reason == reason:
                return Rejected(reason, f"{f} {us.detail}: {show(text)}"), obj
    signup, updated = times
    kafka_day = kafka_us // _US_PER_DAY
    if birth > signup // _US_PER_DAY or birth > kafka_day:
        return Rejected(
            C.REASON_IMPLAUSIBLE_BIRTH_DATE,
            f"birth_date {birth_text} is after the signup_time or the record's Kafka day",
        ), obj
    if birth < _years_before_days(kafka_day, C.MAX_AGE_YEARS):
        return Rejected(
            C.REASON_IMPLAUSIBLE_BIRTH_DATE,
            f"birth_date {birth_text} is more than {C.MAX_AGE_YEARS} years before the Kafka day",
        ), obj
    return Customer(customer_id, name, email, birth, state, city, signup, updated)


def check_transaction(value: bytes | None, kafka_us: int | None) -> Transaction | tuple[Rejected, Any]:
    """A valid transaction (as far as one record can tell), or (why not, the payload)."""
    bad = _check_kafka_time(kafka_us)
    obj = decode(value)
    if bad is None and type(obj) is not dict:
        bad = obj
    if bad is not None:
        return bad, obj
    got = _fields(obj, C.TRANSACTION_FIELDS, C.TRANSACTION_REQUIRED, _TRANSACTION_ORDER)
    if type(got) is Rejected:
        return got, obj
    tid, cid, event_text, amount, category, city, payment, currency, merchant = got
    ev = instant_us(event_text)
    if type(ev) is Rejected:
        return Rejected(ev.reason, f"event_time {ev.detail}: {show(event_text)}"), obj
    m = _AMOUNT.fullmatch(amount)
    if m is None:
        return Rejected(
            C.REASON_INVALID_AMOUNT,
            "amount must be a decimal string with exactly 2 places and at most "
            f'{C.AMOUNT_MAX_INTEGER_DIGITS} integer digits, e.g. "123.45", got {show(amount)}',
        ), obj
    cents = int(amount.replace(".", ""))
    if cents <= 0:
        return Rejected(C.REASON_NON_POSITIVE_AMOUNT, f"amount must be > 0, got {show(amount)}"), obj
    if currency is not None and currency != C.CURRENCY:
        return Rejected(
            C.REASON_UNSUPPORTED_CURRENCY, f"currency must be {C.CURRENCY} (or absent), got {show(currency)}"
        ), obj
    if category not in _CATEGORIES:
        return Rejected(C.REASON_UNKNOWN_CATEGORY, f"unknown category: {show(category)}"), obj
    if payment not in _PAYMENT_METHODS:
        return Rejected(C.REASON_UNKNOWN_PAYMENT_METHOD, f"unknown payment_method: {show(payment)}"), obj
    return Transaction(tid, cid, ev, cents, currency, category, city, payment, merchant)


def ids_of(payload: Any) -> tuple[str | None, str | None]:
    """(transaction_id, customer_id) of a rejected record, where its payload has clean ones."""
    return _id(payload, "transaction_id"), _id(payload, "customer_id")


def check(is_customer: bool, value: bytes | None, kafka_us: int | None) -> Customer | Transaction | Rejected:
    """One record judged by its topic's rules; a rejection drops the payload."""
    out = (check_customer if is_customer else check_transaction)(value, kafka_us)
    return out[0] if type(out) is tuple else out


# --- Every problem of a record, for a producer that must name each bad field -----------
# The job stops at a record's first failing check; the REST service refuses a record
# before producing it and must name every bad field.  Both use this module, so they cannot
# disagree: ``problems(...)[0].rejected`` is :func:`check`'s verdict on the same bytes, and
# ``problems(...) == []`` exactly when :func:`check` accepts them (property-tested).  The
# hot path above stays as it is; this one runs on rejected or API-posted records only.


class Problem(NamedTuple):
    """One problem of one record: its field ("" for the record as a whole) and why."""

    field: str
    rejected: Rejected


def _rank(reason: str, after: int = 0) -> int:
    return C.RECORD_CHECKS.index(reason, after)


_RANK_WRONG_TYPE = _rank(C.REASON_WRONG_TYPE)
_RANK_SURROGATE = _rank(C.REASON_INVALID_ENCODING, _rank(C.REASON_MALFORMED_JSON))
_RANK_FIELD_OUT_OF_RANGE = _rank(C.REASON_TIMESTAMP_OUT_OF_RANGE, 1)


def _field_problem(f: str, v: Any, required: bool) -> tuple[int, Rejected] | None:
    """A field's first failing field check (the rank of that check, and why), else None."""
    if v is not None and type(v) is not str:
        return _RANK_WRONG_TYPE, Rejected(
            C.REASON_WRONG_TYPE, f"field '{f}' must be a JSON string, not a JSON {_type_name(v)}"
        )
    if v is not None and not encodable(v):
        return _RANK_SURROGATE, Rejected(
            C.REASON_INVALID_ENCODING, f"field '{f}' holds a lone UTF-16 surrogate escape"
        )
    if required and (v is None or not v.strip()):
        return _rank(C.REASON_MISSING_FIELD), Rejected(
            C.REASON_MISSING_FIELD, f"missing required field '{f}'"
        )
    if v is not None and len(v) > C.MAX_FIELD_CHARS:
        return _rank(C.REASON_FIELD_TOO_LONG), Rejected(
            C.REASON_FIELD_TOO_LONG, f"field '{f}' has {len(v)} characters, more than {C.MAX_FIELD_CHARS}"
        )
    return None


def _time_problem(f: str, text: str) -> tuple[int, Rejected] | None:
    us = instant_us(text)
    if type(us) is not Rejected:
        return None
    rank = (
        _rank(C.REASON_MALFORMED_DATE) if us.reason == C.REASON_MALFORMED_DATE else _RANK_FIELD_OUT_OF_RANGE
    )
    return rank, Rejected(us.reason, f"{f} {us.detail}: {show(text)}")


def _customer_values(v: dict[str, str], kafka_ok: bool, kafka_us: int) -> list[tuple[str, int, Rejected]]:
    out: list[tuple[str, int, Rejected]] = []
    birth_text = v.get("birth_date")
    birth = None if birth_text is None else date_days(birth_text)
    if birth_text is not None and birth is None:
        out.append(
            (
                "birth_date",
                _rank(C.REASON_MALFORMED_DATE),
                Rejected(C.REASON_MALFORMED_DATE, f"birth_date is not a yyyy-MM-dd day: {show(birth_text)}"),
            )
        )
    for f in ("signup_time", "updated_at"):
        if f in v and (p := _time_problem(f, v[f])) is not None:
            out.append((f, *p))
    if birth is None or not kafka_ok:
        return out
    signup = instant_us(v["signup_time"]) if "signup_time" in v else None
    kafka_day = kafka_us // _US_PER_DAY
    rank = _rank(C.REASON_IMPLAUSIBLE_BIRTH_DATE)
    if (type(signup) is int and birth > signup // _US_PER_DAY) or birth > kafka_day:
        out.append(
            (
                "birth_date",
                rank,
                Rejected(
                    C.REASON_IMPLAUSIBLE_BIRTH_DATE,
                    f"birth_date {birth_text} is after the signup_time or the record's Kafka day",
                ),
            )
        )
    elif birth < _years_before_days(kafka_day, C.MAX_AGE_YEARS):
        out.append(
            (
                "birth_date",
                rank,
                Rejected(
                    C.REASON_IMPLAUSIBLE_BIRTH_DATE,
                    f"birth_date {birth_text} is more than {C.MAX_AGE_YEARS} years before the Kafka day",
                ),
            )
        )
    return out


def _transaction_values(v: dict[str, str]) -> list[tuple[str, int, Rejected]]:
    out: list[tuple[str, int, Rejected]] = []
    if "event_time" in v and (p := _time_problem("event_time", v["event_time"])) is not None:
        out.append(("event_time", *p))
    amount = v.get("amount")
    if amount is not None:
        if _AMOUNT.fullmatch(amount) is None:
            out.append(
                (
                    "amount",
                    _rank(C.REASON_INVALID_AMOUNT),
                    Rejected(
                        C.REASON_INVALID_AMOUNT,
                        "amount must be a decimal string with exactly 2 places and at most "
                        f'{C.AMOUNT_MAX_INTEGER_DIGITS} integer digits, e.g. "123.45", got {show(amount)}',
                    ),
                )
            )
        elif int(amount.replace(".", "")) <= 0:
            out.append(
                (
                    "amount",
                    _rank(C.REASON_NON_POSITIVE_AMOUNT),
                    Rejected(C.REASON_NON_POSITIVE_AMOUNT, f"amount must be > 0, got {show(amount)}"),
                )
            )
    currency = v.get("currency")
    if currency is not None and currency != C.CURRENCY:
        out.append(
            (
                "currency",
                _rank(C.REASON_UNSUPPORTED_CURRENCY),
                Rejected(
                    C.REASON_UNSUPPORTED_CURRENCY,
                    f"currency must be {C.CURRENCY} (or absent), got {show(currency)}",
                ),
            )
        )
    for f, vocab, reason in (
        ("category", _CATEGORIES, C.REASON_UNKNOWN_CATEGORY),
        ("payment_method", _PAYMENT_METHODS, C.REASON_UNKNOWN_PAYMENT_METHOD),
    ):
        if f in v and v[f] not in vocab:
            out.append((f, _rank(reason), Rejected(reason, f"unknown {f}: {show(v[f])}")))
    return out


def problems(is_customer: bool, value: bytes | None, kafka_us: int | None) -> list[Problem]:
    """Every problem of one record in the order of the checks (then of the fields): the
    job's verdict is the first, and none means :func:`check` accepts the record."""
    out: list[tuple[str, int, Rejected]] = []
    kafka = _check_kafka_time(kafka_us)
    if kafka is not None:
        out.append(("", 0, kafka))
    obj = decode(value)
    if type(obj) is not dict:
        out.append(("", _rank(obj.reason), obj))
        return [Problem(f, r) for f, _, r in out]
    fields, required = (
        (C.CUSTOMER_FIELDS, C.CUSTOMER_REQUIRED)
        if is_customer
        else (C.TRANSACTION_FIELDS, C.TRANSACTION_REQUIRED)
    )
    clean: dict[str, str] = {}
    for f in fields:
        v = obj.get(f)
        bad = _field_problem(f, v, f in required)
        if bad is not None:
            out.append((f, *bad))
        elif v is not None:
            clean[f] = v
    if is_customer:
        out += _customer_values(clean, kafka is None, kafka_us or 0)
    else:
        out += _transaction_values(clean)
    order = {f: i for i, f in enumerate(fields)}
    out.sort(key=lambda p: (p[1], order.get(p[0], -1)))
    return [Problem(f, r) for f, _, r in out]


__all__ = [
    "Customer",
    "Problem",
    "Rejected",
    "Transaction",
    "check",
    "check_customer",
    "check_transaction",
    "problems",
]
