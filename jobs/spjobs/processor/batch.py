"""One micro-batch, end to end: the ``foreachBatch`` function of the streaming query.

Order matters for exactly-once (see :mod:`.state`): undo any earlier attempt of this
batch id, compute from state < batch id, stage, snapshot, publish, report progress.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Row
from pyspark.sql import functions as F

from .. import contract as C
from . import transforms as X
from .config import ProcessorConfig
from .state import CachedState, DeltaTable, Publisher, Snapshots, atomic_write_text, replace_file

log = logging.getLogger("spjobs.processor")

AMOUNT_ARROW = pa.decimal128(18, 2)
_VERSION_COLUMNS = (
    "customer_id",
    "state",
    "city",
    "birth_date",
    "kafka_timestamp",
    "kafka_partition",
    "kafka_offset",
)


@dataclass
class Counters:
    """Cumulative figures carried from batch to batch (and shown by the local runner)."""

    batches: int = 0
    input: dict[str, int] = field(default_factory=dict)  # by topic
    written: dict[str, int] = field(default_factory=dict)  # by dataset
    quarantined: dict[str, int] = field(default_factory=dict)  # by reason
    offsets: dict[str, dict[str, int]] = field(default_factory=dict)  # topic -> partition -> next offset
    max_kafka_timestamp_ms: int = 0
    max_event_time_ms: int = 0  # of valid transactions: drives the lateness watermark
    late: int = 0  # valid transactions flagged is_late

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


class BatchProcessor:
    """Callable given to ``DataStreamWriter.foreachBatch``."""

    def __init__(self, cfg: ProcessorConfig) -> None:
        self.cfg = cfg
        self.sink = Path(cfg.sink_path)
        work = cfg.checkpoint_root
        self.customers_state = DeltaTable(work / "state" / "customers")
        self.txids_state = DeltaTable(work / "state" / "transaction_ids")
        self.snapshots = Snapshots(work / "state" / "snapshots")
        self.publisher = Publisher(self.sink, work)
        self.progress_file = work / "progress.json"
        self.txids_cache = CachedState(self.txids_state)
        self.customers_cache = CachedState(self.customers_state, columns=_VERSION_COLUMNS)
        for name in (C.OUT_TRANSACTIONS, C.OUT_CUSTOMERS, C.OUT_QUARANTINE):
            (self.sink / name).mkdir(parents=True, exist_ok=True)

    # -- the foreachBatch entry point ---------------------------------------------------
    def __call__(self, raw: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        phases = _Phases()
        spark = raw.sparkSession
        self.publisher.undo(batch_id)
        self.customers_state.discard(batch_id)
        self.txids_state.discard(batch_id)
        self.snapshots.discard(batch_id)
        if batch_id > 0 and batch_id % self.cfg.compact_every == 0:
            self.customers_state.compact(spark, batch_id - 1)
            self.txids_state.compact(spark, batch_id - 1)
        phases.mark("recover")

        counters = Counters.from_doc(self.snapshots.read_json(batch_id, "counters.json", {}))
        raw = raw.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            self._process(spark, raw, batch_id, counters, phases)
        finally:
            raw.unpersist()
        self.publisher.forget_before(batch_id)
        self.txids_cache.advance(spark, batch_id)
        self.customers_cache.advance(spark, batch_id)
        phases.mark("state_cache")
        self._report(batch_id, counters, time.monotonic() - started, phases.seconds)

    def _process(self, spark, raw: DataFrame, batch_id: int, counters: Counters, phases: _Phases) -> None:  # type: ignore[no-untyped-def]
        cust = X.validate_customers(raw.where(F.col("topic") == self.cfg.customers_topic))
        cust = cust.persist(StorageLevel.MEMORY_AND_DISK)
        new_versions = X.customer_versions(cust)
        versions = new_versions.select(*_VERSION_COLUMNS)
        old = self.customers_cache.before(spark, batch_id)
        if old is not None:
            versions = old.unionByName(versions)

        txn = X.validate_transactions(raw.where(F.col("topic") == self.cfg.transactions_topic))
        # Validated once: the de-duplication reads it twice (its ids are broadcast).
        checked = txn = txn.persist(StorageLevel.MEMORY_AND_DISK)
        txn = X.mark_duplicates(txn, self.txids_cache.before(spark, batch_id))
        # Every id that passes the record checks is used up, even if its customer is unknown.
        txn = txn.withColumn("_id_taken", F.col("reason").isNull())
        txn = X.enrich(txn, versions, self.cfg.age_bands).persist(StorageLevel.MEMORY_AND_DISK)
        phases.mark("plan")
        try:
            self._write(batch_id, cust, new_versions, txn, counters, phases)
        finally:
            txn.unpersist()
            checked.unpersist()
            cust.unpersist()

    def _outcome(self, cust: DataFrame, txn: DataFrame, late: Column) -> list[Row]:
        """Everything the driver needs to know about a batch, in one Spark job: per record
        type, reason and Kafka partition, the count, last offset and timestamps."""
        cols = ["topic", "partition", "offset", "kafka_timestamp", "reason"]
        return (
            cust.select(
                F.lit("customer").alias("t"),
                *cols,
                F.lit(None).cast("timestamp").alias("ev"),
                F.lit(False).alias("late"),
            )
            .unionByName(
                txn.select(
                    F.lit("transaction").alias("t"),
                    *cols,
                    F.col("event_time_ts").alias("ev"),
                    (F.col("reason").isNull() & late).alias("late"),
                )
            )
            .groupBy("t", "reason", "topic", "partition")
            .agg(
                F.count("*").alias("count"),
                F.max("offset").alias("max_offset"),
                F.max("kafka_timestamp").alias("max_ts"),
                F.max("ev").alias("max_ev"),
                F.sum(F.col("late").cast("int")).alias("late"),
            )
            .collect()
        )

    def _write(self, batch_id, cust, new_versions, txn, counters, phases) -> None:  # type: ignore[no-untyped-def]
        late_before = None
        if counters.max_event_time_ms:
            watermark_ms = counters.max_event_time_ms - int(self.cfg.watermark_seconds * 1000)
            late_before = datetime.fromtimestamp(watermark_ms / 1000, tz=timezone.utc).replace(tzinfo=None)
        late = F.col("event_time_ts") < F.lit(late_before) if late_before else F.lit(False)
        outcome = self._outcome(cust, txn, late)
        self._count_input(outcome, counters)
        phases.mark("classify")
        n_txn = sum(r["count"] for r in outcome if r["t"] == "transaction" and r["reason"] is None)
        n_cust = sum(r["count"] for r in outcome if r["t"] == "customer" and r["reason"] is None)
        n_quar = sum(r["count"] for r in outcome if r["reason"] is not None)
        n_taken = n_txn + sum(
            r["count"]
            for r in outcome
            if r["t"] == "transaction" and r["reason"] == C.REASON_UNKNOWN_CUSTOMER
        )

        # The writes and the aggregate deltas are independent Spark jobs over the cached batch:
        # run them side by side, so a small batch pays the fixed cost of one job, not five.
        transactions = X.transaction_rows(txn, late_before)
        tasks: dict[str, Callable[[], object]] = {}
        if n_txn:
            tasks[C.OUT_TRANSACTIONS] = lambda: transactions.write.partitionBy("year", "month").parquet(
                str(self.publisher.stage_dir(batch_id, C.OUT_TRANSACTIONS))
            )
        if n_taken:
            # Every id that passed the record checks is used up, even if its customer is unknown.
            tasks["_ids"] = (
                lambda: txn.where(F.col("_id_taken"))
                .select("transaction_id")
                .write.parquet(str(self.txids_state.delta_path(batch_id)))
            )
        if n_cust:
            tasks[C.OUT_CUSTOMERS] = lambda: self._write_customers(batch_id, new_versions)
        if n_quar:
            quarantine = X.quarantine_rows(cust, "customer", batch_id).unionByName(
                X.quarantine_rows(txn, "transaction", batch_id)
            )
            tasks[C.OUT_QUARANTINE] = lambda: quarantine.coalesce(1).write.parquet(
                str(self.publisher.stage_dir(batch_id, C.OUT_QUARANTINE))
            )
        tasks["_aggregates"] = lambda: self._aggregates(batch_id, transactions if n_txn else None)
        with ThreadPoolExecutor(max_workers=len(tasks), thread_name_prefix="sp-batch") as pool:
            futures = {name: pool.submit(fn) for name, fn in tasks.items()}
            results = {name: f.result() for name, f in futures.items()}
        datasets = [d for d in (C.OUT_TRANSACTIONS, C.OUT_CUSTOMERS, C.OUT_QUARANTINE) if d in tasks]
        aggregates: dict[str, pa.Table] = results["_aggregates"]  # type: ignore[assignment]
        phases.mark("write")

        for r in outcome:
            if r["t"] == "transaction" and r["reason"] is None and r["max_ev"] is not None:
                ev_ms = int(r["max_ev"].replace(tzinfo=timezone.utc).timestamp() * 1000)
                counters.max_event_time_ms = max(counters.max_event_time_ms, ev_ms)
                counters.late += int(r["late"] or 0)
            if r["reason"] is None:
                counters.add(
                    counters.written,
                    C.OUT_TRANSACTIONS if r["t"] == "transaction" else C.OUT_CUSTOMERS,
                    r["count"],
                )
            else:
                counters.add(counters.quarantined, r["reason"], r["count"])
        counters.written[C.OUT_QUARANTINE] = sum(counters.quarantined.values())

        snap = self.snapshots.write(batch_id, aggregates, {"counters.json": counters.__dict__})
        self.publisher.publish(batch_id, datasets)
        for name in aggregates:
            target = self.sink / C.OUT_AGGREGATES / name.removesuffix(".parquet") / "part-00000.parquet"
            replace_file(snap / name, target)
        phases.mark("publish")

    def _write_customers(self, batch_id: int, new_versions: DataFrame) -> None:
        staged = self.publisher.stage_dir(batch_id, C.OUT_CUSTOMERS)
        new_versions.write.parquet(str(staged))
        # The state delta is the same rows: copy the files instead of a second Spark job.
        shutil.copytree(staged, self.customers_state.delta_path(batch_id))

    def _count_input(self, outcome: list[Row], counters: Counters) -> None:
        counters.batches += 1
        for r in outcome:
            counters.add(counters.input, r["topic"], r["count"])
            parts = counters.offsets.setdefault(r["topic"], {})
            key = str(r["partition"])
            parts[key] = max(parts.get(key, 0), int(r["max_offset"]) + 1)
            if r["max_ts"] is not None:
                ts_ms = int(r["max_ts"].replace(tzinfo=timezone.utc).timestamp() * 1000)
                counters.max_kafka_timestamp_ms = max(counters.max_kafka_timestamp_ms, ts_ms)

    def _aggregates(self, batch_id: int, transactions: DataFrame | None) -> dict[str, pa.Table]:
        """New totals = previous snapshot + this batch's deltas (exact integer cents)."""
        deltas = transactions and X.aggregate_deltas(transactions).toPandas()
        tables: dict[str, pa.Table] = {}
        for name, keys in C.AGGREGATES.items():
            fname = f"{name}.parquet"
            prev = self.snapshots.read_table(batch_id, fname)
            frames = []
            if prev is not None:
                frames.append(prev.select([*keys, "transaction_count", "total_cents"]).to_pandas())
            if deltas is not None and len(deltas):
                frames.append(deltas[deltas["agg"] == name][[*keys, "transaction_count", "total_cents"]])
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


def read_progress(sink_path: str | Path) -> dict | None:
    """The last finished batch's figures, for progress displays (None before the first)."""
    path = Path(sink_path) / C.CHECKPOINTS_DIR / "processor" / "progress.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


__all__ = ["BatchProcessor", "pq", "read_progress"]
