"""The driver half of a micro-batch: de-duplicate, enrich and shape the output rows.

Why on the driver and not as Spark joins: these steps need the pipeline's history
(every transaction id accepted so far, every customer version), touch each record once,
and run on a batch that ``maxOffsetsPerTrigger`` already bounds.  Held as two in-memory
indexes, that is one hash lookup per record.  Written as joins against cached Spark
state the same steps took about twenty Spark jobs, some seconds per micro-batch, and that
fixed cost bounded both throughput and freshness (README, "Where the time goes").

Everything here is a pure function of Arrow tables and the two indexes, unit-tested
without Spark; the on-disk state deltas remain the source of truth (:mod:`.state`).
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import contract as C

TS = pa.timestamp("us", tz="UTC")
_NULL_TS = np.iinfo(np.int64).min

# What :class:`.transforms.BatchChecker` hands over (a unit test holds Spark to it).
CHECKED_SCHEMA = pa.schema(
    [
        ("topic", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("kafka_timestamp", TS),
        ("key", pa.binary()),  # as received
        ("value", pa.binary()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("customer_id", pa.string()),
        ("city", pa.string()),
        ("name", pa.string()),
        ("email", pa.string()),
        ("birth_date", pa.date32()),
        ("state", pa.string()),
        ("signup_time", TS),
        ("updated_at", TS),
        ("transaction_id", pa.string()),
        ("event_time", TS),
        ("amount", pa.decimal128(12, 2)),
        ("amount_cents", pa.int64()),
        ("currency", pa.string()),
        ("category", pa.string()),
        ("payment_method", pa.string()),
        ("merchant", pa.string()),
        ("year", pa.int32()),
        ("month", pa.int32()),
        ("month_day", pa.int32()),
    ]
)

QUARANTINE_COLUMNS = (
    "record_type",
    "reason",
    "detail",
    "transaction_id",
    "customer_id",
    "topic",
    "partition",
    "offset",
    "kafka_timestamp",
    "key",  # binary, exactly as received
    "raw_value",  # binary, exactly as received
    "key_text",  # the same as text for people: bytes that are not UTF-8 shown as \xNN
    "value_text",
    "batch_id",
)
CUSTOMER_COLUMNS = (
    "customer_id",
    "name",
    "email",
    "birth_date",
    "state",
    "city",
    "signup_time",
    "updated_at",
    "kafka_timestamp",
    "kafka_partition",
    "kafka_offset",
)
TRANSACTION_COLUMNS = (
    "transaction_id",
    "customer_id",
    "event_time",
    "amount",
    "currency",
    "category",
    "city",
    "payment_method",
    "merchant",
    "state",
    "customer_city",
    "age",
    "age_band",
    "is_late",
    "year",
    "month",
    "kafka_timestamp",
    "kafka_partition",
    "kafka_offset",
)
# What the customer history keeps of a version (the customers state delta's columns).
VERSION_COLUMNS = (
    "customer_id",
    "state",
    "city",
    "birth_date",
    "kafka_timestamp",
    "kafka_partition",
    "kafka_offset",
)


def micros(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Timestamps as int64 microseconds since the epoch (whatever unit the file used)."""
    us = pc.cast(col, TS if col.type.tz else pa.timestamp("us"), safe=False).cast(pa.int64())
    return np.asarray(pc.fill_null(us, _NULL_TS))


def _objects(col: pa.ChunkedArray) -> np.ndarray:
    """A writable object array (None for nulls) that the settling loops can index cheaply."""
    return np.array(col.combine_chunks().to_numpy(zero_copy_only=False), dtype=object)


class AcceptedIds:
    """Transaction ids accepted so far, each forgotten once its record's Kafka time falls
    out of the deduplication window (``window_us``; None remembers every id).

    Without a window the index grows by ~120 bytes per accepted record, for ever.  Ids are
    filed in buckets of 1/16 of the window, so forgetting drops whole buckets: an id is
    remembered while its bucket is not older than the cut-off's, i.e. at least the window
    and at most 1/16 longer.  The rule is per id (not per batch), so an index rebuilt
    from the state deltas after a restart (:meth:`rebuilt`) is exactly the one kept in
    memory.  An id is in at most one remembered bucket: it can only be accepted again
    once forgotten.
    """

    SLICES = 16

    def __init__(self, window_us: int | None = None) -> None:
        self.window_us = window_us
        self._width = max(1, window_us // self.SLICES) if window_us else 0
        self._ids: set[str] = set()
        self._buckets: dict[int, list[str]] = {}

    @classmethod
    def rebuilt(cls, window_us: int | None, deltas: Iterable[pa.Table], cutoff_us: int) -> AcceptedIds:
        """The index as it was when ``cutoff_us`` applied, from the state deltas.  Rows
        already forgotten are skipped, not added and removed: an id accepted again after
        being forgotten has two rows, and only the remembered one may stand."""
        ids = cls(window_us)
        for delta in deltas:
            ids.add(ids.kept(delta, cutoff_us))
        return ids

    def __contains__(self, tid: object) -> bool:
        return tid in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, ids: pa.Table) -> None:
        """Add a state delta's rows (``transaction_id``, ``kafka_timestamp``)."""
        tids = _objects(ids["transaction_id"])
        self._ids.update(tids.tolist())
        if not self._width:
            return
        if "kafka_timestamp" in ids.column_names:
            buckets = micros(ids["kafka_timestamp"]) // self._width
        else:  # a delta written before ids carried their time: forgotten at once
            buckets = np.full(len(tids), _NULL_TS // self._width)
        for b in np.unique(buckets).tolist():
            self._buckets.setdefault(b, []).extend(tids[buckets == b].tolist())

    def forget_before(self, cutoff_us: int) -> int:
        """Forget the ids of buckets older than ``cutoff_us``'s; returns how many."""
        if not self._width:
            return 0
        limit = cutoff_us // self._width
        old = [b for b in self._buckets if b < limit]
        before = len(self._ids)
        for b in old:
            self._ids.difference_update(self._buckets.pop(b))
        return before - len(self._ids)

    def kept(self, ids: pa.Table, cutoff_us: int) -> pa.Table:
        """The rows of a state delta that :meth:`forget_before` ``cutoff_us`` would keep
        (compaction drops the rest from disk)."""
        if not self._width:
            return ids
        if "kafka_timestamp" not in ids.column_names:
            return ids.slice(0, 0)
        buckets = micros(ids["kafka_timestamp"]) // self._width
        return ids.filter(pa.array(buckets >= cutoff_us // self._width))


class CustomerHistory:
    """The valid versions of every customer that enrichment can still use, sorted by
    arrival (ts, partition, offset).

    A version superseded by a newer one that arrived before the deduplication window's
    cut-off is dropped (:meth:`forget_before`): a transaction arriving after the cut-off
    is enriched as of its own arrival, so it can only need the last version before the
    cut-off or a later one.  (One arriving more than the window behind the newest record
    would get that last version; producers time records when they send them, so that does
    not happen.)  Without this the history grows by every customer update, for ever, and
    each batch re-sorts all of it.
    """

    _COLUMNS = ("customer_id", "ts", "partition", "offset", "state", "city", "birth_year", "birth_md")

    def __init__(self) -> None:
        self._frame = pd.DataFrame({c: [] for c in self._COLUMNS})
        self._earliest = self._frame.set_index("customer_id")

    def __len__(self) -> int:
        return len(self._earliest)

    def add(self, versions: pa.Table) -> None:
        """Add rows with :data:`VERSION_COLUMNS` (a state delta or this batch's customers)."""
        birth = versions["birth_date"]
        new = pd.DataFrame(
            {
                "customer_id": versions["customer_id"].to_numpy(),
                "ts": micros(versions["kafka_timestamp"]),
                "partition": versions["kafka_partition"].to_numpy(),
                "offset": versions["kafka_offset"].to_numpy(),
                "state": versions["state"].to_numpy(),
                "city": versions["city"].to_numpy(),
                "birth_year": pc.year(birth).to_numpy(),
                "birth_md": pc.add(pc.multiply(pc.month(birth), 100), pc.day(birth)).to_numpy(),
            }
        )
        frame = pd.concat([self._frame, new], ignore_index=True) if len(self._frame) else new
        self._frame = frame.sort_values(["ts", "partition", "offset"], kind="stable", ignore_index=True)
        self._earliest = self._frame.drop_duplicates("customer_id", keep="first").set_index("customer_id")

    def forget_before(self, cutoff_us: int) -> int:
        """Drop versions superseded by one that arrived no later than ``cutoff_us``."""
        drop = _superseded(self._frame["customer_id"].to_numpy(), self._frame["ts"].to_numpy(), cutoff_us)
        if not len(drop):
            return 0
        self._frame = self._frame.drop(index=drop).reset_index(drop=True)
        self._earliest = self._frame.drop_duplicates("customer_id", keep="first").set_index("customer_id")
        return len(drop)

    @staticmethod
    def kept(versions: pa.Table, cutoff_us: int) -> pa.Table:
        """The rows of a customers state delta that :meth:`forget_before` would keep."""
        order = pc.sort_indices(
            versions,
            [
                ("kafka_timestamp", "ascending"),
                ("kafka_partition", "ascending"),
                ("kafka_offset", "ascending"),
            ],
        )
        ordered = versions.take(order)
        drop = _superseded(_objects(ordered["customer_id"]), micros(ordered["kafka_timestamp"]), cutoff_us)
        keep = np.ones(ordered.num_rows, dtype=bool)
        keep[drop] = False
        return ordered.filter(pa.array(keep))

    def lookup(self, customer_ids: np.ndarray, ts_us: np.ndarray) -> pd.DataFrame:
        """For each (customer, time): the latest version that arrived no later, else the earliest.

        The generator acknowledges a customer before it references it, so the first case
        is the rule; the second covers a record whose version was re-sent later.  Returns
        one row per input, in input order, with ``found`` false for an unknown customer.
        """
        n = len(customer_ids)
        left = pd.DataFrame({"customer_id": customer_ids, "ts": ts_us, "_pos": np.arange(n)})
        if not len(self._frame) or not n:
            return left.assign(found=False, state=None, city=None, birth_year=0, birth_md=0)
        right = self._frame[["customer_id", "ts", "state", "city", "birth_year", "birth_md"]].assign(
            found=True
        )
        # Ties on ts: merge_asof takes the last matching row, i.e. the latest (partition, offset).
        m = pd.merge_asof(
            left.sort_values("ts", kind="stable"), right, on="ts", by="customer_id", direction="backward"
        ).sort_values("_pos", ignore_index=True)
        hit = m["found"].notna().to_numpy()
        miss = np.flatnonzero(~hit)
        early = self._earliest.reindex(m["customer_id"].to_numpy()[miss])
        for c in ("state", "city", "birth_year", "birth_md"):
            values = m[c].to_numpy(dtype=object)
            values[miss] = early[c].to_numpy(dtype=object)
            m[c] = values
        found = hit.copy()
        found[miss] = early["ts"].notna().to_numpy()
        m["found"] = found
        return m

    def as_of(self, customer_id: str, ts_us: int) -> tuple | None:
        """One lookup: (state, city, birth_year, birth_md), or None for an unknown customer."""
        r = self.lookup(np.array([customer_id], dtype=object), np.array([ts_us], dtype=np.int64)).iloc[0]
        return (r["state"], r["city"], int(r["birth_year"]), int(r["birth_md"])) if r["found"] else None


_CUSTOMER_ONLY = ("name", "email", "birth_date", "state", "signup_time", "updated_at")
_TRANSACTION_ONLY = (
    "transaction_id",
    "event_time",
    "amount",
    "amount_cents",
    "currency",
    "category",
    "payment_method",
    "merchant",
    "year",
    "month",
    "month_day",
)


@dataclass(frozen=True)
class Split:
    customers: pa.Table
    transactions: pa.Table


def split(batch: pa.Table, customers_topic: str, transactions_topic: str) -> Split:
    """The collected batch (:func:`.transforms.checked_batch`) by record type."""
    topic = batch["topic"]
    customers = batch.filter(pc.equal(topic, customers_topic))
    transactions = batch.filter(pc.equal(topic, transactions_topic))
    return Split(
        customers.drop_columns([c for c in _TRANSACTION_ONLY if c in batch.column_names]),
        transactions.drop_columns([c for c in _CUSTOMER_ONLY if c in batch.column_names]),
    )


def customer_rows(customers: pa.Table) -> pa.Table:
    """Valid customers as ``customers/`` rows (one per received version); also the state delta."""
    ok = customers.filter(pc.is_null(customers["reason"]))
    return pa.table(
        {
            **{c: ok[c] for c in CUSTOMER_COLUMNS[:8]},
            "kafka_timestamp": ok["kafka_timestamp"],
            "kafka_partition": ok["partition"],
            "kafka_offset": ok["offset"],
        }
    )


def _superseded(customer_ids: np.ndarray, ts_us: np.ndarray, cutoff_us: int) -> np.ndarray:
    """Positions (of rows in arrival order) of versions that a later version of the same
    customer, arrived no later than ``cutoff_us``, supersedes for every later transaction."""
    old = np.flatnonzero(ts_us <= cutoff_us)
    if not len(old):
        return old
    return old[pd.Series(customer_ids[old], dtype=object).duplicated(keep="last").to_numpy()]


def age_bands(ages: np.ndarray, bands: Sequence[int]) -> np.ndarray:
    """Band label per age: under the first cut-off is the first band, and so on; at or over
    the last cut-off is the last band (labels from :func:`contract.age_band_labels`)."""
    labels = np.array(C.age_band_labels(list(bands)), dtype=object)
    return labels[np.searchsorted(np.asarray(bands), ages, side="right")]


def settle_transactions(
    txns: pa.Table,
    seen_ids: Container[str],
    history: CustomerHistory,
    bands: Sequence[int],
    late_before_us: int | None = None,
) -> pa.Table:
    """Final reason/detail of every transaction, and the customer columns of the valid ones.

    * Duplicates: of the records that passed the record checks, the first arrival
      (lowest kafka_timestamp, partition, offset) of an id wins, unless an earlier batch
      already accepted it; a broken record never uses an id up.
    * Enrichment: the customer as of the transaction's arrival (:meth:`CustomerHistory.as_of`);
      no valid customer at all means ``unknown_customer``, an event before the customer's
      birth ``event_before_birth`` (the id stays used up in both cases).
    * ``is_late``: event time before ``late_before_us`` (the watermark at batch start).

    Adds ``state``, ``customer_city``, ``age``, ``age_band``, ``is_late`` and ``id_taken``.
    """
    txns = txns.drop_columns([c for c in _CUSTOMER_ONLY if c in txns.column_names])
    n = txns.num_rows
    reason = _objects(txns["reason"])
    detail = _objects(txns["detail"])
    tid = _objects(txns["transaction_id"])
    cid = _objects(txns["customer_id"])
    ts = micros(txns["kafka_timestamp"])
    ok = pd.isna(reason)

    candidates = np.flatnonzero(ok)
    arrival = candidates[
        np.lexsort(
            (
                txns["offset"].to_numpy()[candidates],
                txns["partition"].to_numpy()[candidates],
                ts[candidates],
            )
        )
    ]
    ids = tid[arrival]
    repeated = pd.Series(ids, dtype=object).duplicated(keep="first").to_numpy()
    earlier = np.fromiter((t in seen_ids for t in ids), dtype=bool, count=len(ids))
    dup = repeated | earlier
    reason[arrival[dup]] = C.REASON_DUPLICATE_TRANSACTION_ID
    detail[arrival[dup]] = [f"transaction_id already received: {t}" for t in ids[dup]]
    taken = np.zeros(n, dtype=bool)
    taken[arrival[~dup]] = True

    state = np.full(n, None, dtype=object)
    city = np.full(n, None, dtype=object)
    band = np.full(n, None, dtype=object)
    age = np.zeros(n, dtype=np.int32)
    rows = np.flatnonzero(taken)
    found = history.lookup(cid[rows], ts[rows])
    known = found["found"].to_numpy(dtype=bool)
    unknown = rows[~known]
    reason[unknown] = C.REASON_UNKNOWN_CUSTOMER
    detail[unknown] = [f"no valid customer with id {c}" for c in cid[unknown]]
    rows, found = rows[known], found[known]
    year = txns["year"].to_numpy(zero_copy_only=False)[rows].astype(np.int64)
    month_day = txns["month_day"].to_numpy(zero_copy_only=False)[rows].astype(np.int64)
    years = year - found["birth_year"].to_numpy(dtype=np.int64)
    age[rows] = years - (month_day < found["birth_md"].to_numpy(dtype=np.int64))
    unborn = age[rows] < 0  # an event before its customer's birth: no age to band
    reason[rows[unborn]] = C.REASON_EVENT_BEFORE_BIRTH
    detail[rows[unborn]] = [f"event_time is before the birth_date of customer {c}" for c in cid[rows[unborn]]]
    rows, found = rows[~unborn], found[~unborn]
    state[rows] = found["state"].to_numpy()
    city[rows] = found["city"].to_numpy()
    band[rows] = age_bands(age[rows], bands)

    valid = pd.isna(reason)
    late = np.zeros(n, dtype=bool)
    if late_before_us is not None:
        late = valid & (micros(txns["event_time"]) < late_before_us)
    settled = txns.drop_columns(["reason", "detail"])
    extra = {
        "reason": pa.array(reason, type=pa.string()),
        "detail": pa.array(detail, type=pa.string()),
        "state": pa.array(state, type=pa.string()),
        "customer_city": pa.array(city, type=pa.string()),
        "age": pa.array(age, type=pa.int32(), mask=~valid),
        "age_band": pa.array(band, type=pa.string()),
        "is_late": pa.array(late),
        "id_taken": pa.array(taken),
    }
    for name, arr in extra.items():
        settled = settled.append_column(name, arr)
    return settled


def transaction_rows(settled: pa.Table) -> pa.Table:
    """The ``transactions/`` rows (valid, enriched) in contract column order."""
    ok = settled.filter(pc.is_null(settled["reason"]))
    cols = {
        **{c: ok[c] for c in TRANSACTION_COLUMNS[:16]},
        "currency": pc.fill_null(ok["currency"], C.CURRENCY),
        "kafka_timestamp": ok["kafka_timestamp"],
        "kafka_partition": ok["partition"],
        "kafka_offset": ok["offset"],
    }
    return pa.table({c: cols[c] for c in TRANSACTION_COLUMNS})


def taken_ids(settled: pa.Table) -> pa.Table:
    """Ids this batch used up, with the Kafka time that starts their deduplication window
    (the transaction-id state delta)."""
    return settled.filter(settled["id_taken"]).select(["transaction_id", "kafka_timestamp"])


def quarantine_rows(customers: pa.Table, settled: pa.Table, batch_id: int) -> pa.Table:
    """Rejected records of both types with the raw payload and why, in contract column order."""
    parts = []
    for record_type, t in (("customer", customers), ("transaction", settled)):
        bad = t.filter(pc.is_valid(t["reason"]))
        n = bad.num_rows
        cols = {
            "record_type": pa.array([record_type] * n, type=pa.string()),
            "reason": bad["reason"],
            "detail": bad["detail"],
            "transaction_id": bad["transaction_id"]
            if "transaction_id" in bad.column_names
            else pa.nulls(n, pa.string()),
            "customer_id": bad["customer_id"],
            "topic": bad["topic"],
            "partition": bad["partition"],
            "offset": bad["offset"],
            "kafka_timestamp": bad["kafka_timestamp"],
            "key": bad["key"],
            "raw_value": bad["value"],
            "key_text": readable(bad["key"]),
            "value_text": readable(bad["value"]),
            "batch_id": pa.array([batch_id] * n, type=pa.int64()),
        }
        parts.append(pa.table(cols))
    return pa.concat_tables(parts)


def readable(raw: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Bytes as text a person (and any Parquet reader) can take: UTF-8 where it is, each
    other byte as ``\\xNN``, so the text is valid whatever arrived (nulls stay null)."""
    return pa.array(
        [None if b is None else b.decode("utf-8", "backslashreplace") for b in raw.to_pylist()],
        type=pa.string(),
    )


def aggregate_deltas(transactions: pa.Table, cents: np.ndarray) -> dict[str, pd.DataFrame]:
    """Per aggregate of :data:`contract.AGGREGATES`: this batch's count and total cents per key."""
    keys = sorted({k for ks in C.AGGREGATES.values() for k in ks})
    df = transactions.select(keys).to_pandas()
    df["transaction_count"] = 1
    df["total_cents"] = cents
    return {
        name: df.groupby(list(ks), as_index=False, dropna=False)[["transaction_count", "total_cents"]].sum()
        for name, ks in C.AGGREGATES.items()
    }


def amount_cents(settled: pa.Table) -> np.ndarray:
    """Exact cents of the valid transactions, aligned with :func:`transaction_rows`."""
    ok = settled.filter(pc.is_null(settled["reason"]))
    return ok["amount_cents"].to_numpy(zero_copy_only=False).astype(np.int64)
