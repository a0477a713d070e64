"""``streampipeline run``: the same manifest as on Kubernetes, on one machine.

Kafka is the spec's cluster when reachable, else an embedded real broker; the Spark job
runs as a child process (``python -m spjobs.processor``, local master) exactly as in its
image; the generator runs in this process.  A bounded run ends when the job has consumed
every offset up to the topics' end offsets taken when generation ended, then prints and
writes a summary.  Offsets, not the generator's tally: anything else writing into the
topics (a user's producer, a REST service) is consumed too, and nothing is left unread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spjobs import contract as C
from spjobs.generator.config import GeneratorConfig
from spjobs.generator.model import Tally
from spjobs.generator.producer import run as run_generator
from spjobs.processor.batch import read_positions, read_progress

from ..spec import StreamPipeline
from .jars import spark_kafka_jars
from .kafka import EmbeddedKafka, TopicSpec, end_offsets, ensure_topics

log = logging.getLogger(__name__)


class RunError(RuntimeError):
    """A local run cannot go on; the message says what to do."""


@dataclass
class RunOptions:
    output: Path
    records: int | None = None
    duration: float | None = None
    summary_json: Path | None = None
    fresh: bool = False
    master: str = "local[2]"
    workers: int = 1
    max_offsets_per_trigger: int | None = None
    track_injected: bool = False
    drain_timeout: float = 600.0
    api: bool = False  # serve the REST API and dashboard beside the run (the CLI's default)
    api_port: int = 0  # 0: a free loopback port


def kafka_reachable(bootstrap: str, timeout: float = 3.0) -> bool:
    from confluent_kafka.admin import AdminClient

    try:
        AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=timeout)
        return True
    except Exception:
        return False


class Processor:
    """The Spark job as a child process, so it can be stopped, killed and restarted."""

    def __init__(
        self,
        config_file: Path,
        log_file: Path,
        master: str,
        driver_memory: str = "1g",
        max_offsets_per_trigger: int | None = None,
    ) -> None:
        self.config_file = config_file
        self.log_file = log_file
        self.master = master
        self.driver_memory = driver_memory
        self.max_offsets_per_trigger = max_offsets_per_trigger
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        jars = ",".join(str(j) for j in spark_kafka_jars())
        cmd = [
            sys.executable,
            "-m",
            "spjobs.processor",
            "--config",
            str(self.config_file),
            "--master",
            self.master,
            "--jars",
            jars,
        ]
        if self.max_offsets_per_trigger:
            cmd += ["--max-offsets-per-trigger", str(self.max_offsets_per_trigger)]
        env = dict(os.environ, PYSPARK_SUBMIT_ARGS=f"--driver-memory {self.driver_memory} pyspark-shell")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() not in (None, 0):
            raise RunError(
                f"the Spark job exited with code {self.proc.returncode}; its log "
                f"({self.log_file}) ends with:\n{self.tail()}"
            )

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log_file.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join([line for line in text if not line.startswith("\tat ")][-lines:])

    def stop(self, timeout: float = 60.0) -> None:
        """Graceful: the job finishes its current batch, then exits."""
        if not self.alive:
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the whole process group (the JVM included): a crash, for tests."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@dataclass
class Summary:
    pipeline: str
    output: str
    bootstrap_servers: str
    embedded_kafka: bool
    seconds: float
    produced: dict[str, Any]
    consumed: dict[str, int]
    rows: dict[str, int]
    quarantined: dict[str, int]
    complete: bool
    interrupted: bool = False
    # Offsets appended to each topic during the run (by anyone), and what is left unread.
    appended: dict[str, int] = field(default_factory=dict)
    unread: dict[str, int] = field(default_factory=dict)
    injected: list[dict[str, str]] | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        if d["injected"] is None:
            d.pop("injected")
        return d


def count_rows(sink: Path) -> dict[str, int]:
    """Rows actually on disk per output (not what the job says it wrote)."""
    import pyarrow.dataset as ds

    out: dict[str, int] = {}
    names = [C.OUT_TRANSACTIONS, C.OUT_CUSTOMERS, C.OUT_QUARANTINE] + [
        f"{C.OUT_AGGREGATES}/{a}" for a in C.AGGREGATES
    ]
    for name in names:
        path = sink / name
        files = list(path.rglob("*.parquet")) if path.exists() else []
        out[name] = ds.dataset(files, format="parquet").count_rows() if files else 0
    return out


def expected_per_topic(t: Tally) -> tuple[int, int]:
    """Records the generator got acknowledged on (customers topic, transactions topic)."""
    customers = t.customers + t.customer_updates + t.invalid_in_customers_topic
    return customers, t.total - customers


class LocalRun:
    """Set up Kafka + topics + the job config; run the generator and the Spark job."""

    def __init__(
        self, pipeline: StreamPipeline, opts: RunOptions, printer: Callable[[str], None] | None = None
    ) -> None:
        self.pipeline = pipeline
        self.opts = opts
        self.output = opts.output.resolve()
        self.print = printer or (lambda s: print(s, flush=True))
        self.kafka: EmbeddedKafka | None = None
        self.bootstrap = ""
        self.processor: Processor | None = None
        self.stop_event = threading.Event()
        self.tally: Tally | None = None
        self._generator_error: BaseException | None = None
        self._last_tally = Tally()
        self._restarts = 0
        self._start_offsets: dict[str, dict[int, int]] = {}
        self._target: dict[str, dict[int, int]] | None = None  # end offsets when generation ended
        self.api: Any = None  # .api.LocalApi while the service runs

    # -- set-up ---------------------------------------------------------------------------
    @property
    def work(self) -> Path:
        return self.output / C.CHECKPOINTS_DIR / "local"

    def prepare(self) -> None:
        cfg = self.pipeline.to_job_config()
        requested = self.pipeline.spec.kafka.bootstrap_servers
        if requested and kafka_reachable(requested):
            self.bootstrap = requested
        else:
            if requested:
                self.print(f"Kafka at {requested} is not reachable: using an embedded broker instead.")
            if self.output.exists() and any(self.output.iterdir()):
                if not self.opts.fresh:
                    raise RunError(
                        f"{self.output} already holds a run whose offsets belong to an earlier embedded "
                        f"broker. Pass --fresh to replace it, or choose another --output."
                    )
                shutil.rmtree(self.output)
            self.print("Starting an embedded Apache Kafka broker (KRaft)...")
            self.kafka = EmbeddedKafka().start()
            self.bootstrap = self.kafka.bootstrap_servers
        self.work.mkdir(parents=True, exist_ok=True)
        topics = cfg["kafka"]["topics"]
        ensure_topics(
            self.bootstrap,
            [TopicSpec(t["name"], t["partitions"], t["replicas"], t.get("config")) for t in topics.values()],
            max_replicas=1 if self.kafka else None,
        )
        cfg["kafka"]["bootstrapServers"] = self.bootstrap
        cfg["sink"]["path"] = str(self.output)
        self.job_config = cfg
        self._start_offsets = end_offsets(self.bootstrap, self.topic_names)
        self.config_file = self.work / "job-config.json"
        self.config_file.write_text(json.dumps(cfg, indent=2))
        proc = self.pipeline.spec.processing
        self.processor = Processor(
            self.config_file,
            self.work / "processor.log",
            self.opts.master,
            driver_memory=proc.driver.memory,
            max_offsets_per_trigger=self.opts.max_offsets_per_trigger,
        )

    def generator_config(self) -> GeneratorConfig:
        overrides: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "workers": self.opts.workers,
            "track_injected": self.opts.track_injected,
        }
        if self.opts.records is not None:
            overrides["records"] = self.opts.records
        if self.opts.duration is not None:
            overrides["duration_seconds"] = self.opts.duration
        return GeneratorConfig.from_job_config(self.job_config, **overrides)

    # -- running ----------------------------------------------------------------------------
    def start_generator(self) -> threading.Thread:
        cfg = self.generator_config()

        def progress(t: Tally) -> None:
            self._last_tally = t

        def work() -> None:
            try:
                self.tally = run_generator(cfg, stop=self.stop_event, progress=progress)
            except BaseException as exc:  # reported by the main thread
                self._generator_error = exc

        thread = threading.Thread(target=work, name="generator", daemon=True)
        thread.start()
        return thread

    @property
    def topic_names(self) -> list[str]:
        topics = self.job_config["kafka"]["topics"]
        return [topics["customers"]["name"], topics["transactions"]["name"]]

    def take_target(self) -> None:
        """Generation has ended: the run is complete once the job has read this far."""
        self._target = end_offsets(self.bootstrap, self.topic_names)

    def unread(self) -> dict[str, int] | None:
        """Offsets per topic below the target that the job has not consumed (None before
        generation ended)."""
        if self._target is None:
            return None
        positions = read_positions(self.output)
        return {
            topic: sum(max(end - positions.get(topic, {}).get(p, 0), 0) for p, end in parts.items())
            for topic, parts in self._target.items()
        }

    def progress(self) -> dict[str, Any] | None:
        return read_progress(self.output)

    def consumed(self) -> tuple[int, int]:
        p = self.progress() or {}
        inp = p.get("input", {})
        return (
            inp.get(self.job_config["kafka"]["topics"]["customers"]["name"], 0),
            inp.get(self.job_config["kafka"]["topics"]["transactions"]["name"], 0),
        )

    def run(self) -> Summary:
        started = time.monotonic()
        self.prepare()
        if self.opts.api:
            from .api import start_for

            self.api = start_for(self.job_config, self.output, self.print, self.opts.api_port)
        assert self.processor is not None
        display = ProgressDisplay(self, self.print)
        interrupted = False
        self.print(f"Pipeline {self.pipeline.name!r}: Kafka {self.bootstrap}, Parquet under {self.output}")
        self.processor.start()
        gen = self.start_generator()
        try:
            while gen.is_alive():
                gen.join(1.0)
                self.supervise()
                display.tick()
            if self._generator_error:
                raise RunError(f"the generator failed: {self._generator_error}")
            self.take_target()
            deadline = time.monotonic() + self.opts.drain_timeout
            while not self._all_consumed():
                if time.monotonic() > deadline:
                    raise RunError(
                        f"the Spark job did not catch up within {self.opts.drain_timeout:.0f}s; "
                        f"see {self.processor.log_file}"
                    )
                self.supervise()
                display.tick()
                time.sleep(1.0)
        except KeyboardInterrupt:
            interrupted = True
            self.print("\nInterrupted: stopping the generator, letting the Spark job finish what was sent...")
            self.stop_event.set()
            gen.join()
            try:
                self.take_target()
                deadline = time.monotonic() + self.opts.drain_timeout
                while not self._all_consumed() and time.monotonic() < deadline:
                    self.supervise()
                    display.tick()
                    time.sleep(1.0)
            except KeyboardInterrupt:
                self.print("Second interrupt: stopping now; the checkpoint keeps what was committed.")
        finally:
            display.tick(force=True)
            self.processor.stop()
        summary = self._summary(time.monotonic() - started)
        summary.interrupted = interrupted
        return summary

    def supervise(self, max_restarts: int = 3) -> None:
        """Restart a Spark job that died (as spark-operator's OnFailure policy would); it
        resumes from its checkpoint.  Give up after ``max_restarts`` with its log tail."""
        assert self.processor is not None
        try:
            self.processor.check()
        except RunError:
            if self._restarts >= max_restarts:
                raise
            self._restarts += 1
            self.print(
                f"The Spark job exited unexpectedly; restarting it from its checkpoint "
                f"({self._restarts}/{max_restarts}). Log: {self.processor.log_file}"
            )
            self.processor.start()

    def _all_consumed(self) -> bool:
        if self._target is None and self.tally is not None:  # the generator has returned
            self.take_target()
        unread = self.unread()
        return unread is not None and not any(unread.values())

    def _summary(self, seconds: float) -> Summary:
        tally = self.tally or self._last_tally
        p = self.progress() or {}
        cust_t, txn_t = (self.job_config["kafka"]["topics"][k]["name"] for k in ("customers", "transactions"))
        consumed = {
            "customers_topic": p.get("input", {}).get(cust_t, 0),
            "transactions_topic": p.get("input", {}).get(txn_t, 0),
        }
        exp_c, exp_t = expected_per_topic(tally)
        produced = tally.as_dict()
        produced.pop("injected", None)
        produced.update({"customers_topic": exp_c, "transactions_topic": exp_t})
        rows = count_rows(self.output)
        injected = [r._asdict() for r in tally.injected] if tally.injected is not None else None
        roles = {cust_t: "customers_topic", txn_t: "transactions_topic"}
        if self._target is None:  # stopped before generation ended (a second Ctrl-C, an error)
            with contextlib.suppress(Exception):
                self.take_target()
        unread_by_topic = self.unread() or {}
        unread = {roles[t]: n for t, n in unread_by_topic.items()}
        appended = {
            roles[t]: sum(end - self._start_offsets.get(t, {}).get(p, 0) for p, end in parts.items())
            for t, parts in (self._target or {}).items()
        }
        complete = self._target is not None and not any(unread.values())
        return Summary(
            self.pipeline.name,
            str(self.output),
            self.bootstrap,
            self.kafka is not None,
            round(seconds, 1),
            produced,
            consumed,
            rows,
            dict(p.get("quarantined", {})),
            complete,
            appended=appended,
            unread=unread,
            injected=injected,
        )

    def close(self) -> None:
        if self.api is not None:
            self.api.stop()
            self.api = None
        if self.processor is not None:
            self.processor.stop()
        if self.kafka is not None:
            self.kafka.close()


class ProgressDisplay:
    """One status line per second: what was produced, processed, written and how far behind."""

    def __init__(self, run: LocalRun, printer: Callable[[str], None], every: float = 2.0) -> None:
        self.run = run
        self.print = printer
        self.every = every
        self._last = 0.0
        self._prev: tuple[float, int] | None = None
        self._tty = sys.stdout.isatty()

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every:
            return
        self._last = now
        t = self.run.tally or self.run._last_tally
        p = self.run.progress() or {}
        consumed = sum(p.get("input", {}).values())
        written = p.get("written", {})
        rate = ""
        if self._prev is not None and now > self._prev[0]:
            rate = f"{(consumed - self._prev[1]) / (now - self._prev[0]):,.0f} rows/s"
        self._prev = (now, consumed)
        unread = self.run.unread()  # by offsets, once generation has ended
        lag = sum(unread.values()) if unread is not None else max(t.total - consumed, 0)
        line = (
            f"produced {t.total:>9,} (invalid {t.invalid_total:,}) | processed {consumed:>9,} {rate:>14} | "
            f"transactions {written.get('transactions', 0):>9,} | "
            f"quarantined {written.get('quarantine', 0):>6,}"
            f" | lag {lag:>8,} | batches {p.get('batches', 0)}"
        )
        self.print(line)


def format_summary(s: Summary) -> str:
    """The end-of-run table a person reads."""
    p = s.produced
    py = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable
    lines = [
        "",
        f"Run summary — pipeline {s.pipeline} ({s.seconds:.0f}s, "
        f"{'complete' if s.complete else 'INCOMPLETE'})",
        "  produced (acknowledged by Kafka)",
        f"    {'customers':<38}{p['customers']:>10,}",
        f"    {'customer updates':<38}{p['customer_updates']:>10,}",
        f"    {'valid transactions':<38}{p['transactions']:>10,}",
    ]
    for kind, n in sorted(p["invalid"].items()):
        if n:
            lines.append(f"    {'invalid: ' + kind:<38}{n:>10,}")
    lines += [
        "  appended to the topics during the run (offsets, every producer)",
        f"    {'customers topic':<38}{s.appended.get('customers_topic', 0):>10,}",
        f"    {'transactions topic':<38}{s.appended.get('transactions_topic', 0):>10,}",
        "  consumed by the Spark job",
        f"    {'customers topic':<38}{s.consumed['customers_topic']:>10,}",
        f"    {'transactions topic':<38}{s.consumed['transactions_topic']:>10,}",
        "  rows in Parquet",
    ]
    for name, n in s.rows.items():
        lines.append(f"    {name:<38}{n:>10,}")
    if any(s.unread.values()):
        lines.append("  left unread (offsets below the topics' end when generation ended)")
        for role, n in s.unread.items():
            lines.append(f"    {role.replace('_', ' '):<38}{n:>10,}")
    if s.quarantined:
        lines.append("  quarantined by reason")
        for reason, n in sorted(s.quarantined.items()):
            lines.append(f"    {reason:<38}{n:>10,}")
    lines += [
        "",
        f"Parquet is under {s.output}/ (transactions/ is partitioned by year/month). Read it with e.g.:",
        f"  {py} -c \"import pandas as pd; print(pd.read_parquet('{s.output}/transactions').head())\"",
        f"  {py} -c \"import pandas as pd; print(pd.read_parquet('{s.output}/aggregates/by_category'))\"",
    ]
    return "\n".join(lines)
