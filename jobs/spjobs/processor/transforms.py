"""The Spark half of a micro-batch: parse and check every record, on the executors.

Each record's bytes go through :mod:`.records` (strict RFC 8259 JSON in UTF-8, the
contract's checks in order) inside ``mapInArrow``, so the work stays on the executors
and a record is judged from exactly the bytes Kafka holds.  What comes back is one row
per record with its Kafka coordinates, raw key and value (binary, as received: a record
that ends in quarantine later, as a duplicate or for an unknown customer, needs them),
``reason``/``detail`` so far, and the typed fields (:data:`.stateful.CHECKED_SCHEMA`).
What needs the pipeline's history (duplicate ids, the customer as of a transaction) is
:mod:`.stateful`'s job.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import from_arrow_schema

from .. import contract as C
from . import records as R
from .stateful import CHECKED_SCHEMA

AMOUNT_TYPE = T.DecimalType(12, 2)
# Columns every raw row carries (from the Kafka source; key and value are binary).
RAW_COLUMNS = ("topic", "partition", "offset", "kafka_timestamp", "key", "value")
_TS = pa.timestamp("us", tz="UTC")

# Typed columns of the checked batch, after the raw ones and reason/detail, in order.
_TYPED = (
    ("customer_id", pa.string()),
    ("city", pa.string()),
    ("name", pa.string()),
    ("email", pa.string()),
    ("birth_date", pa.date32()),
    ("state", pa.string()),
    ("signup_time", _TS),
    ("updated_at", _TS),
    ("transaction_id", pa.string()),
    ("event_time", _TS),
    ("amount_cents", pa.int64()),
    ("currency", pa.string()),
    ("category", pa.string()),
    ("payment_method", pa.string()),
    ("merchant", pa.string()),
)
_N = len(_TYPED)


def _customer_row(c: R.Customer) -> tuple:
    return (c.customer_id, c.city, c.name, c.email, c.birth_date, c.state, c.signup_time, c.updated_at,
            None, None, None, None, None, None, None)  # fmt: skip


def _transaction_row(t: R.Transaction) -> tuple:
    return (t.customer_id, t.city, None, None, None, None, None, None,
            t.transaction_id, t.event_time, t.amount_cents, t.currency, t.category, t.payment_method,
            t.merchant)  # fmt: skip


def _rejected_row(payload: object) -> tuple:
    tid, cid = R.ids_of(payload)
    return (cid, None, None, None, None, None, None, None, tid, None, None, None, None, None, None)


def _cents_to_decimal(cents: pa.Array) -> pa.Array:
    """Freshly built int64 cents as decimal128(12, 2) with the same nulls: the unscaled
    value is the cents, so each 16-byte value is the int64 and its sign extension."""
    values = cents.fill_null(0).to_numpy()
    wide = np.empty((len(values), 2), dtype="<i8")
    wide[:, 0] = values
    wide[:, 1] = values >> 63
    validity = cents.buffers()[0] if cents.null_count else None
    return pa.Array.from_buffers(
        pa.decimal128(12, 2), len(cents), [validity, pa.py_buffer(wide)], null_count=cents.null_count
    )


def check_arrow(batch: pa.RecordBatch, customers_topic: str) -> pa.RecordBatch:
    """One Arrow batch of raw records checked: :data:`.stateful.CHECKED_SCHEMA`.

    A record of any topic but ``customers_topic`` is judged by the transaction rules
    (the query subscribes to the two topics only; the driver splits by topic).
    """
    n = batch.num_rows
    topics = batch.column("topic").to_pylist()
    values = batch.column("value").to_pylist()
    kafka = pc.cast(batch.column("kafka_timestamp"), _TS).cast(pa.int64()).to_pylist()
    reasons: list[str | None] = [None] * n
    details: list[str | None] = [None] * n
    rows: list[tuple] = [()] * n
    check_c, check_t = R.check_customer, R.check_transaction
    customer_t, transaction_t = R.Customer, R.Transaction
    for i, (topic, value, ts) in enumerate(zip(topics, values, kafka)):
        out = check_c(value, ts) if topic == customers_topic else check_t(value, ts)
        kind = type(out)
        if kind is transaction_t:
            rows[i] = _transaction_row(out)
        elif kind is customer_t:
            rows[i] = _customer_row(out)
        else:
            rejected, payload = out
            reasons[i], details[i] = rejected
            rows[i] = _rejected_row(payload)
    cols = list(zip(*rows)) if n else [()] * _N
    typed = {name: pa.array(col, type=t) for (name, t), col in zip(_TYPED, cols)}
    ev = typed["event_time"]
    month = pc.month(ev).cast(pa.int32())
    arrays = {
        **{c: batch.column(c) for c in RAW_COLUMNS},
        "reason": pa.array(reasons, type=pa.string()),
        "detail": pa.array(details, type=pa.string()),
        **{k: typed[k] for k in ("customer_id", "city", "name", "email", "birth_date", "state")},
        **{k: typed[k] for k in ("signup_time", "updated_at", "transaction_id", "event_time")},
        "amount": _cents_to_decimal(typed["amount_cents"]),
        "amount_cents": typed["amount_cents"],
        **{k: typed[k] for k in ("currency", "category", "payment_method", "merchant")},
        "year": pc.year(ev).cast(pa.int32()),
        "month": month,
        "month_day": pc.add(pc.multiply(month, 100), pc.day(ev).cast(pa.int32())),
    }
    return pa.RecordBatch.from_arrays(
        [arrays[f.name].cast(f.type) for f in CHECKED_SCHEMA], schema=CHECKED_SCHEMA
    )


def _raw(raw: DataFrame) -> DataFrame:
    """The raw columns, key and value as bytes (a no-op for the Kafka source's own)."""
    return raw.select(
        *RAW_COLUMNS[:4],
        F.col("key").cast("binary").alias("key"),
        F.col("value").cast("binary").alias("value"),
    )


class BatchChecker:
    """Both record types checked and typed in ONE pass over a batch: what the driver collects.

    The payloads are checked on the executors, by their topic's rules, in the same Spark
    job that reads them from Kafka (splitting the batch by topic first would read it
    twice).  Built once per query: the streaming plan holds it.
    """

    def __init__(self, customers_topic: str, transactions_topic: str) -> None:
        self.customers_topic = customers_topic
        self.transactions_topic = transactions_topic
        self.schema = from_arrow_schema(CHECKED_SCHEMA)

    def __call__(self, raw: DataFrame) -> DataFrame:
        topic = self.customers_topic

        def check_all(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for b in batches:
                yield check_arrow(b, topic)

        return _raw(raw).mapInArrow(check_all, self.schema)


_PARSED_FIELDS = tuple(dict.fromkeys(C.CUSTOMER_FIELDS + C.TRANSACTION_FIELDS))
_PARSED_SCHEMA = pa.schema(
    [(c, CHECKED_SCHEMA.field(c).type) for c in RAW_COLUMNS if c != "value"]
    + [(f, pa.string()) for f in _PARSED_FIELDS]
    + [("_corrupt", pa.string())]
)


def _parse_arrow(batch: pa.RecordBatch) -> pa.RecordBatch:
    rows = []
    for value in batch.column("value").to_pylist():
        obj = R.decode(value)
        if type(obj) is dict:
            got = [obj.get(f) for f in _PARSED_FIELDS]
            rows.append((*(v if type(v) is str and R.encodable(v) else None for v in got), None))
        else:
            rows.append((*[None] * len(_PARSED_FIELDS), obj.reason))
    cols = list(zip(*rows)) if rows else [()] * (len(_PARSED_FIELDS) + 1)
    arrays = [batch.column(c) for c in RAW_COLUMNS if c != "value"]
    arrays += [pa.array(c, type=pa.string()) for c in cols]
    return pa.RecordBatch.from_arrays(arrays, schema=_PARSED_SCHEMA)


def parse_payloads(raw: DataFrame) -> DataFrame:
    """Every payload decoded exactly as :class:`BatchChecker` decodes it, its fields (as
    text) in place of the raw bytes, nothing checked: the benchmark's parse-only
    baseline (the plain copy with the same information, parsed)."""

    def parse_all(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            yield _parse_arrow(b)

    return _raw(raw).mapInArrow(parse_all, from_arrow_schema(_PARSED_SCHEMA))


def checked_batch(raw: DataFrame, customers_topic: str, transactions_topic: str) -> DataFrame:
    """:class:`BatchChecker` applied once (tests; the job keeps one checker)."""
    return BatchChecker(customers_topic, transactions_topic)(raw)
