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
    "updated_at",
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
    """The valid versions of every customer that enrichment can still use, in arrival
    order (Kafka timestamp, partition, offset).

    Enrichment's rule (:meth:`lookup`): of the versions that arrived no later than the
    transaction, the one with the greatest ``updated_at``; equal ``updated_at`` go to the
    later arrival.  So an older update that arrives late never replaces a newer one, as
    ``customers/`` defines latest, and a version that arrived after the transaction is
    never used, whichever micro-batch each record falls into.

    Each row carries ``best``: the position of its customer's current version once that
    row has arrived, so one backward as-of join answers every lookup.  Of the versions
    that arrived no later than the deduplication window's cut-off only each customer's
    current one can matter to a later transaction: :meth:`forget_before` drops the rest
    (one arriving more than the window behind the newest record would miss them;
    Kafka's LogAppendTime does not go back that far).  Without this the history grows by
    every customer update, for ever, and each batch re-sorts all of it.
    """

    _COLUMNS = (
        "customer_id",
        "ts",
        "partition",
        "offset",
        "updated",
        "state",
        "city",
        "birth_year",
        "birth_md",
    )

    def __init__(self) -> None:
        self._frame = pd.DataFrame({c: [] for c in self._COLUMNS})
        self._best = np.zeros(0, dtype=np.int64)
        self._customers = 0

    def __len__(self) -> int:
        """Customers known (not versions)."""
        return self._customers

    def add(self, versions: pa.Table) -> None:
        """Add rows with :data:`VERSION_COLUMNS` (a state delta or this batch's customers)."""
        birth = versions["birth_date"]
        new = pd.DataFrame(
            {
                "customer_id": versions["customer_id"].to_numpy(),
                "ts": micros(versions["kafka_timestamp"]),
                "partition": versions["kafka_partition"].to_numpy(),
                "offset": versions["kafka_offset"].to_numpy(),
                "updated": micros(versions["updated_at"]),
                "state": versions["state"].to_numpy(),
                "city": versions["city"].to_numpy(),
                "birth_year": pc.year(birth).to_numpy(),
                "birth_md": pc.add(pc.multiply(pc.month(birth), 100), pc.day(birth)).to_numpy(),
            }
        )
        frame = pd.concat([self._frame, new], ignore_index=True) if len(self._frame) else new
        self._set(frame.sort_values(["ts", "partition", "offset"], kind="stable", ignore_index=True))

    def _set(self, frame: pd.DataFrame) -> None:
        self._frame = frame
        self._best = _current_so_far(frame["customer_id"].to_numpy(), frame["updated"].to_numpy())
        self._customers = int(frame["customer_id"].nunique())

    def forget_before(self, cutoff_us: int) -> int:
        """Drop versions that arrived no later than ``cutoff_us`` and are not their
        customer's current version as of ``cutoff_us``."""
        f = self._frame
        drop = _superseded(
            f["customer_id"].to_numpy(), f["ts"].to_numpy(), f["updated"].to_numpy(), cutoff_us
        )
        if not len(drop):
            return 0
        self._set(f.drop(index=drop).reset_index(drop=True))
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
        drop = _superseded(
            _objects(ordered["customer_id"]),
            micros(ordered["kafka_timestamp"]),
            micros(ordered["updated_at"]),
            cutoff_us,
        )
        keep = np.ones(ordered.num_rows, dtype=bool)
        keep[drop] = False
        return ordered.filter(pa.array(keep))

    def lookup(self, customer_ids: np.ndarray, ts_us: np.ndarray) -> pd.DataFrame:
        """For each (customer, time): the customer's current version among those that
        arrived no later (greatest ``updated_at``, then latest arrival).  Returns one row
        per input, in input order, with ``found`` false when no version had arrived."""
        n = len(customer_ids)
        left = pd.DataFrame({"customer_id": customer_ids, "ts": ts_us, "_pos": np.arange(n)})
        if not len(self._frame) or not n:
            return left.assign(found=False, state=None, city=None, birth_year=0, birth_md=0)
        f = self._frame
        right = pd.DataFrame(
            {
                "customer_id": f["customer_id"].to_numpy(),
                "ts": f["ts"].to_numpy(),
                **{c: f[c].to_numpy()[self._best] for c in ("state", "city", "birth_year", "birth_md")},
                "found": True,
            }
        )
        # Ties on ts: merge_asof takes the last matching row, whose ``best`` covers them all.
        m = pd.merge_asof(
            left.sort_values("ts", kind="stable"), right, on="ts", by="customer_id", direction="backward"
        ).sort_values("_pos", ignore_index=True)
        m["found"] = m["found"].notna().to_numpy()
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


def _current_so_far(customer_ids: np.ndarray, updated_us: np.ndarray) -> np.ndarray:
    """For rows in arrival order: the position of the row's customer's current version
    once the row has arrived (greatest ``updated_at`` so far, ties to the later row)."""
    n = len(customer_ids)
    if not n:
        return np.zeros(0, dtype=np.int64)
    keys = pd.Series(customer_ids, dtype=object)
    top = pd.Series(updated_us).groupby(keys.to_numpy(), sort=False).cummax().to_numpy()
    pos = pd.Series(np.where(updated_us == top, np.arange(n), -1)).replace(-1, np.nan)
    # The first row of each customer is its own current version, so the fill never runs dry.
    return pos.groupby(keys.to_numpy(), sort=False).ffill().to_numpy().astype(np.int64)


def _superseded(
    customer_ids: np.ndarray, ts_us: np.ndarray, updated_us: np.ndarray, cutoff_us: int
) -> np.ndarray:
    """Positions (of rows in arrival order) of versions that arrived no later than
    ``cutoff_us`` and are not their customer's current version as of then: no
    transaction arriving after the cut-off can pick them."""
    old = np.flatnonzero(ts_us <= cutoff_us)
    if not len(old):
        return old
    df = pd.DataFrame({"c": pd.Series(customer_ids[old], dtype=object), "u": updated_us[old], "p": old})
    current = df.sort_values(["u", "p"], kind="stable").drop_duplicates("c", keep="last")["p"].to_numpy()
    return np.setdiff1d(old, current)


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

    Every decision is a function of the record and of what arrived before it (Kafka
    timestamp, partition, offset), never of the micro-batch it falls into:

    * Enrichment: the customer as of the transaction's arrival (:meth:`CustomerHistory.lookup`);
      no version arrived by then means ``unknown_customer``, an event before that version's
      birth date ``event_before_birth``.
    * Duplicates: an id accepted by an earlier batch, or by an earlier arrival in this one,
      is ``duplicate_transaction_id``.  Only accepted records use an id up: one that failed
      a record check or had no customer yet can be replayed under the same id.
    * ``is_late``: event time before ``late_before_us`` (the lateness reference at batch
      start less the watermark).

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
    found = history.lookup(cid[arrival], ts[arrival])
    known = found["found"].to_numpy(dtype=bool)
    # An event before its customer's birth has no age to band: quarantined, and like every
    # quarantined record it does not use its id up.
    kp = np.flatnonzero(known)
    k_rows = arrival[kp]
    k_year = txns["year"].to_numpy(zero_copy_only=False)[k_rows].astype(np.int64)
    k_md = txns["month_day"].to_numpy(zero_copy_only=False)[k_rows].astype(np.int64)
    k_age = k_year - found["birth_year"].to_numpy()[kp].astype(np.int64)
    k_age -= k_md < found["birth_md"].to_numpy()[kp].astype(np.int64)
    unborn_pos = np.zeros(len(ids), dtype=bool)
    unborn_pos[kp[k_age < 0]] = True
    eligible = known & ~unborn_pos
    # Position (in arrival order) of each id's first arrival that can be accepted: it is
    # accepted unless an earlier batch took the id, and every later arrival is a repeat.
    known_pos = np.flatnonzero(eligible)
    first = known_pos[~pd.Series(ids[known_pos], dtype=object).duplicated(keep="first").to_numpy()]
    first_of_id = pd.Series(first, index=pd.Index(ids[first], dtype=object))
    first_pos = pd.Series(ids, dtype=object).map(first_of_id).to_numpy(dtype=float)
    repeated = ~np.isnan(first_pos) & (first_pos < np.arange(len(ids)))
    earlier = np.fromiter((t in seen_ids for t in ids), dtype=bool, count=len(ids))
    dup = repeated | earlier
    reason[arrival[dup]] = C.REASON_DUPLICATE_TRANSACTION_ID
    detail[arrival[dup]] = [f"transaction_id already received: {t}" for t in ids[dup]]
    unknown = arrival[~dup & ~known]
    reason[unknown] = C.REASON_UNKNOWN_CUSTOMER
    detail[unknown] = [
        f"no valid customer with id {c} had arrived before this transaction" for c in cid[unknown]
    ]
    born_late = arrival[~dup & unborn_pos]
    reason[born_late] = C.REASON_EVENT_BEFORE_BIRTH
    detail[born_late] = [f"event_time is before the birth_date of customer {c}" for c in cid[born_late]]
    accepted = ~dup & eligible
    taken = np.zeros(n, dtype=bool)
    taken[arrival[accepted]] = True

    state = np.full(n, None, dtype=object)
    city = np.full(n, None, dtype=object)
    band = np.full(n, None, dtype=object)
    age = np.zeros(n, dtype=np.int32)
    rows, found = arrival[accepted], found[accepted]
    year = txns["year"].to_numpy(zero_copy_only=False)[rows].astype(np.int64)
    month_day = txns["month_day"].to_numpy(zero_copy_only=False)[rows].astype(np.int64)
    years = year - found["birth_year"].to_numpy(dtype=np.int64)
    age[rows] = years - (month_day < found["birth_md"].to_numpy(dtype=np.int64))
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


def taken_ids(settled: pa.Table, since_us: int | None = None, until_us: int | None = None) -> pa.Table:
    """Ids this batch used up, with the Kafka time that starts their deduplication window
    (the transaction-id state delta): the record's, but not before ``since_us`` (the job's
    clock at batch start) nor after ``until_us`` (its clock after the batch).  So a record
    stamped in the past (a topic still on CreateTime, or written before it was switched to
    LogAppendTime) is remembered a whole window like any other, and one stamped ahead is
    not remembered for ever."""
    taken = settled.filter(settled["id_taken"])
    start = micros(taken["kafka_timestamp"])
    if since_us is not None or until_us is not None:
        start = np.clip(start, since_us, until_us)
    return pa.table({"transaction_id": taken["transaction_id"], "kafka_timestamp": pa.array(start, TS)})


def lateness_reference_us(transactions: pa.Table, until_us: int) -> int:
    """The latest event time among valid transactions (:func:`transaction_rows`), each
    counted at most as its own Kafka time and the job's clock (``until_us``): a producer
    can move the lateness reference no further than the broker's clock has gone."""
    event = micros(transactions["event_time"])
    arrival = np.minimum(micros(transactions["kafka_timestamp"]), until_us)
    return int(np.minimum(event, arrival).max())


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
