"""``make bench``: speed as ratios against baselines measured in the same run.

* generator records/s (1 process, and 2 worker processes) vs Kafka's own Java producer
  benchmark (``ProducerPerformance`` from the same jars) on the same broker, with the
  same record size, acks, idempotence, batching and compression;
* the Spark job's processed rows/s on a backlog vs a plain Kafka -> Parquet copy query on
  the same data, same session, same batch size; and vs a parse-only copy (the same query
  writing every payload's fields, parsed as the job parses them, instead of the raw text;
  nothing checked);
* end-to-end freshness: Kafka timestamp of a transaction -> its row visible in Parquet.

Figures, not pass/fail: printed as a table and written as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from datetime import timezone
from pathlib import Path
from typing import Any

from spjobs.generator.config import GeneratorConfig
from spjobs.generator.producer import run as run_generator

from .local.jars import SPARK_VERSION, spark_kafka_jars
from .local.kafka import EmbeddedKafka, TopicSpec, ensure_topics, producer_perf_cmd

_PERF_LINE = re.compile(r"(\d+) records sent, ([\d.]+) records/sec")


def _producer_props(cfg: GeneratorConfig) -> dict[str, str]:
    """The Java tool gets the generator's producer settings (see spjobs.generator.producer)."""
    return {
        "acks": "all",
        "enable.idempotence": "true",
        "linger.ms": str(cfg.linger_ms),
        "batch.size": str(min(cfg.batch_size, 1 << 20)),
        "compression.type": cfg.compression,
    }


def _paired_ratios(ours: list[float], baseline: list[float]) -> tuple[float, list[float]]:
    """The median of the per-round ratios ``ours / baseline`` and their range (rounded)."""
    ratios = sorted(o / b for o, b in zip(ours, baseline))
    return round(statistics.median(ratios), 3), [round(ratios[0], 3), round(ratios[-1], 3)]


def bench_generator(kafka: EmbeddedKafka, records: int, rounds: int = 3) -> dict[str, Any]:
    """The generator (1 and 2 processes) against Kafka's ProducerPerformance, in alternating
    rounds on fresh topics; the figures are medians, with the range of the per-round ratios."""
    out: dict[str, Any] = {"records": records, "rounds": rounds}
    rates: dict[str, list[float]] = {"1p": [], "2p": [], "java": []}
    size = 0
    for r in range(rounds):
        for workers in (1, 2):
            topic = f"bench-gen-{workers}-{r}"
            ensure_topics(kafka.bootstrap_servers, [TopicSpec(topic, 3), TopicSpec(topic + "-c", 3)])
            cfg = GeneratorConfig(
                bootstrap_servers=kafka.bootstrap_servers,
                transactions_topic=topic,
                customers_topic=topic + "-c",
                customers=2000,
                records=records,
                workers=workers,
                customer_update_ratio=0.0,
            )
            t0 = time.perf_counter()
            tally = run_generator(cfg)
            rates[f"{workers}p"].append(tally.total / (time.perf_counter() - t0))
        if not size:  # average record size of what the generator sends, for the Java tool
            from spjobs.generator.model import Record, RecordModel

            records_sent = (x for x in RecordModel(cfg).stream() if isinstance(x, Record))
            size = round(statistics.mean(len(rec.value) for rec, _ in zip(records_sent, range(5000))))
        topic = f"bench-java-{r}"
        ensure_topics(kafka.bootstrap_servers, [TopicSpec(topic, 3)])
        proc = subprocess.run(
            producer_perf_cmd(kafka, topic, records, size, _producer_props(cfg)),
            capture_output=True,
            text=True,
            timeout=900,
        )
        matches = _PERF_LINE.findall(proc.stdout)
        if not matches:
            raise RuntimeError(
                f"ProducerPerformance printed no result:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
            )
        rates["java"].append(float(matches[-1][1]))
    out.update(record_bytes=size, java_producer_perf_records_per_s=round(statistics.median(rates["java"])))
    for n in ("1p", "2p"):
        out[f"generator_{n}_records_per_s"] = round(statistics.median(rates[n]))
        out[f"ratio_{n}_vs_java"], out[f"ratio_{n}_range"] = _paired_ratios(rates[n], rates["java"])
    out["per_round_records_per_s"] = {k: [round(v) for v in vs] for k, vs in rates.items()}
    return out


def _fill_topics(kafka: EmbeddedKafka, prefix: str, events: int, customers: int) -> GeneratorConfig:
    ensure_topics(
        kafka.bootstrap_servers, [TopicSpec(f"{prefix}-customers", 3), TopicSpec(f"{prefix}-transactions", 3)]
    )
    cfg = GeneratorConfig(
        bootstrap_servers=kafka.bootstrap_servers,
        customers_topic=f"{prefix}-customers",
        transactions_topic=f"{prefix}-transactions",
        customers=customers,
        records=events,
    )
    run_generator(cfg)
    return cfg


def bench_spark(
    kafka: EmbeddedKafka, events: int, batch: int, workdir: Path, rounds: int = 3
) -> dict[str, Any]:
    """The job against a plain Kafka->Parquet copy of the same backlog, and against that copy
    with every payload parsed, in alternating rounds (on 2 cores one run of any of them
    varies by +-20%; the median of the per-round ratios is the figure, and the range is
    reported with it)."""
    from pyspark.sql import functions as F

    from spjobs.processor.batch import BatchProcessor
    from spjobs.processor.config import ProcessorConfig
    from spjobs.processor.job import CONSUMER_OPTIONS, build_session, start_query
    from spjobs.processor.transforms import parse_payloads

    spark = build_session(
        "streampipeline-bench",
        master="local[2]",
        jars=[str(j) for j in spark_kafka_jars()],
        extra_conf={"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"},
    )
    spark.sparkContext.setLogLevel("ERROR")
    results: dict[str, Any] = {"events": events, "max_offsets_per_trigger": batch, "rounds": rounds}

    def copy_job(prefix: str, out: Path, parse: bool = False) -> float:
        def src(topic: str, limit: int | None):
            r = (
                spark.readStream.format("kafka")
                .option("kafka.bootstrap.servers", kafka.bootstrap_servers)
                .option("subscribe", topic)
                .option("startingOffsets", "earliest")
            )
            if limit:
                r = r.option("maxOffsetsPerTrigger", str(limit))
            for k, v in CONSUMER_OPTIONS.items():  # the same consumer settings as the job
                r = r.option(k, v)
            return r.load().select(
                "topic",
                "partition",
                "offset",
                F.col("timestamp").alias("kafka_timestamp"),
                F.col("key").cast("string"),
                F.col("value").cast("string"),
            )

        t0 = time.perf_counter()
        raw = src(f"{prefix}-transactions", batch).unionByName(src(f"{prefix}-customers", None))
        q = (
            (parse_payloads(raw) if parse else raw)
            .writeStream.format("parquet")
            .option("path", str(out / "data"))
            .option("checkpointLocation", str(out / "chk"))
            .trigger(availableNow=True)
            .start()
        )
        q.awaitTermination()
        return time.perf_counter() - t0

    def our_job(prefix: str, out: Path) -> tuple[float, BatchProcessor]:
        cfg = ProcessorConfig(
            bootstrap_servers=kafka.bootstrap_servers,
            customers_topic=f"{prefix}-customers",
            transactions_topic=f"{prefix}-transactions",
            sink_path=str(out),
            max_offsets_per_trigger=batch,
            available_now=True,
        )
        processor = BatchProcessor(cfg)
        t0 = time.perf_counter()
        start_query(spark, cfg, processor).awaitTermination()
        return time.perf_counter() - t0, processor

    # The same warm-up for both, two full batches each: "sustained" is the steady state,
    # after the JIT has compiled each query's generated code for batches of this size.
    warm = _fill_topics(kafka, "warm", min(events, 2 * batch), 2000)
    total_warm = warm.customers + (warm.records or 0)
    copy_job("warm", workdir / "copy-warm")
    copy_job("warm", workdir / "parsed-warm", parse=True)
    our_job("warm", workdir / "ours-warm")
    data = _fill_topics(kafka, "sparkbench", events, 2000)
    rows = data.customers + events
    copy_times, parsed_times, job_times, phase_totals, batches = [], [], [], {}, 0
    for r in range(rounds):  # each round reads the same backlog from the start
        copy_times.append(copy_job("sparkbench", workdir / f"copy-{r}"))
        parsed_times.append(copy_job("sparkbench", workdir / f"parsed-{r}", parse=True))
        ours_s, processor = our_job("sparkbench", workdir / f"ours-{r}")
        job_times.append(ours_s)
        batches += processor.batches_timed
        for k, v in processor.phase_totals.items():
            phase_totals[k] = phase_totals.get(k, 0.0) + v
    # Times, not rates: a ratio of rates on the same rows is baseline time / our time.
    vs_copy, vs_copy_range = _paired_ratios(copy_times, job_times)
    vs_parsed, vs_parsed_range = _paired_ratios(parsed_times, job_times)
    parsed_vs_copy, parsed_vs_copy_range = _paired_ratios(copy_times, parsed_times)
    copy_s, ours_s = statistics.median(copy_times), statistics.median(job_times)
    results.update(
        rows=rows,
        warmup_rows=total_warm,
        copy_rows_per_s=round(rows / copy_s),
        copy_seconds=[round(t, 2) for t in copy_times],
        parsed_copy_rows_per_s=round(rows / statistics.median(parsed_times)),
        parsed_copy_seconds=[round(t, 2) for t in parsed_times],
        job_rows_per_s=round(rows / ours_s),
        job_seconds=[round(t, 2) for t in job_times],
        ratio_job_vs_copy=vs_copy,
        ratio_range=vs_copy_range,
        ratio_parsed_copy_vs_copy=parsed_vs_copy,
        ratio_parsed_copy_range=parsed_vs_copy_range,
        ratio_job_vs_parsed_copy=vs_parsed,
        ratio_vs_parsed_range=vs_parsed_range,
        job_batches=batches,
        # where a batch's time goes: "spark" is the one Spark job (read, parse, check, to Arrow)
        job_phase_seconds_per_batch={k: round(v / max(1, batches), 3) for k, v in phase_totals.items()},
    )
    spark.stop()
    return results


def bench_freshness(
    kafka: EmbeddedKafka, rate: float, seconds: float, trigger: str, workdir: Path, warmup: float = 10.0
) -> dict[str, Any]:
    """Run the real pipeline (job in its own process) and watch rows appear in Parquet.

    Steady state only: a record counts if it was produced ``warmup`` seconds or more
    after the job finished its first micro-batch (JVM start, first plan and the
    generator's initial customer burst are start-up, not freshness).
    """
    import pyarrow.parquet as pq

    from spjobs.processor.batch import read_progress

    from .local.runner import LocalRun, RunOptions
    from .spec import load_manifest

    manifest = load_manifest(
        Path(__file__).resolve().parents[2] / "k8s" / "examples" / "pipeline.yaml"
    ).to_manifest()
    manifest["metadata"]["name"] = "fresh"
    manifest["spec"]["kafka"]["bootstrapServers"] = kafka.bootstrap_servers
    manifest["spec"]["generator"].update({"ratePerSecond": rate, "maxLateness": "0s"})
    manifest["spec"]["processing"]["trigger"] = trigger
    out = workdir / "fresh"
    run = LocalRun(load_manifest(manifest), RunOptions(output=out, duration=seconds), printer=lambda s: None)
    latencies: list[float] = []
    seen: set[Path] = set()
    stop = threading.Event()

    def watch() -> None:
        nonlocal steady_from
        tx = out / "transactions"
        while not stop.is_set():
            now = time.time()
            if steady_from is None and read_progress(out) is not None:
                steady_from = now + warmup
            for f in tx.rglob("batch-*.parquet") if tx.exists() else []:
                if f not in seen:
                    seen.add(f)
                    try:
                        ts = pq.read_table(f, columns=["kafka_timestamp"]).column(0).to_pylist()
                    except Exception:  # moved away by a re-run: its replacement is seen later
                        continue
                    for t in ts:
                        produced = t.replace(tzinfo=timezone.utc).timestamp()
                        # Freshness is about steady state: skip the job's start-up (JVM, first plan).
                        if steady_from is not None and produced >= steady_from:
                            latencies.append(now - produced)
            stop.wait(0.05)

    steady_from: float | None = None
    watcher = threading.Thread(target=watch, daemon=True)
    try:
        run.prepare()
        assert run.processor is not None
        run.processor.start()
        watcher.start()
        gen = run.start_generator()
        while gen.is_alive():
            run.supervise()
            gen.join(0.5)
        run.take_target()  # generation ended: drain up to the topics' end offsets
        deadline = time.monotonic() + 120
        while not run._all_consumed() and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(1.0)
    finally:
        stop.set()
        run.close()
    latencies.sort()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 10 else [float("nan")] * 99
    from spjobs.processor.config import parse_duration

    return {
        "rate_per_s": rate,
        "seconds": seconds,
        "warmup_s": warmup,
        "trigger": trigger,
        "rows": len(latencies),
        "p50_s": round(q[49], 3),
        "p95_s": round(q[94], 3),
        "max_s": round(latencies[-1], 3) if latencies else None,
        "target_p95_s": parse_duration(trigger) + 2.0,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="streampipeline.bench", description=__doc__.splitlines()[0])
    p.add_argument("--output", default="out/bench.json")
    p.add_argument("--generator-records", type=int, default=300_000)
    p.add_argument("--generator-rounds", type=int, default=3)
    p.add_argument("--spark-events", type=int, default=200_000)
    p.add_argument("--spark-batch", type=int, default=50_000)
    p.add_argument("--spark-rounds", type=int, default=3)
    p.add_argument("--fresh-rate", type=float, default=500)
    p.add_argument("--fresh-seconds", type=float, default=60)
    p.add_argument("--fresh-trigger", default="1s")
    p.add_argument("--only", choices=["generator", "spark", "freshness"], action="append")
    args = p.parse_args(argv)
    only = set(args.only or ["generator", "spark", "freshness"])
    work = Path(tempfile.mkdtemp(prefix="sp-bench-"))
    result: dict[str, Any] = {
        "machine": {
            "cpus": __import__("os").cpu_count(),
            "python": platform.python_version(),
            "spark": SPARK_VERSION,
        },
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        with EmbeddedKafka(workdir=work / "kafka", heap="1g") as kafka:
            if "generator" in only:
                print("generator vs Kafka ProducerPerformance ...", flush=True)
                result["generator"] = bench_generator(kafka, args.generator_records, args.generator_rounds)
            if "spark" in only:
                print("Spark job vs plain Kafka->Parquet copy ...", flush=True)
                result["spark"] = bench_spark(
                    kafka, args.spark_events, args.spark_batch, work, args.spark_rounds
                )
            if "freshness" in only:
                print("end-to-end freshness ...", flush=True)
                result["freshness"] = bench_freshness(
                    kafka, args.fresh_rate, args.fresh_seconds, args.fresh_trigger, work
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(result, format_table(result), Path(args.output))
    return 0


def report(result: dict[str, Any], table: str, out: Path) -> None:
    """Print the table and write the figures as JSON (shared by the benchmarks)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(table)
    print(f"\nwritten to {out}")


def format_table(r: dict[str, Any]) -> str:
    rows = []
    g = r.get("generator")
    if g:
        rows += [
            (
                "generator, 1 process",
                f"{g['generator_1p_records_per_s']:,} rec/s",
                f"{g['ratio_1p_vs_java']:.2f}x Java ProducerPerformance "
                f"({g['java_producer_perf_records_per_s']:,}/s); "
                f"{g['ratio_1p_range'][0]:.2f}-{g['ratio_1p_range'][1]:.2f}x over {g['rounds']} rounds",
                "aim >= 0.5x",
            ),
            (
                "generator, 2 processes",
                f"{g['generator_2p_records_per_s']:,} rec/s",
                f"{g['ratio_2p_vs_java']:.2f}x Java ProducerPerformance; "
                f"{g['ratio_2p_range'][0]:.2f}-{g['ratio_2p_range'][1]:.2f}x",
                "",
            ),
        ]
    s = r.get("spark")
    if s:
        rows.append(
            (
                "Spark job (backlog)",
                f"{s['job_rows_per_s']:,} rows/s",
                f"{s['ratio_job_vs_copy']:.2f}x plain copy ({s['copy_rows_per_s']:,}/s); "
                f"{s['ratio_range'][0]:.2f}-{s['ratio_range'][1]:.2f}x over {s['rounds']} rounds",
                "aim >= 0.7x",
            )
        )
        if "parsed_copy_rows_per_s" in s:
            rows += [
                (
                    "  vs parse-only copy",
                    f"{s['ratio_job_vs_parsed_copy']:.2f}x",
                    f"parse-only copy {s['parsed_copy_rows_per_s']:,}/s; "
                    f"{s['ratio_vs_parsed_range'][0]:.2f}-{s['ratio_vs_parsed_range'][1]:.2f}x",
                    "",
                ),
                (
                    "  parse-only copy",
                    f"{s['ratio_parsed_copy_vs_copy']:.2f}x plain copy",
                    f"{s['ratio_parsed_copy_range'][0]:.2f}-{s['ratio_parsed_copy_range'][1]:.2f}x "
                    "(the same copy writing the payload parsed, as the job parses it)",
                    "",
                ),
            ]
        phases = s.get("job_phase_seconds_per_batch") or {}
        if phases:
            rows.append(
                (
                    "  per batch of the job",
                    ", ".join(f"{k} {v:.2f}s" for k, v in phases.items() if v >= 0.005),
                    f"mean of {s['job_batches']} batches of <= {s['max_offsets_per_trigger']:,}",
                    "",
                )
            )
    f = r.get("freshness")
    if f:
        rows.append(
            (
                "freshness (produce->Parquet)",
                f"p50 {f['p50_s']}s, p95 {f['p95_s']}s",
                f"trigger {f['trigger']}, {f['rate_per_s']:.0f} ev/s, {f['rows']:,} rows",
                f"aim p95 <= {f['target_p95_s']}s",
            )
        )
    width = [max(len(x[i]) for x in rows) for i in range(4)] if rows else [0] * 4
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, width)) for row in rows)


if __name__ == "__main__":
    raise SystemExit(main())
