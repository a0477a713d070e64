"""An independent re-computation of what the pipeline must output, from raw topic contents.

Written with plain Python and pandas, not Spark, and not sharing code with the job: only
the data contract (field names, vocabularies, reason codes) is common.  Tests compare the
job's Parquet against this.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd
from confluent_kafka import Consumer, TopicPartition

from spjobs import contract as C

_AMOUNT = re.compile(r"-?(0|[1-9][0-9]{0,7})\.[0-9]{2}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TS = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})T(?P<h>[0-9]{2}):(?P<m>[0-9]{2}):(?P<s>[0-9]{2})"
    r"(?:\.(?P<frac>[0-9]{1,9}))?(?P<zone>Z|[+-][0-9]{2}:[0-9]{2})"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_LOW = datetime(1970, 1, 1, tzinfo=timezone.utc)
_HIGH = datetime(2100, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Raw:
    topic: str
    partition: int
    offset: int
    ts_ms: int
    key: bytes | None
    value: bytes | None


def read_topic(bootstrap: str, topic: str, timeout: float = 60.0) -> list[Raw]:
    """Every record currently in ``topic`` (all partitions, from the beginning)."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "sp-reference",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        out: list[Raw] = []
        done = {p for p, e in ends.items() if e == 0}
        import time

        deadline = time.monotonic() + timeout
        while len(done) < len(parts) and time.monotonic() < deadline:
            for m in c.consume(10000, timeout=1.0):
                if m.error():
                    continue
                p = m.partition()
                out.append(
                    Raw(
                        topic,
                        p,
                        m.offset(),
                        m.timestamp()[1],
                        m.key(),
                        m.value(),
                    )
                )
                if m.offset() + 1 >= ends[p]:
                    done.add(p)
            # A transaction marker may be the last offset: done once the position passes it.
            for tp in c.position([TopicPartition(topic, p) for p in parts if p not in done]):
                if tp.offset >= ends[tp.partition]:
                    done.add(tp.partition)
        return out
    finally:
        c.close()


class _Num:
    """A JSON number (never a valid field)."""

    def __init__(self, text: str) -> None:
        self.text = text


class _Bad(Exception):
    pass


def _pairs(pairs):
    names = [k for k, _ in pairs]
    if len(set(names)) != len(names):
        raise _Bad(C.REASON_DUPLICATE_FIELD)
    return dict(pairs)


def _no_constant(_name):
    raise _Bad(C.REASON_MALFORMED_JSON)


def _payload(value: bytes | None) -> dict | str:
    """The JSON object of a record's value, or the reason it has none."""
    if value is None:
        return C.REASON_NULL_VALUE
    if len(value) > C.MAX_RECORD_BYTES:
        return C.REASON_RECORD_TOO_LARGE
    try:
        text = str(value, "utf-8", "strict")
    except UnicodeDecodeError:
        return C.REASON_INVALID_ENCODING
    if text[:1] == "\ufeff":
        return C.REASON_MALFORMED_JSON
    try:
        d = json.loads(
            text, object_pairs_hook=_pairs, parse_int=_Num, parse_float=_Num, parse_constant=_no_constant
        )
    except _Bad as e:
        return str(e)
    except (ValueError, RecursionError):
        return C.REASON_MALFORMED_JSON
    return d if isinstance(d, dict) else C.REASON_MALFORMED_JSON


def _field_problem(d: dict, fields: tuple[str, ...], required: tuple[str, ...]) -> str | None:
    values = [d.get(f) for f in fields]
    if any(v is not None and not isinstance(v, str) for v in values):
        return C.REASON_WRONG_TYPE
    for v in values:
        if v is not None:
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return C.REASON_INVALID_ENCODING
    if any(d.get(f) is None or d[f].strip() == "" for f in required):
        return C.REASON_MISSING_FIELD
    if any(v is not None and len(v) > C.MAX_FIELD_CHARS for v in values):
        return C.REASON_FIELD_TOO_LONG
    return None


def _parse_date(s: str) -> date | None:
    if not _DATE.fullmatch(s):
        return None
    try:
        return date.fromisoformat(s)
    except ValueError:
        return None


def _parse_ts(s: str) -> datetime | str:
    """The UTC instant of a timestamp field (aware datetime may not hold it: compare as a
    timedelta from the epoch), or a reason."""
    m = _TS.fullmatch(s)
    if not m:
        return C.REASON_MALFORMED_DATE
    day = _parse_date(m["date"])
    h, mi, sec = int(m["h"]), int(m["m"]), int(m["s"])
    if day is None or h > 23 or mi > 59 or sec > 59:
        return C.REASON_MALFORMED_DATE
    zone = m["zone"]
    offset = timedelta(0)
    if zone != "Z":
        oh, om = int(zone[1:3]), int(zone[4:6])
        if oh > 23 or om > 59:
            return C.REASON_MALFORMED_DATE
        offset = timedelta(hours=oh, minutes=om) * (1 if zone[0] == "+" else -1)
    micro = int((m["frac"] or "0")[:6].ljust(6, "0"))
    local = datetime.combine(day, datetime.min.time()) - datetime(1970, 1, 1)
    since = local + timedelta(hours=h, minutes=mi, seconds=sec, microseconds=micro) - offset
    if not (_LOW - _EPOCH) <= since < (_HIGH - _EPOCH):
        return C.REASON_TIMESTAMP_OUT_OF_RANGE
    return (_EPOCH + since).replace(tzinfo=None)


def _kafka_in_range(ts_ms: int) -> bool:
    return C.MIN_TIMESTAMP_MS <= ts_ms < C.MAX_TIMESTAMP_MS


def _years_back(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year - years)
    except ValueError:
        return d.replace(year=d.year - years, day=28)


def customer_reason(r: Raw) -> tuple[str | None, dict | None]:
    """The reason a customer record is rejected (None: valid), and its payload."""
    if not _kafka_in_range(r.ts_ms):
        return C.REASON_TIMESTAMP_OUT_OF_RANGE, None
    d = _payload(r.value)
    if isinstance(d, str):
        return d, None
    bad = _field_problem(d, C.CUSTOMER_FIELDS, C.CUSTOMER_REQUIRED)
    if bad:
        return bad, d
    birth = _parse_date(d["birth_date"])
    stamps = [_parse_ts(d["signup_time"]), _parse_ts(d["updated_at"])]
    if birth is None or C.REASON_MALFORMED_DATE in stamps:
        return C.REASON_MALFORMED_DATE, d
    if C.REASON_TIMESTAMP_OUT_OF_RANGE in stamps:
        return C.REASON_TIMESTAMP_OUT_OF_RANGE, d
    kafka_day = (datetime(1970, 1, 1) + timedelta(milliseconds=r.ts_ms)).date()
    if birth > stamps[0].date() or birth > kafka_day or birth < _years_back(kafka_day, C.MAX_AGE_YEARS):
        return C.REASON_IMPLAUSIBLE_BIRTH_DATE, d
    return None, d


def transaction_reason(r: Raw) -> tuple[str | None, dict | None]:
    """The reason a transaction is rejected by its own content (None: so far valid)."""
    if not _kafka_in_range(r.ts_ms):
        return C.REASON_TIMESTAMP_OUT_OF_RANGE, None
    d = _payload(r.value)
    if isinstance(d, str):
        return d, None
    bad = _field_problem(d, C.TRANSACTION_FIELDS, C.TRANSACTION_REQUIRED)
    if bad:
        return bad, d
    ev = _parse_ts(d["event_time"])
    if isinstance(ev, str):
        return ev, d
    if not _AMOUNT.fullmatch(d["amount"]):
        return C.REASON_INVALID_AMOUNT, d
    if Decimal(d["amount"]) <= 0:
        return C.REASON_NON_POSITIVE_AMOUNT, d
    if d.get("currency") is not None and d["currency"] != C.CURRENCY:
        return C.REASON_UNSUPPORTED_CURRENCY, d
    if d["category"] not in C.CATEGORIES:
        return C.REASON_UNKNOWN_CATEGORY, d
    if d["payment_method"] not in C.PAYMENT_METHODS:
        return C.REASON_UNKNOWN_PAYMENT_METHOD, d
    return None, d


@dataclass
class Expected:
    reasons: dict[tuple[str, int, int], str] = field(default_factory=dict)  # (topic, part, offset) -> reason
    transactions: pd.DataFrame | None = None
    customers: int = 0
    aggregates: dict[str, pd.DataFrame] = field(default_factory=dict)


def _age(birth: date, when: datetime) -> int:
    return when.year - birth.year - ((when.month, when.day) < (birth.month, birth.day))


def _band(age: int, bands: tuple[int, ...]) -> str:
    labels = C.age_band_labels(list(bands))
    for cut, label in zip(bands, labels):
        if age < cut:
            return label
    return labels[-1]


def compute(
    customers: list[Raw], transactions: list[Raw], bands: tuple[int, ...] = C.DEFAULT_AGE_BANDS
) -> Expected:
    exp = Expected()
    versions: dict[str, list[tuple[int, int, int, dict]]] = {}
    for r in customers:
        reason, d = customer_reason(r)
        if reason:
            exp.reasons[(r.topic, r.partition, r.offset)] = reason
            continue
        exp.customers += 1
        versions.setdefault(d["customer_id"], []).append((r.ts_ms, r.partition, r.offset, d))
    for v in versions.values():
        v.sort(key=lambda x: x[:3])  # as of arrival: timestamp, then partition/offset

    seen: set[str] = set()
    rows = []
    for r in sorted(transactions, key=lambda r: (r.ts_ms, r.partition, r.offset)):
        loc = (r.topic, r.partition, r.offset)
        reason, d = transaction_reason(r)
        if reason is None and d["transaction_id"] in seen:
            reason = C.REASON_DUPLICATE_TRANSACTION_ID
        if reason:
            exp.reasons[loc] = reason
            continue
        tid = d["transaction_id"]
        # As of arrival: of the versions that arrived no later, the greatest updated_at,
        # ties to the later arrival; none yet is unknown_customer, which uses no id up.
        arrived = [v for v in versions.get(d["customer_id"], []) if v[0] <= r.ts_ms]
        if not arrived:
            exp.reasons[loc] = C.REASON_UNKNOWN_CUSTOMER
            continue
        cust = max(arrived, key=lambda v: (_parse_ts(v[3]["updated_at"]), *v[:3]))[3]
        ev = _parse_ts(d["event_time"])
        age = _age(date.fromisoformat(cust["birth_date"]), ev)
        if age < 0:
            exp.reasons[loc] = C.REASON_EVENT_BEFORE_BIRTH
            continue
        seen.add(tid)  # only an accepted transaction uses its id up
        amount = d["amount"]
        rows.append(
            {
                "transaction_id": tid,
                "customer_id": d["customer_id"],
                "amount": Decimal(amount).quantize(Decimal("0.01")),
                "category": d["category"],
                "city": d["city"],
                "state": cust["state"],
                "age_band": _band(age, bands),
                "year": ev.year,
                "month": ev.month,
                "event_time": ev,
            }
        )
    exp.transactions = pd.DataFrame(rows)
    for name, keys in C.AGGREGATES.items():
        g = exp.transactions.groupby(list(keys))["amount"].agg(["count", "sum"]).reset_index()
        g = g.rename(columns={"count": "transaction_count", "sum": "total_amount"})
        g["avg_amount"] = [
            (t / n).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            for t, n in zip(g["total_amount"], g["transaction_count"])
        ]
        exp.aggregates[name] = g
    return exp
