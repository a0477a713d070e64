"""Send the model's stream to Kafka: acknowledged-only tallies, barriers, rate, bounds.

Delivery guarantees come from librdkafka (acks=all, idempotence, long message timeout:
a broker restart delays records but neither loses nor duplicates them).  Ordering
guarantees that span topics come from the model's ``FLUSH`` barriers, which this
module honours by waiting until everything produced so far is acknowledged.
"""

from __future__ import annotations

import logging
import logging.handlers
import multiprocessing as mp
import os
import queue as queue_mod
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any, Protocol

from spjobs.generator.config import GeneratorConfig
from spjobs.generator.model import EVENT_KINDS, FLUSH, KIND_TRANSACTION, Record, RecordModel, Tally

log = logging.getLogger("spjobs.generator")

PROGRESS_INTERVAL_SECONDS = 0.5
SHUTDOWN_FLUSH_SECONDS = 20.0  # on stop: how long to wait for in-flight records
_HOUSEKEEPING_EVERY = 256  # records between checks of stop/deadline/errors/progress
_MAX_BACKLOG_SECONDS = 1.0  # after a stall, catch up at most this much time in a burst
_SLEEP_SLICE_SECONDS = 0.01  # never sleep for less: bursts of ~10 ms worth of records
_ANY_PARTITION = -1  # librdkafka's RD_KAFKA_PARTITION_UA: the configured partitioner chooses


class GeneratorError(RuntimeError):
    """A record could not be delivered (after librdkafka's own retries) or Kafka failed fatally."""


class ProducerLike(Protocol):
    """The part of ``confluent_kafka.Producer`` used here (tests pass a fake).

    ``produce`` is called with positional arguments only (keyword parsing costs a
    third of the call in confluent-kafka): topic, value, key, partition, on_delivery.
    """

    def produce(
        self, topic: str, value: bytes, key: bytes, partition: int, on_delivery: Callable[..., None], /
    ) -> None: ...
    def poll(self, timeout: float) -> int: ...
    def flush(self, timeout: float) -> int: ...
    def __len__(self) -> int: ...


ProducerFactory = Callable[[dict[str, Any]], ProducerLike]
ProgressFn = Callable[[Tally], None]


def producer_config(cfg: GeneratorConfig) -> dict[str, Any]:
    """librdkafka settings: no loss, no duplicates, per-key order, big lz4 batches."""
    return {
        "bootstrap.servers": cfg.bootstrap_servers,
        "client.id": f"streampipeline-generator-{cfg.instance}",
        "acks": "all",
        "enable.idempotence": True,
        "message.timeout.ms": 300_000,  # ride out a broker restart instead of failing
        "linger.ms": cfg.linger_ms,
        "batch.size": cfg.batch_size,
        "compression.type": cfg.compression,
        "queue.buffering.max.messages": 2_000_000,
        "partitioner": "murmur2_random",  # same key -> partition mapping as Java clients
    }


class RepeatFilter(logging.Filter):
    """Drop a message seen (digits aside) less than ``interval`` seconds ago.

    While a broker is down librdkafka reports every reconnect attempt, several a second.
    """

    def __init__(self, interval: float = 30.0) -> None:
        super().__init__()
        self.interval = interval
        self.last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        text = f"{record.name}:{record.getMessage()}:{getattr(record, 'fields', '')}"
        key = re.sub(r"\d+", "#", text)
        now = time.monotonic()
        if now - self.last.get(key, -self.interval) < self.interval:
            return False
        if len(self.last) > 1000:
            self.last.clear()
        self.last[key] = now
        return True


class RetryingIsInfo(logging.Filter):
    """librdkafka's warnings that end in "retrying" are conditions it handles itself (a
    just-started broker still loading its coordinator, say): info, not warnings.  One that
    outlasts the retries still surfaces, as a delivery error."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and record.getMessage().rstrip().endswith("retrying"):
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True


_rdkafka_log = logging.getLogger("spjobs.generator.librdkafka")
_rdkafka_log.addFilter(RetryingIsInfo())
_rdkafka_log.addFilter(RepeatFilter())
_client_log = logging.getLogger("spjobs.generator.client")
_client_log.addFilter(RepeatFilter())


def _kafka_producer(conf: dict[str, Any]) -> ProducerLike:
    from confluent_kafka import Producer  # imported late: model tests need no librdkafka

    return Producer({**conf, "logger": _rdkafka_log})


class _Sender:
    """One producer's state for one run: the tally, the first error, the clocks."""

    def __init__(
        self,
        cfg: GeneratorConfig,
        stop: threading.Event,
        progress: ProgressFn | None,
        factory: ProducerFactory,
    ) -> None:
        self.cfg = cfg
        self.stop = stop
        self.progress = progress
        self.tally = Tally(injected=[] if cfg.track_injected else None)
        self.error: str | None = None
        conf = producer_config(cfg)
        conf["error_cb"] = self._on_error
        self.producer = factory(conf)
        self.start_clock()
        self._callbacks: dict[tuple[str, bool], Callable[..., None]] = {}

    def start_clock(self) -> None:
        """Start ``duration`` and the progress reports from now."""
        self.deadline = (
            None if self.cfg.duration_seconds is None else time.monotonic() + self.cfg.duration_seconds
        )
        self.next_progress = time.monotonic() + PROGRESS_INTERVAL_SECONDS

    # --- callbacks (run inside poll/flush, on this thread) ---------------------------

    def _on_error(self, err: Any) -> None:
        if err.fatal():
            self.error = self.error or f"fatal Kafka error: {err}"
        else:
            _client_log.warning("kafka client error (retrying)", extra={"fields": {"error": str(err)}})

    def _failed(self, err: Any, msg: Any) -> None:
        self.error = self.error or f"delivery to {msg.topic()} failed: {err}"

    def ack_transaction(self, err: Any, msg: Any) -> None:
        """Delivery callback of every valid transaction (nearly all records): one short frame."""
        if err is None:
            self.tally.transactions += 1
        else:
            self._failed(err, msg)

    def _delivered(self, kind: str, to_customers: bool, err: Any, msg: Any) -> None:
        if err is not None:
            self._failed(err, msg)
        else:
            self.tally.add(kind, to_customers)

    def _delivered_tracked(self, rec: Record, err: Any, msg: Any) -> None:
        if err is not None:
            self._failed(err, msg)
        else:
            self.tally.count(rec, self.cfg.customers_topic)

    def callback(self, rec: Record) -> Callable[..., None]:
        """A shared callback per (kind, topic) so the hot path allocates nothing."""
        if rec.kind == KIND_TRANSACTION:
            return self.ack_transaction
        if self.tally.injected is not None:
            return partial(self._delivered_tracked, rec)
        slot = (rec.kind, rec.topic == self.cfg.customers_topic)
        cb = self._callbacks.get(slot)
        if cb is None:
            cb = self._callbacks[slot] = partial(self._delivered, *slot)
        return cb

    # --- control -----------------------------------------------------------------------

    def housekeeping(self) -> bool:
        """Serve callbacks, raise on errors, report progress; True when the run must end."""
        self.producer.poll(0)
        self.raise_on_error()
        now = time.monotonic()
        if self.progress is not None and now >= self.next_progress:
            self.next_progress = now + PROGRESS_INTERVAL_SECONDS
            self.progress(self.tally.snapshot())
        return self.stop.is_set() or (self.deadline is not None and now >= self.deadline)

    def raise_on_error(self) -> None:
        if self.error is not None:
            raise GeneratorError(self.error)

    def produce(self, rec: Record) -> None:
        cb = self.callback(rec)
        while True:
            try:
                self.producer.produce(rec.topic, rec.value, rec.key, _ANY_PARTITION, cb)
                return
            except BufferError:  # local queue full: let deliveries drain it
                self.producer.poll(0.05)
                self.raise_on_error()

    def barrier(self) -> bool:
        """Wait until all produced records are acknowledged; False if the run must end."""
        while len(self.producer) > 0:
            self.producer.flush(0.5)
            if self.housekeeping():
                return False
        return not self.housekeeping()

    def finish(self) -> Tally:
        """Final flush: unbounded after a normal end, bounded once a stop is requested."""
        stopped_at: float | None = None
        while len(self.producer) > 0:
            if self.stop.is_set():
                stopped_at = stopped_at or time.monotonic()
                if time.monotonic() - stopped_at >= SHUTDOWN_FLUSH_SECONDS:
                    break
            self.producer.flush(0.5)
            self.raise_on_error()
        self.producer.poll(0)
        self.raise_on_error()
        self.tally.unacknowledged = len(self.producer)
        if self.tally.unacknowledged:
            log.warning(
                "stopped with unacknowledged records",
                extra={"fields": {"unacknowledged": self.tally.unacknowledged}},
            )
        return self.tally


def run(
    cfg: GeneratorConfig,
    stop: threading.Event | None = None,
    progress: ProgressFn | None = None,
    clock: Callable[[], float] = time.time,
    *,
    producer_factory: ProducerFactory | None = None,
) -> Tally:
    """Produce customers, then events until ``records``/``duration``/``stop``; return the tally.

    The tally counts acknowledged records only.  ``clock`` stamps the records (the
    pacing uses the monotonic clock); with ``workers > 1`` it must be picklable.
    """
    stop = stop or threading.Event()
    if cfg.workers > 1:
        return _run_workers(cfg, stop, progress, clock, producer_factory)
    # The producer first: it connects (and gets its idempotent producer id) in librdkafka's
    # threads while the model builds its pools.  ``duration`` excludes that setup.
    sender = _Sender(cfg, stop, progress, producer_factory or _kafka_producer)
    model = RecordModel(cfg, clock)
    sender.start_clock()
    limit = sys.maxsize if cfg.records is None else cfg.records
    pacer = _Pacer(cfg.rate_per_second) if cfg.rate_per_second else None
    # The hot loop: valid transactions (nearly every record) take the inlined path with
    # the sender's one shared callback; everything else goes through ``callback()``.
    produce, ack_transaction, callback = sender.producer.produce, sender.ack_transaction, sender.callback
    transaction, event_kinds, flush, any_partition = KIND_TRANSACTION, EVENT_KINDS, FLUSH, _ANY_PARTITION
    events = 0
    since_check = 0
    for item in model.stream():
        if item is flush:
            if not sender.barrier():
                break
            continue
        topic, key, value, kind, _ = item
        if kind in event_kinds:
            if events >= limit:
                break
            if pacer is not None and pacer.wait(sender):
                break
            events += 1
        try:
            produce(
                topic, value, key, any_partition, ack_transaction if kind is transaction else callback(item)
            )
        except BufferError:  # local queue full: the slow path waits for deliveries
            sender.produce(item)
        since_check += 1
        if since_check >= _HOUSEKEEPING_EVERY:
            since_check = 0
            if sender.housekeeping():
                break
    return sender.finish()


class _Pacer:
    """Token bucket over events: sleeps in slices of >= 10 ms, never once per record.

    Records go out in bursts of ~10 ms worth, so the long-run rate is exact while
    sleeps stay rare at high rates; after a stall (e.g. a broker restart) at most
    ``_MAX_BACKLOG_SECONDS`` of missed events are caught up at full speed.
    """

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.due: float | None = None  # when the next event may go

    def wait(self, sender: _Sender) -> bool:
        """Block until the next event may be sent; True if the run must end instead."""
        now = time.monotonic()
        due = now if self.due is None else max(self.due, now - _MAX_BACKLOG_SECONDS)
        while due - now > _SLEEP_SLICE_SECONDS:
            if sender.housekeeping():
                return True
            sender.stop.wait(min(due - now, 0.1))
            now = time.monotonic()
        self.due = due + self.interval
        return False


# --- several processes ------------------------------------------------------------------


def _split(total: int, parts: int, k: int) -> int:
    return total // parts + (1 if k < total % parts else 0)


def worker_configs(cfg: GeneratorConfig) -> list[GeneratorConfig]:
    """Per-worker configs: own instance (so own ids), a share of customers/records/rate."""
    n = cfg.workers
    return [
        replace(
            cfg,
            instance=f"{cfg.instance}.{k}",
            workers=1,
            customers=_split(cfg.customers, n, k),
            records=None if cfg.records is None else _split(cfg.records, n, k),
            rate_per_second=cfg.rate_per_second / n,
        )
        for k in range(n)
    ]


def _worker_main(
    cfg: GeneratorConfig,
    clock: Callable[[], float],
    k: int,
    shared_stop: Any,
    results: Any,
    logs: Any,
    log_level: int,
    factory: ProducerFactory | None,
) -> None:
    """Child process: run one worker; the parent alone handles signals and says when to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    root = logging.getLogger()  # log through the parent's handlers (one format, one stream)
    root.handlers[:] = [logging.handlers.QueueHandler(logs)]
    root.setLevel(log_level)
    parent = os.getppid()
    stop = threading.Event()

    def relay() -> None:  # shared_stop is cross-process; the hot loop wants a cheap Event
        while not stop.is_set():
            if shared_stop.wait(0.2) or os.getppid() != parent:
                stop.set()

    threading.Thread(target=relay, daemon=True).start()
    try:
        tally = run(cfg, stop, lambda t: results.put(("progress", k, t)), clock, producer_factory=factory)
        results.put(("done", k, tally))
    except BaseException as exc:  # report, never hang the parent
        results.put(("error", k, f"{type(exc).__name__}: {exc}"))
    finally:
        stop.set()


def _run_workers(
    cfg: GeneratorConfig,
    stop: threading.Event,
    progress: ProgressFn | None,
    clock: Callable[[], float],
    factory: ProducerFactory | None,
) -> Tally:
    ctx = mp.get_context("spawn")  # no fork of a process that may hold librdkafka threads
    shared_stop = ctx.Event()
    results = ctx.Queue()
    logs = ctx.Queue()
    relay = threading.Thread(target=_relay_logs, args=(logs,), name="worker-logs", daemon=True)
    relay.start()
    level = logging.getLogger().getEffectiveLevel()
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(wcfg, clock, k, shared_stop, results, logs, level, factory),
            name=f"generator-{wcfg.instance}",
            daemon=True,
        )
        for k, wcfg in enumerate(worker_configs(cfg))
    ]
    for p in procs:
        p.start()
    latest: dict[int, Tally] = {}
    final: dict[int, Tally] = {}
    errors: list[str] = []
    ended: set[int] = set()  # workers that reported done or an error
    next_progress = time.monotonic() + PROGRESS_INTERVAL_SECONDS
    while len(ended) < len(procs):
        if stop.is_set():
            shared_stop.set()
        try:
            kind, k, payload = results.get(timeout=0.2)
        except queue_mod.Empty:
            dead = [k for k, p in enumerate(procs) if p.exitcode is not None and k not in ended]
            if dead:
                time.sleep(0.5)  # its last message may still be in the pipe
                if results.empty():
                    errors += [f"worker {k} exited with code {procs[k].exitcode}" for k in dead]
                    ended.update(dead)
                    shared_stop.set()
            continue
        if kind == "progress":
            latest[k] = payload
        elif kind == "done":
            final[k] = latest[k] = payload
            ended.add(k)
        else:
            errors.append(f"worker {k}: {payload}")
            ended.add(k)
            shared_stop.set()
        if progress is not None and time.monotonic() >= next_progress:
            next_progress = time.monotonic() + PROGRESS_INTERVAL_SECONDS
            progress(_sum(latest.values()))
    for p in procs:
        p.join(timeout=10)
    logs.put(None)
    relay.join(timeout=5)
    if errors:
        raise GeneratorError("; ".join(errors))
    return _sum(final[k] for k in sorted(final))


def _relay_logs(logs: Any) -> None:
    """Hand the workers' log records to this process's loggers until ``None`` arrives."""
    while (record := logs.get()) is not None:
        logging.getLogger(record.name).handle(record)


def _sum(tallies: Any) -> Tally:
    total = Tally()
    for t in tallies:
        total = total.merge(t)
    return total
