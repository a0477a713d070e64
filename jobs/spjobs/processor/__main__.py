"""``python -m spjobs.processor --config pipeline.json``: the SparkApplication's main file."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from ..kafka_time import CreateTimeTopic, check_topics
from .config import ProcessorConfig
from .job import build_session, run


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname,
            "logger": record.name,
        }
        try:
            doc.update(json.loads(msg))
        except (json.JSONDecodeError, TypeError):
            doc["msg"] = msg
        return json.dumps(doc, default=str)


log = logging.getLogger("spjobs.processor")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="spjobs.processor", description=__doc__)
    p.add_argument("--config", required=True, help="job config JSON written by the operator or the runner")
    p.add_argument("--bootstrap-servers")
    p.add_argument("--sink-path")
    p.add_argument("--master", help="Spark master for local runs, e.g. local[2]")
    p.add_argument("--jars", default="", help="comma-separated local jars (the Kafka connector)")
    p.add_argument("--max-offsets-per-trigger", type=int)
    args = p.parse_args(argv)

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    cfg = ProcessorConfig.from_file(
        args.config,
        bootstrap_servers=args.bootstrap_servers,
        sink_path=args.sink_path,
        max_offsets_per_trigger=args.max_offsets_per_trigger,
    )
    try:  # before Spark starts: a refusal costs a second, not a JVM start-up
        check_topics(cfg.bootstrap_servers, [cfg.customers_topic, cfg.transactions_topic])
    except CreateTimeTopic as exc:
        for line in str(exc).splitlines():
            log.error(json.dumps({"event": "create_time_topic", "error": line}))
        return 2
    except Exception as exc:  # unreachable broker, missing topic: say so, exit; the pod restarts
        hint = "is Kafka reachable and are both topics created (KafkaTopic Ready)?"
        log.error(json.dumps({"event": "topic_check_failed", "error": str(exc), "hint": hint}))
        return 3
    spark = build_session(master=args.master, jars=[j for j in args.jars.split(",") if j])
    spark.sparkContext.setLogLevel("WARN")
    run(cfg, spark)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
