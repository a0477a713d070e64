"""Build the Spark session and the streaming query; run until stopped.

The query reads the two topics as two Kafka sources, transactions first: Spark asks
sources for their latest offsets in plan order, so every transaction in a batch was
appended before the customers offsets were fetched, and the generator acknowledges a
customer before referencing it.  Hence a batch always holds (or follows) every customer
version its transactions need, and "unknown customer" never means "not arrived yet".
Only the transactions source is rate-limited (``maxOffsetsPerTrigger``) for that reason.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery, StreamingQueryListener

from .batch import SOURCE_OFFSETS, BatchProcessor
from .config import JVM_OPTIONS, ProcessorConfig
from .state import atomic_write_text
from .transforms import BatchChecker

log = logging.getLogger("spjobs.processor")


def session_conf(
    master: str | None = None, jars: Sequence[str] = (), extra_conf: dict[str, str] | None = None
) -> dict[str, str]:
    """The Spark settings the job sets itself (tests/unit/test_spark_conf.py checks every key)."""
    conf = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": os.environ.get("SP_SHUFFLE_PARTITIONS", "4"),
        "spark.sql.adaptive.enabled": os.environ.get("SP_AQE", "true"),
        "spark.sql.parquet.compression.codec": "zstd",
        "spark.sql.sources.partitionOverwriteMode": "static",
        "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "true",
    }
    if master:  # this process starts the JVM (on Kubernetes the SparkApplication sets them)
        conf["spark.driver.extraJavaOptions"] = JVM_OPTIONS
        conf["spark.executor.extraJavaOptions"] = JVM_OPTIONS
    if jars:
        conf["spark.jars"] = ",".join(jars)
    conf.update(extra_conf or {})
    return conf


def build_session(
    app_name: str = "streampipeline-processor",
    master: str | None = None,
    jars: Sequence[str] = (),
    extra_conf: dict[str, str] | None = None,
) -> SparkSession:
    """A session for the job; ``master``/``jars`` are for local runs (spark-submit sets them on k8s)."""
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
        # The checks run in Python workers (mapInArrow): this interpreter, with its packages,
        # not whatever "python3" is first on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for k, v in session_conf(master, jars, extra_conf).items():
        builder = builder.config(k, v)
    return builder.getOrCreate()


# Each micro-batch reads its partitions up to the log end, so the Kafka client's prefetch
# then waits at the broker for data that is not there yet, for fetch.max.wait.ms (500 ms
# by default), and the next batch's first fetch of that partition waits behind it.  A
# short wait keeps a caught-up stream's batches short (measured: about 0.5 s less on the
# last batch of a backlog).  cfg.kafka_options can still override it.
CONSUMER_OPTIONS = {"kafka.fetch.max.wait.ms": "50"}


def _kafka_source(
    spark: SparkSession, cfg: ProcessorConfig, topic: str, *, limit: int | None, fail_on_data_loss: bool
) -> DataFrame:
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", cfg.bootstrap_servers)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", str(fail_on_data_loss).lower())
    )
    if limit:
        reader = reader.option("maxOffsetsPerTrigger", str(limit))
        # The checks run in Python, a core per task: with 3 Kafka partitions on 2 cores the
        # third would run alone.  Twice as many tasks as cores keep every core busy.
        reader = reader.option("minPartitions", str(2 * spark.sparkContext.defaultParallelism))
    for k, v in {**CONSUMER_OPTIONS, **cfg.kafka_options}.items():
        reader = reader.option(k, v)
    return reader.load().select(
        "topic",
        "partition",
        "offset",
        F.col("timestamp").alias("kafka_timestamp"),
        "key",  # bytes as received: the checks decode them, quarantine keeps them
        "value",
    )


class ProgressLogger(StreamingQueryListener):
    """Spark's own per-trigger timings as structured log lines (where a slow batch goes),
    and, with ``offsets_file``, the offsets up to which Spark has read each source."""

    def __init__(self, offsets_file: Path | None = None) -> None:
        super().__init__()
        self.offsets_file = offsets_file

    def onQueryStarted(self, event) -> None:  # type: ignore[no-untyped-def]
        pass

    def onQueryProgress(self, event) -> None:  # type: ignore[no-untyped-def]
        p = event.progress
        if self.offsets_file is not None:
            try:
                self._write_offsets(p.sources)
            except Exception as exc:  # a progress display must never stop the job
                log.warning(json.dumps({"event": "source_offsets_not_written", "error": str(exc)}))
        log.info(
            json.dumps(
                {
                    "event": "trigger",
                    "batch_id": p.batchId,
                    "input_rows": p.numInputRows,
                    "rows_per_second": round(p.processedRowsPerSecond or 0.0, 1),
                    "duration_ms": dict(p.durationMs),
                }
            )
        )

    def _write_offsets(self, sources) -> None:  # type: ignore[no-untyped-def]
        """Kafka's next offset per partition that Spark has read up to (transaction
        markers and compacted gaps included, which the job's record counts cannot see):
        what ``streampipeline run`` compares with the topics' end offsets."""
        assert self.offsets_file is not None
        doc: dict[str, dict[str, int]] = {}
        for source in sources:
            end = source.endOffset
            end = json.loads(end) if isinstance(end, str) else end
            for topic, parts in (end or {}).items():
                doc.setdefault(topic, {}).update({str(k): int(v) for k, v in parts.items()})
        if doc:
            atomic_write_text(self.offsets_file, json.dumps(doc, sort_keys=True))

    def onQueryIdle(self, event) -> None:  # type: ignore[no-untyped-def]
        pass

    def onQueryTerminated(self, event) -> None:  # type: ignore[no-untyped-def]
        pass


def start_query(
    spark: SparkSession, cfg: ProcessorConfig, processor: BatchProcessor | None = None
) -> StreamingQuery:
    """Start the query; pass the previous ``processor`` when restarting in this process, so
    its in-memory history carries over (it checks that it is still valid)."""
    txns = _kafka_source(
        spark, cfg, cfg.transactions_topic, limit=cfg.max_offsets_per_trigger, fail_on_data_loss=True
    )
    # Compaction removes superseded customer versions on purpose: not a loss.
    customers = _kafka_source(spark, cfg, cfg.customers_topic, limit=None, fail_on_data_loss=False)
    # Checking is part of the streaming plan: built through Py4J once per query, where
    # building it on each batch's DataFrame cost 0.1-0.2 s of every batch.
    checked = BatchChecker(cfg.customers_topic, cfg.transactions_topic)(txns.unionByName(customers))
    writer = (
        checked.writeStream.queryName("streampipeline")
        .foreachBatch(processor or BatchProcessor(cfg))
        .option("checkpointLocation", str(cfg.checkpoint_root / "spark"))
    )
    if cfg.available_now:
        return writer.trigger(availableNow=True).start()
    return writer.trigger(processingTime=f"{int(cfg.trigger_seconds * 1000)} milliseconds").start()


# Spark 4.1.1's Kafka source throws this from its progress metrics after the first batch of
# a restarted query that re-runs an uncommitted batch (SPARK-57438, fixed in 4.1.3).  The
# batch is committed by then, so starting the query again simply carries on.
_SPARK_57438 = 'because the return value of "scala.Option.get()" is null'


def _is_spark_57438(exc: BaseException) -> bool:
    return _SPARK_57438 in str(exc)


def _busy(status: dict) -> bool:
    """A trigger is running, or the query has not finished starting."""
    return bool(status.get("isTriggerActive")) or str(status.get("message", "")).startswith("Initializing")


def run(cfg: ProcessorConfig, spark: SparkSession, max_restarts: int = 5) -> None:
    """Run until SIGTERM/SIGINT; stop between batches so nothing is half-done."""
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info(json.dumps({"event": "stopping", "signal": signum}))
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _on_signal)
    spark.streams.addListener(ProgressLogger(cfg.checkpoint_root / SOURCE_OFFSETS))
    restarts = 0
    processor = BatchProcessor(cfg)
    while True:
        query = start_query(spark, cfg, processor)
        log.info(json.dumps({"event": "started", "query_id": str(query.id), "sink": cfg.sink_path}))
        while not stop.is_set() and query.isActive:
            stop.wait(0.5)
        if query.isActive:
            # Between batches only: not while a trigger runs, nor while the query is still
            # initializing its sources (a stop then interrupts it and the query ends with an
            # error instead of cleanly; seen when SIGTERM came soon after start).
            while query.isActive and _busy(query.status):
                time.sleep(0.1)
            query.stop()
        exc = query.exception()
        if exc is None:
            break
        if _is_spark_57438(exc) and restarts < max_restarts and not stop.is_set():
            restarts += 1
            log.warning(
                json.dumps({"event": "restarting_query", "reason": "SPARK-57438", "restarts": restarts})
            )
            continue
        raise RuntimeError(f"streaming query failed: {exc}")
    log.info(json.dumps({"event": "stopped"}))
