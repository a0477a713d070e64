"""Command line: ``python -m spjobs.generator --config job.json`` (the container's entry point).

Logs are JSON lines on stderr so the cluster's log tooling can parse them; the final
tally is one JSON object on stdout (and optionally a file) for scripts and tests.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from spjobs.generator.config import GeneratorConfig, parse_duration
from spjobs.generator.model import Tally
from spjobs.generator.producer import run

log = logging.getLogger("spjobs.generator")
PROGRESS_LOG_SECONDS = 5.0


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, msg, plus ``extra={"fields": {...}}``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m spjobs.generator", description=__doc__)
    p.add_argument("--config", type=Path, help="JSON job config written by the operator")
    p.add_argument("--bootstrap-servers", help="overrides kafka.bootstrapServers")
    p.add_argument("--records", type=int, help="events to send (valid transactions + invalid records)")
    p.add_argument("--duration", help="stop after this long, e.g. 30s, 5m")
    p.add_argument("--rate", type=float, help="events per second for this process (0 = unthrottled)")
    p.add_argument("--workers", type=int, help="producer processes")
    p.add_argument("--instance", help="distinct per replica, e.g. the pod ordinal")
    p.add_argument("--tally-json", type=Path, help="also write the final tally to this file")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def load_config(args: argparse.Namespace) -> GeneratorConfig:
    """The job config file (if any) with command-line overrides applied."""
    doc = json.loads(args.config.read_text()) if args.config else {}
    return GeneratorConfig.from_job_config(
        doc,
        bootstrap_servers=args.bootstrap_servers,
        records=args.records,
        duration_seconds=None if args.duration is None else parse_duration(args.duration),
        rate_per_second=args.rate,
        workers=args.workers,
        instance=args.instance,
    )


def main(argv: list[str] | None = None) -> int:
    """Run until the bound or a signal; 0 on a clean end (signals included), 1 on errors."""
    args = _parse_args(argv)
    _setup_logging(args.log_level)
    try:
        cfg = load_config(args)
    except (OSError, ValueError, TypeError) as exc:
        log.error("bad configuration", extra={"fields": {"error": str(exc)}})
        return 2
    log.info("starting", extra={"fields": {"config": cfg.__dict__}})

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        # Only this handler touches ``stop`` from the main thread, which holds no lock of
        # it; the generator runs on another thread so the handler can never deadlock it.
        log.info("stopping", extra={"fields": {"signal": signal.Signals(signum).name}})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    started = time.monotonic()
    last_log = [started]

    def progress(t: Tally) -> None:
        now = time.monotonic()
        if now - last_log[0] >= PROGRESS_LOG_SECONDS:
            last_log[0] = now
            rate = t.events / (now - started) if now > started else 0.0
            log.info("progress", extra={"fields": {**t.as_dict(), "events_per_second": round(rate, 1)}})

    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["tally"] = run(cfg, stop, progress)
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=work, name="generator")
    worker.start()
    while worker.is_alive():
        worker.join(0.2)
    if "error" in outcome:
        exc = outcome["error"]
        log.error("generator failed", exc_info=(type(exc), exc, exc.__traceback__))
        return 1
    tally: Tally = outcome["tally"]
    elapsed = time.monotonic() - started
    result = {**tally.as_dict(), "elapsed_seconds": round(elapsed, 3)}
    log.info("finished", extra={"fields": result})
    text = json.dumps(result)
    print(text, flush=True)
    if args.tally_json:
        args.tally_json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
