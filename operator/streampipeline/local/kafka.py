"""A real single-node Apache Kafka broker (KRaft, broker+controller) for local runs and tests.

It is the genuine broker from the Maven Central jars, not a fake: started with
``kafka.tools.StorageTool`` then ``kafka.Kafka`` on free loopback ports with a
temporary log directory.  ``stop()``/``start()`` keep ports and data, so tests can
restart the broker in the middle of a run.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from spjobs.kafka_time import LOG_APPEND_TIME, TIMESTAMP_TYPE, timestamp_types, with_required

from .jars import kafka_jars

log = logging.getLogger(__name__)

_LOG4J2 = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {logfile}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.file.ref = file
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 1
    replicas: int = 1
    config: dict[str, str] | None = None


class EmbeddedKafka:
    """Start/stop a KRaft broker; use as a context manager."""

    def __init__(self, workdir: Path | None = None, heap: str = "1g", log_level: str = "WARN") -> None:
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="sp-kafka-"))
        self.port = free_port()
        self.controller_port = free_port()
        self.heap = heap
        self.log_level = log_level
        self._proc: subprocess.Popen[bytes] | None = None
        self._formatted = False

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def classpath(self) -> str:
        return str(kafka_jars() / "*")

    @property
    def logfile(self) -> Path:
        return self.workdir / "server.log"

    def _java(self, main: str, *args: str, heap: str = "256m") -> list[str]:
        java = shutil.which("java") or "java"
        return [
            java,
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            "-cp",
            self.classpath,
            main,
            *args,
        ]

    def _write_config(self) -> Path:
        logs = self.workdir / "data"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(logs),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.flush.interval.ms": "9223372036854775807",
            # The broker stamps records (spjobs.kafka_time); the pipeline's topics set it too.
            "log.message.timestamp.type": LOG_APPEND_TIME,
        }
        path = self.workdir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.workdir / "log4j2.properties").write_text(
            _LOG4J2.format(logfile=self.logfile, level=self.log_level)
        )
        return path

    def start(self, timeout: float = 90.0) -> EmbeddedKafka:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        if not self._formatted:
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            fmt = subprocess.run(
                self._java(
                    "kafka.tools.StorageTool",
                    "format",
                    f"--cluster-id={cluster_id}",  # an id may start with "-": never a separate arg
                    "-c",
                    str(config),
                    "--ignore-formatted",
                ),
                capture_output=True,
                text=True,
            )
            if fmt.returncode != 0:
                raise RuntimeError(f"formatting the Kafka log dir failed:\n{fmt.stdout}\n{fmt.stderr}")
            self._formatted = True
        out = open(self.workdir / "stdout.log", "ab")  # noqa: SIM115 - owned by the child
        self._proc = subprocess.Popen(
            self._java("kafka.Kafka", str(config), heap=self.heap),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        self._wait_ready(timeout)
        log.info("kafka broker ready at %s (pid %s)", self.bootstrap_servers, self._proc.pid)
        return self

    def _wait_ready(self, timeout: float) -> None:
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"Kafka broker exited with {self._proc.returncode}:\n{self.tail()}")
            try:
                md = admin.list_topics(timeout=2)
                if md.brokers:
                    return
            except Exception:  # broker still starting
                pass
            time.sleep(0.3)
        raise TimeoutError(f"Kafka broker did not become ready in {timeout:.0f}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        chunks = []
        for f in (self.workdir / "stdout.log", self.logfile):
            if f.exists():
                chunks.append("\n".join(f.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(chunks)

    def stop(self, timeout: float = 30.0, kill: bool = False) -> None:
        """Stop the broker (SIGTERM for a clean shutdown, or SIGKILL with ``kill``)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> EmbeddedKafka:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def ensure_topics(
    bootstrap_servers: str, topics: list[TopicSpec], max_replicas: int | None = None, timeout: float = 30.0
) -> None:
    """Create missing topics (partitions/config from the spec, with LogAppendTime); grow
    partitions that are short; switch an existing topic on CreateTime to LogAppendTime,
    as Strimzi does on Kubernetes when it applies the operator's KafkaTopic."""
    from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    existing = admin.list_topics(timeout=timeout).topics
    new = []
    for t in topics:
        replicas = min(t.replicas, max_replicas) if max_replicas else t.replicas
        if t.name not in existing:
            new.append(
                NewTopic(
                    t.name,
                    num_partitions=t.partitions,
                    replication_factor=replicas,
                    config=with_required(t.config),
                )
            )
        elif len(existing[t.name].partitions) < t.partitions:
            fut = admin.create_partitions([NewPartitions(t.name, t.partitions)])[t.name]
            fut.result(timeout)
    for name, fut in admin.create_topics(new, operation_timeout=timeout).items() if new else []:
        try:
            fut.result(timeout)
        except Exception as exc:  # a concurrent creator is fine; anything else is not
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise RuntimeError(f"could not create topic {name!r}: {exc}") from exc
    present = [t.name for t in topics if t.name in existing]
    if present:
        _switch_to_log_append_time(admin, bootstrap_servers, present, timeout)
    log.info("topics ready: %s", ", ".join(t.name for t in topics))


def _switch_to_log_append_time(admin, bootstrap_servers: str, topics: list[str], timeout: float) -> None:  # type: ignore[no-untyped-def]
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    wrong = [
        t for t, v in timestamp_types(bootstrap_servers, topics, timeout).items() if v != LOG_APPEND_TIME
    ]
    if not wrong:
        return
    entry = ConfigEntry(TIMESTAMP_TYPE, LOG_APPEND_TIME, incremental_operation=AlterConfigOpType.SET)
    resources = [ConfigResource(ResourceType.TOPIC, t, incremental_configs=[entry]) for t in wrong]
    for res, fut in admin.incremental_alter_configs(resources).items():
        try:
            fut.result(timeout)
        except Exception as exc:
            raise RuntimeError(
                f"topic {res.name!r} is on CreateTime and could not be switched to {LOG_APPEND_TIME} "
                f"({exc}); switch it, or name another topic in the manifest"
            ) from exc
        log.warning(
            "topic %s was on CreateTime: switched to %s (records already in it keep their timestamps)",
            res.name,
            LOG_APPEND_TIME,
        )


def end_offsets(
    bootstrap_servers: str, topics: list[str], timeout: float = 30.0
) -> dict[str, dict[int, int]]:
    """Per topic and partition, the next offset a record appended now would get (the high
    watermark): what every producer has got acknowledged so far, ours or not."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": "streampipeline-run", "log_level": 0})
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                out: dict[str, dict[int, int]] = {}
                md = c.list_topics(timeout=timeout).topics
                for topic in topics:
                    parts = md[topic].partitions if topic in md else {}
                    out[topic] = {
                        p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
                        for p in sorted(parts)
                    }
                return out
            except KafkaException as exc:  # a topic created a moment ago may have no leader yet
                if time.monotonic() > deadline or not (
                    exc.args[0].retriable() or "leader" in str(exc).lower()
                ):
                    raise
                time.sleep(0.3)
    finally:
        c.close()


def producer_perf_cmd(
    kafka: EmbeddedKafka, topic: str, records: int, record_size: int, props: dict[str, str]
) -> list[str]:
    """Kafka's own Java producer benchmark, from the same jars as the broker."""
    return kafka._java(
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--record-size",
        str(record_size),
        "--throughput",
        "-1",
        "--producer-props",
        f"bootstrap.servers={kafka.bootstrap_servers}",
        *(f"{k}={v}" for k, v in props.items()),
        heap="512m",
    )


if __name__ == "__main__":  # pragma: no cover - manual smoke run
    logging.basicConfig(level=logging.INFO)
    with EmbeddedKafka() as k:
        ensure_topics(k.bootstrap_servers, [TopicSpec("smoke", 3)])
        print("ok", k.bootstrap_servers, os.getpid())
