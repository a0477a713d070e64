"""One micro-batch, end to end: the ``foreachBatch`` function of the streaming query.

Order matters for exactly-once (see :mod:`.state`): undo any earlier attempt of this
batch id, compute from state < batch id, stage, snapshot, publish, report progress.
One Spark job per batch (consume, parse, validate, collect as Arrow); the rest is
driver-side Arrow work whose cost is milliseconds (see :mod:`.stateful` for why).
The parsing and checks are part of the streaming query's own plan
(:func:`.job.start_query`), so each batch arrives here already checked.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame

from .. import contract as C
from . import stateful as S
from .config import ProcessorConfig
from .state import (
    DeltaTable,
    Publisher,
    Snapshots,
    atomic_write_text,
    fsync_path,
    replace_file,
    write_part,
)

log = logging.getLogger("spjobs.processor")

AMOUNT_ARROW = pa.decimal128(18, 2)
# The job's clock is the newest Kafka timestamp seen.  The topics use LogAppendTime (the
# broker's clock, checked at start-up: :mod:`spjobs.kafka_time`), so no producer sets it;
# a timestamp still counts at most this far ahead of our own clock, against a broker
# whose clock is wrong and records written while a topic was on CreateTime.
MAX_CLOCK_SKEW_MS = 60_000


@dataclass
class Counters:
    """Cumulative figures carried from batch to batch (and shown by the local runner)."""

    batches: int = 0
    input: dict[str, int] = field(default_factory=dict)  # by topic
    written: dict[str, int] = field(default_factory=dict)  # by dataset
    quarantined: dict[str, int] = field(default_factory=dict)  # by reason
    offsets: dict[str, dict[str, int]] = field(default_factory=dict)  # topic -> partition -> next offset
    max_kafka_timestamp_ms: int = 0  # the job's clock (see MAX_CLOCK_SKEW_MS)
    # The lateness reference: the latest event time of valid transactions, each counted at
    # most as its own Kafka time, so one event stamped far ahead cannot make the rest late.
    max_event_time_ms: int = 0
    late: int = 0  # valid transactions flagged is_late
    remembered_ids: int = 0  # transaction ids in the deduplication window (a gauge, not a sum)

    @classmethod
    def from_doc(cls, doc: dict) -> Counters:
        return cls(**{k: doc[k] for k in cls.__dataclass_fields__ if k in doc})

    def add(self, bucket: dict[str, int], key: str, n: int) -> None:
        bucket[key] = bucket.get(key, 0) + int(n)


class _Phases:
    """Wall time per phase of a batch, logged with it (where does a slow batch go?)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._t = time.monotonic()

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self._t, 3)
        self._t = now


def _bounded_by_clock(topic: str, ms: int) -> int:
    """A Kafka timestamp, counted at most :data:`MAX_CLOCK_SKEW_MS` ahead of this clock."""
    limit = int(time.time() * 1000) + MAX_CLOCK_SKEW_MS
    if ms <= limit:
        return ms
    hint = "the broker's clock (or a CreateTime producer's) is ahead: the job's clock ignores the excess"
    event = {"event": "kafka_timestamp_ahead", "topic": topic, "timestamp_ms": ms, "counted_ms": limit}
    log.warning(json.dumps({**event, "hint": hint}))
    return limit


class BatchProcessor:
    """Callable given to ``DataStreamWriter.foreachBatch``.

    Spark consumes, parses and validates the batch and hands it over as Arrow in one job
    (the query applies :class:`.transforms.BatchChecker`); the driver settles what needs
    history (:mod:`.stateful`) and writes every output with pyarrow.
    """

    def __init__(self, cfg: ProcessorConfig) -> None:
        self.cfg = cfg
        self.sink = Path(cfg.sink_path)
        work = cfg.checkpoint_root
        self.customers_state = DeltaTable(work / "state" / "customers")
        self.txids_state = DeltaTable(work / "state" / "transaction_ids")
        self.snapshots = Snapshots(work / "state" / "snapshots")
        self.publisher = Publisher(self.sink, work)
        self.progress_file = work / "progress.json"
        # Wall seconds per phase summed over this process's batches (benchmarks read them).
        self.phase_totals: dict[str, float] = {}
        self.batches_timed = 0
        self.window_us = int(cfg.dedup_window_seconds * 1_000_000)
        self.history = History(self.txids_state, self.customers_state, self.window_us)
        for name in (C.OUT_TRANSACTIONS, C.OUT_CUSTOMERS, C.OUT_QUARANTINE):
            (self.sink / name).mkdir(parents=True, exist_ok=True)
        for d in (self.sink, work.parent, work, work / "state"):  # the directories above are on disk
            fsync_path(d)

    # -- the foreachBatch entry point ---------------------------------------------------
    def __call__(self, checked: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        phases = _Phases()
        self.publisher.undo(batch_id)
        self.customers_state.discard(batch_id)
        self.txids_state.discard(batch_id)
        self.snapshots.discard(batch_id)
        counters = Counters.from_doc(self.snapshots.read_json(batch_id, "counters.json", {}))
        cutoff_us = self._dedup_cutoff_us(counters)
        if batch_id > 0 and batch_id % self.cfg.compact_every == 0:
            self.customers_state.compact(batch_id - 1, keep=lambda t: S.CustomerHistory.kept(t, cutoff_us))
            ids = S.AcceptedIds(self.window_us)
            self.txids_state.compact(batch_id - 1, keep=lambda t: ids.kept(t, cutoff_us))
        phases.mark("recover")

        batch = S.split(checked.toArrow(), self.cfg.customers_topic, self.cfg.transactions_topic)
        phases.mark("spark")
        self._process(batch_id, batch, counters, cutoff_us, phases)
        self._report(batch_id, counters, time.monotonic() - started, phases.seconds)
        for name, seconds in phases.seconds.items():
            self.phase_totals[name] = self.phase_totals.get(name, 0.0) + seconds
        self.batches_timed += 1

    def _dedup_cutoff_us(self, counters: Counters) -> int:
        """Ids accepted before this Kafka time are forgotten (the deduplication window is
        measured back from the latest record seen before this batch)."""
        return counters.max_kafka_timestamp_ms * 1000 - self.window_us

    def _process(
        self, batch_id: int, batch: S.Split, counters: Counters, cutoff_us: int, phases: _Phases
    ) -> None:
        ids, customers = self.history.before(batch_id, cutoff_us)
        since_ms = counters.max_kafka_timestamp_ms
        until_ms = self._batch_clock(batch, since_ms)
        try:
            new_versions = S.customer_rows(batch.customers)
            customers.add(new_versions.select(list(S.VERSION_COLUMNS)))
            late_before_us = None
            if counters.max_event_time_ms:
                late_before_us = (counters.max_event_time_ms - int(self.cfg.watermark_seconds * 1000)) * 1000
            settled = S.settle_transactions(
                batch.transactions, ids, customers, self.cfg.age_bands, late_before_us
            )
            transactions = S.transaction_rows(settled)
            # A first batch has no clock yet: its ids start at its newest Kafka time.
            new_ids = S.taken_ids(settled, (since_ms or until_ms) * 1000, until_ms * 1000)
            quarantine = S.quarantine_rows(batch.customers, settled, batch_id)
            deltas = S.aggregate_deltas(transactions, S.amount_cents(settled))
            phases.mark("settle")

            datasets = []
            if transactions.num_rows:
                self._stage_partitioned(batch_id, transactions)
                datasets.append(C.OUT_TRANSACTIONS)
            if new_versions.num_rows:
                write_part(new_versions, self.publisher.stage_dir(batch_id, C.OUT_CUSTOMERS))
                datasets.append(C.OUT_CUSTOMERS)
                self.customers_state.write(batch_id, new_versions)
            if quarantine.num_rows:
                write_part(quarantine, self.publisher.stage_dir(batch_id, C.OUT_QUARANTINE))
                datasets.append(C.OUT_QUARANTINE)
            if new_ids.num_rows:
                self.txids_state.write(batch_id, new_ids)
            aggregates = self._aggregates(batch_id, deltas)
            phases.mark("write")

            self._count(batch.customers, settled, transactions, new_versions.num_rows, counters)
            counters.max_kafka_timestamp_ms = until_ms
            if transactions.num_rows:
                reference_us = S.lateness_reference_us(transactions, until_ms * 1000)
                counters.max_event_time_ms = max(counters.max_event_time_ms, reference_us // 1000)
            counters.remembered_ids = len(ids) + new_ids.num_rows  # new ids were not remembered
            snap = self.snapshots.write(batch_id, aggregates, {"counters.json": counters.__dict__})
            self.publisher.publish(batch_id, datasets)
            for name in aggregates:
                target = self.sink / C.OUT_AGGREGATES / name.removesuffix(".parquet") / "part-00000.parquet"
                replace_file(snap / name, target)
            self.publisher.forget_before(batch_id)
            self.history.advance(batch_id, new_ids)
            phases.mark("publish")
        except BaseException:
            self.history.drop()  # half-applied: rebuilt from the state deltas next batch
            raise

    @staticmethod
    def _batch_clock(batch: S.Split, since_ms: int) -> int:
        """The job's clock after this batch: the newest Kafka timestamp seen so far, each
        counted at most :data:`MAX_CLOCK_SKEW_MS` ahead of this host's clock."""
        clock = since_ms
        for t in (batch.customers, batch.transactions):
            # As integers: a quarantined record's Kafka time may be beyond datetime's years.
            us = pc.max(pc.cast(t["kafka_timestamp"], pa.int64())).as_py() if t.num_rows else None
            if us is not None:
                clock = max(clock, _bounded_by_clock(t["topic"][0].as_py(), us // 1000))
        return clock

    def _stage_partitioned(self, batch_id: int, transactions: pa.Table) -> None:
        """``year=Y/month=M/`` directories without those columns, as Spark's partitionBy writes."""
        stage = self.publisher.stage_dir(batch_id, C.OUT_TRANSACTIONS)
        periods = transactions.select(["year", "month"]).group_by(["year", "month"]).aggregate([])
        data = transactions.drop_columns(["year", "month"])
        for y, m in zip(periods["year"].to_pylist(), periods["month"].to_pylist()):
            mask = pc.and_(pc.equal(transactions["year"], y), pc.equal(transactions["month"], m))
            write_part(data.filter(mask), stage / f"year={y}" / f"month={m}")

    def _count(
        self,
        customers: pa.Table,
        settled: pa.Table,
        transactions: pa.Table,
        n_customers: int,
        counters: Counters,
    ) -> None:
        """Cumulative input/offsets/written/quarantined figures."""
        counters.batches += 1
        for t in (customers, settled):
            if not t.num_rows:
                continue
            topic = t["topic"][0].as_py()
            counters.add(counters.input, topic, t.num_rows)
            per = t.group_by("partition").aggregate([("offset", "max")])
            parts = counters.offsets.setdefault(topic, {})
            for p, o in zip(per["partition"].to_pylist(), per["offset_max"].to_pylist()):
                parts[str(p)] = max(parts.get(str(p), 0), int(o) + 1)
            reasons = t["reason"].drop_null().value_counts().to_pylist()
            for r in reasons:
                counters.add(counters.quarantined, r["values"], r["counts"])
        if transactions.num_rows:
            counters.late += pc.sum(transactions["is_late"]).as_py() or 0
        counters.add(counters.written, C.OUT_TRANSACTIONS, transactions.num_rows)
        counters.add(counters.written, C.OUT_CUSTOMERS, n_customers)
        counters.written[C.OUT_QUARANTINE] = sum(counters.quarantined.values())

    def _aggregates(self, batch_id: int, deltas: dict[str, pd.DataFrame]) -> dict[str, pa.Table]:
        """New totals = previous snapshot + this batch's deltas (exact integer cents)."""
        tables: dict[str, pa.Table] = {}
        for name, keys in C.AGGREGATES.items():
            fname = f"{name}.parquet"
            prev = self.snapshots.read_table(batch_id, fname)
            frames = []
            if prev is not None:
                frames.append(prev.select([*keys, "transaction_count", "total_cents"]).to_pandas())
            delta = deltas[name]
            if len(delta):
                frames.append(delta[[*keys, "transaction_count", "total_cents"]])
            if not frames:
                continue
            df = pd.concat(frames, ignore_index=True)
            df = df.groupby(list(keys), as_index=False, dropna=False)[
                ["transaction_count", "total_cents"]
            ].sum()
            df = df.sort_values(list(keys), kind="stable").reset_index(drop=True)
            tables[fname] = _aggregate_table(df, keys)
        return tables

    def _report(self, batch_id: int, counters: Counters, elapsed: float, phases: dict[str, float]) -> None:
        doc = {
            "batch_id": batch_id,
            "batch_seconds": round(elapsed, 3),
            "phase_seconds": phases,
            "updated_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            **counters.__dict__,
        }
        atomic_write_text(self.progress_file, json.dumps(doc, sort_keys=True))
        log.info(json.dumps({"event": "batch", **doc}))


class History:
    """The two indexes :mod:`.stateful` needs, kept in driver memory between batches; what
    falls out of the deduplication window is forgotten in both.

    Valid for batch N only if built from the state deltas of batches < N; any other
    case (first batch, a restart, a batch that failed half-way) rebuilds it from disk.
    """

    def __init__(self, txids: DeltaTable, customers: DeltaTable, window_us: int | None) -> None:
        self._txids_table = txids
        self._customers_table = customers
        self._window_us = window_us
        self._upto = -1
        self.ids = S.AcceptedIds(window_us)
        self._customers = S.CustomerHistory()

    def before(self, batch_id: int, cutoff_us: int) -> tuple[S.AcceptedIds, S.CustomerHistory]:
        """The indexes as of batch ``batch_id``'s start, ids older than ``cutoff_us`` forgotten."""
        if self._upto != batch_id:
            deltas = self._txids_table.read_before(batch_id)
            self.ids = S.AcceptedIds.rebuilt(self._window_us, deltas, cutoff_us)
            self._customers = S.CustomerHistory()
            for t in self._customers_table.read_before(batch_id):
                self._customers.add(t.select(list(S.VERSION_COLUMNS)))
        self.ids.forget_before(cutoff_us)
        self._customers.forget_before(cutoff_us)
        self._upto = -1  # in use: valid again only once advance() says the batch committed
        return self.ids, self._customers

    def advance(self, batch_id: int, new_ids: pa.Table) -> None:
        """Batch ``batch_id`` wrote its deltas (its customers are already in the index)."""
        self.ids.add(new_ids)
        self._upto = batch_id + 1

    def drop(self) -> None:
        self._upto = -1


def _aggregate_table(df: pd.DataFrame, keys: tuple[str, ...]) -> pa.Table:
    counts = df["transaction_count"].astype("int64").tolist()
    cents = df["total_cents"].astype("int64").tolist()
    # Half-up rounding of total/count to whole cents, exactly (all totals are positive).
    avg = [(2 * c + n) // (2 * n) for c, n in zip(cents, counts)]
    cols = {k: df[k].tolist() for k in keys}
    arrays = {
        k: pa.array(v, type=pa.int32() if k in ("year", "month") else pa.string()) for k, v in cols.items()
    }
    arrays["transaction_count"] = pa.array(counts, type=pa.int64())
    arrays["total_amount"] = pa.array([Decimal(c).scaleb(-2) for c in cents], type=AMOUNT_ARROW)
    arrays["avg_amount"] = pa.array([Decimal(a).scaleb(-2) for a in avg], type=AMOUNT_ARROW)
    arrays["total_cents"] = pa.array(cents, type=pa.int64())
    return pa.table(arrays)


SOURCE_OFFSETS = "source_offsets.json"  # written by job.ProgressLogger after each trigger


def read_positions(sink_path: str | Path) -> dict[str, dict[int, int]]:
    """Per topic and partition, the next offset the job has consumed up to: Spark's own
    end offsets of its last trigger, or past the last record a batch held."""
    root = Path(sink_path) / C.CHECKPOINTS_DIR / "processor"
    out: dict[str, dict[int, int]] = {}
    docs = [(read_progress(sink_path) or {}).get("offsets", {})]
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        docs.append(json.loads((root / SOURCE_OFFSETS).read_text()))
    for doc in docs:
        for topic, parts in doc.items():
            mine = out.setdefault(topic, {})
            for p, o in parts.items():
                mine[int(p)] = max(mine.get(int(p), 0), int(o))
    return out


def read_progress(sink_path: str | Path) -> dict | None:
    """The last finished batch's figures, for progress displays (None before the first)."""
    path = Path(sink_path) / C.CHECKPOINTS_DIR / "processor" / "progress.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


__all__ = ["SOURCE_OFFSETS", "BatchProcessor", "read_positions", "read_progress"]
