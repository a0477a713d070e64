"""BatchProcessor end to end on static batches in a real local Spark session: the
deduplication window is measured from the latest Kafka time seen, and a restarted
processor (index rebuilt from the state deltas) judges ids exactly as the running one."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow.dataset as ds
from test_transforms import RAW_SCHEMA, cust, txn

from spjobs import contract as C
from spjobs.processor import transforms as X
from spjobs.processor.batch import BatchProcessor, read_progress
from spjobs.processor.config import ProcessorConfig

T8 = datetime(2026, 11, 26, 8, 0, 0)


def run_batch(spark, processor, batch_id, records):
    """records: (topic, kafka time, payload); offsets continue across batches."""
    rows = [(topic, 0, batch_id * 100 + i, ts, None, v.encode()) for i, (topic, ts, v) in enumerate(records)]
    raw = spark.createDataFrame(rows, RAW_SCHEMA)
    processor(X.checked_batch(raw, "customers", "transactions"), batch_id)


def outcome(sink):
    """transaction id -> list of what happened to each of its records, in batch order."""
    got: dict[str, list[str]] = {}
    txns = ds.dataset(sink / C.OUT_TRANSACTIONS, format="parquet", partitioning="hive").to_table()
    for t, off in zip(txns["transaction_id"].to_pylist(), txns["kafka_offset"].to_pylist()):
        got.setdefault(t, []).append((off, "ok"))
    q = ds.dataset(sink / C.OUT_QUARANTINE, format="parquet").to_table()
    for t, off, r in zip(q["transaction_id"].to_pylist(), q["offset"].to_pylist(), q["reason"].to_pylist()):
        got.setdefault(t, []).append((off, r))
    return {t: [r for _, r in sorted(v)] for t, v in got.items()}


def test_ids_are_forgotten_after_the_window_and_a_restart_agrees(spark, tmp_path):
    cfg = ProcessorConfig(
        bootstrap_servers="unused:9092", sink_path=str(tmp_path), dedup_window_seconds=3600, compact_every=2
    )
    p = BatchProcessor(cfg)
    at = lambda minutes: T8 + timedelta(minutes=minutes)  # noqa: E731
    moved = cust(state="SP", updated_at="2026-11-26T08:05:00.000Z")
    run_batch(
        spark,
        p,
        0,
        [("customers", at(0), cust()), ("customers", at(5), moved), ("transactions", at(0), txn("T1"))],
    )
    run_batch(spark, p, 1, [("transactions", at(30), txn("T1")), ("transactions", at(120), txn("T2"))])
    # The latest Kafka time is now 10:00, so 08:00's T1 is out of the hour: accepted again.
    run_batch(spark, p, 2, [("transactions", at(125), txn("T1"))])
    assert read_progress(tmp_path)["remembered_ids"] == 2  # T2 and the new T1
    assert p.snapshots.read_json(3, "counters.json", {})["remembered_ids"] == 2  # carried as state too
    # Batch 2 compacted batches 0-1 on disk, dropping the forgotten 08:00 T1.
    kept = [t for part in p.txids_state.read_before(2) for t in part["transaction_id"].to_pylist()]
    assert kept == ["T2"]
    # ... and the 08:00 customer version, superseded at 08:05 (before the cut-off, 09:00).
    versions = [r for part in p.customers_state.read_before(2) for r in part.to_pylist()]
    assert [(v["customer_id"], v["state"]) for v in versions] == [("C1", "SP")]
    # A new processor rebuilds its index from disk: T1 (10:05) is remembered, T2 too.
    restarted = BatchProcessor(cfg)
    run_batch(
        spark, restarted, 3, [("transactions", at(130), txn("T1")), ("transactions", at(131), txn("T2"))]
    )
    dup = C.REASON_DUPLICATE_TRANSACTION_ID
    assert outcome(tmp_path) == {"T1": ["ok", dup, "ok", dup], "T2": ["ok", dup]}
    txns = ds.dataset(tmp_path / C.OUT_TRANSACTIONS, format="parquet", partitioning="hive").to_table()
    states = dict(zip(txns["kafka_offset"].to_pylist(), txns["state"].to_pylist()))
    assert states == {2: "PE", 101: "SP", 200: "SP"}  # as of arrival: 08:00 PE, later SP


def test_a_kafka_timestamp_far_ahead_does_not_empty_the_window(spark, tmp_path, caplog):
    """One record stamped a day ahead by a skewed producer clock counts as at most
    MAX_CLOCK_SKEW_MS ahead: the hour's ids are still remembered."""
    cfg = ProcessorConfig(bootstrap_servers="unused:9092", sink_path=str(tmp_path), dedup_window_seconds=3600)
    p = BatchProcessor(cfg)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    run_batch(
        spark,
        p,
        0,
        [
            ("customers", now - timedelta(minutes=20), cust()),
            ("transactions", now - timedelta(minutes=10), txn("T1")),
        ],
    )
    run_batch(spark, p, 1, [("transactions", now + timedelta(days=1), txn("T9"))])
    counted = p.snapshots.read_json(2, "counters.json", {})["max_kafka_timestamp_ms"]
    assert counted <= (now + timedelta(days=1)).replace(tzinfo=timezone.utc).timestamp() * 1000 - 3600_000
    assert "kafka_timestamp_ahead" in caplog.text
    run_batch(spark, p, 2, [("transactions", now - timedelta(minutes=5), txn("T1"))])
    assert outcome(tmp_path)["T1"] == ["ok", C.REASON_DUPLICATE_TRANSACTION_ID]


def test_a_record_stamped_in_the_past_is_remembered_a_whole_window(spark, tmp_path):
    """A Kafka time two days old (a topic still on CreateTime) starts the id's window at
    the job's clock, not at its own stamp: the repeat an hour later is a duplicate."""
    cfg = ProcessorConfig(bootstrap_servers="unused:9092", sink_path=str(tmp_path), dedup_window_seconds=3600)
    p = BatchProcessor(cfg)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    old = now - timedelta(days=2)
    run_batch(spark, p, 0, [("customers", old - timedelta(days=1), cust()), ("transactions", now, txn("T1"))])
    run_batch(spark, p, 1, [("transactions", old, txn("T5"))])
    run_batch(spark, p, 2, [("transactions", now + timedelta(seconds=50), txn("T2"))])
    run_batch(spark, p, 3, [("transactions", now + timedelta(seconds=55), txn("T5"))])
    assert outcome(tmp_path)["T5"] == ["ok", C.REASON_DUPLICATE_TRANSACTION_ID]
    restarted = BatchProcessor(cfg)  # the state delta holds the same start: a rebuild agrees
    run_batch(spark, restarted, 4, [("transactions", now + timedelta(seconds=58), txn("T5"))])
    assert outcome(tmp_path)["T5"] == [
        "ok",
        C.REASON_DUPLICATE_TRANSACTION_ID,
        C.REASON_DUPLICATE_TRANSACTION_ID,
    ]


def test_one_event_time_far_ahead_does_not_make_later_transactions_late(spark, tmp_path):
    """The lateness reference counts an event time at most as its record's Kafka time."""
    cfg = ProcessorConfig(bootstrap_servers="unused:9092", sink_path=str(tmp_path), watermark_seconds=30)
    p = BatchProcessor(cfg)
    t = datetime(2026, 11, 26, 10, 0, 0)
    ahead = txn("T1", event_time="2026-11-27T10:00:00.000Z")  # a day ahead of its arrival
    run_batch(spark, p, 0, [("customers", t - timedelta(minutes=1), cust()), ("transactions", t, ahead)])
    on_time = txn("T2", event_time="2026-11-26T09:59:58.000Z")
    late = txn("T3", event_time="2026-11-26T09:58:00.000Z")  # 2 minutes before the reference
    run_batch(spark, p, 1, [("transactions", t + timedelta(seconds=1), on_time), ("transactions", t, late)])
    txns = ds.dataset(tmp_path / C.OUT_TRANSACTIONS, format="parquet", partitioning="hive").to_table()
    flags = dict(zip(txns["transaction_id"].to_pylist(), txns["is_late"].to_pylist()))
    assert flags == {"T1": False, "T2": False, "T3": True}
    reference = read_progress(tmp_path)["max_event_time_ms"]
    assert reference == int(t.replace(tzinfo=timezone.utc).timestamp() * 1000), "T1 counted as its arrival"
