"""An independent re-computation of what the pipeline must output, from raw topic contents.

Written with plain Python and pandas, not Spark, and not sharing code with the job: only
the data contract (field names, vocabularies, reason codes) is common.  Tests compare the
job's Parquet against this.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd
from confluent_kafka import Consumer, TopicPartition

from spjobs import contract as C

_AMOUNT = re.compile(r"^-?[0-9]{1,10}(\.[0-9]{1,2})?$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_TS = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:?[0-9]{2})?$"
)


@dataclass(frozen=True)
class Raw:
    topic: str
    partition: int
    offset: int
    ts_ms: int
    key: str | None
    value: str | None


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
                        m.key().decode() if m.key() is not None else None,
                        m.value().decode("utf-8", "replace") if m.value() is not None else None,
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


def _obj(value: str | None) -> dict | None:
    try:
        d = json.loads(value) if value is not None else None
    except ValueError:
        return None
    return d if isinstance(d, dict) and any(v is not None for v in d.values()) else None


def _s(v: object) -> str | None:
    if v is None:
        return None
    return v if isinstance(v, str) else json.dumps(v)


def _blank(v: object) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _parse_date(s: str | None) -> date | None:
    if s is None or not _DATE.match(s):
        return None
    try:
        return date.fromisoformat(s)
    except ValueError:
        return None


def _parse_ts(s: str | None) -> datetime | None:
    if s is None or not _TS.match(s):
        return None
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(timezone.utc).replace(tzinfo=None)
    except ValueError:
        return None


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
        d = _obj(r.value)
        reason = None
        if d is None:
            reason = C.REASON_MALFORMED_JSON
        elif any(_blank(d.get(f)) for f in C.CUSTOMER_REQUIRED):
            reason = C.REASON_MISSING_FIELD
        elif (
            _parse_date(_s(d["birth_date"])) is None
            or _parse_ts(_s(d["signup_time"])) is None
            or _parse_ts(_s(d["updated_at"])) is None
        ):
            reason = C.REASON_MALFORMED_DATE
        if reason:
            exp.reasons[(r.topic, r.partition, r.offset)] = reason
            continue
        exp.customers += 1
        versions.setdefault(str(d["customer_id"]), []).append((r.ts_ms, r.partition, r.offset, d))
    for v in versions.values():
        v.sort(key=lambda x: x[:3])  # as of arrival: timestamp, then partition/offset

    seen: set[str] = set()
    rows = []
    for r in sorted(transactions, key=lambda r: (r.ts_ms, r.partition, r.offset)):
        d = _obj(r.value)
        loc = (r.topic, r.partition, r.offset)
        if d is None:
            exp.reasons[loc] = C.REASON_MALFORMED_JSON
            continue
        if any(_blank(d.get(f)) for f in C.TRANSACTION_REQUIRED):
            exp.reasons[loc] = C.REASON_MISSING_FIELD
            continue
        ev = _parse_ts(_s(d["event_time"]))
        amount = _s(d["amount"]).strip()
        if ev is None:
            exp.reasons[loc] = C.REASON_MALFORMED_DATE
        elif not _AMOUNT.match(amount):
            exp.reasons[loc] = C.REASON_INVALID_AMOUNT
        elif Decimal(amount) <= 0:
            exp.reasons[loc] = C.REASON_NON_POSITIVE_AMOUNT
        elif d["category"] not in C.CATEGORIES:
            exp.reasons[loc] = C.REASON_UNKNOWN_CATEGORY
        elif d["payment_method"] not in C.PAYMENT_METHODS:
            exp.reasons[loc] = C.REASON_UNKNOWN_PAYMENT_METHOD
        elif _s(d["transaction_id"]) in seen:
            exp.reasons[loc] = C.REASON_DUPLICATE_TRANSACTION_ID
        if loc in exp.reasons:
            continue
        tid = _s(d["transaction_id"])
        # As of arrival: of the versions that arrived no later, the greatest updated_at,
        # ties to the later arrival; none yet is unknown_customer, which uses no id up.
        arrived = [v for v in versions.get(_s(d["customer_id"]), []) if v[0] <= r.ts_ms]
        if not arrived:
            exp.reasons[loc] = C.REASON_UNKNOWN_CUSTOMER
            continue
        seen.add(tid)
        cust = max(arrived, key=lambda v: (_parse_ts(_s(v[3]["updated_at"])), *v[:3]))[3]
        age = _age(date.fromisoformat(cust["birth_date"]), ev)
        rows.append(
            {
                "transaction_id": tid,
                "customer_id": _s(d["customer_id"]),
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
