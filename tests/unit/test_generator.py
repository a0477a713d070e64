"""The generator's records against the data contract, without Kafka.

``defects()`` below is an independent reference validator (a tiny stand-in for the
Spark job's checks): every valid record must have no defect and every injected one
exactly the defect its kind names.  The producer is exercised with a fake that only
acknowledges on flush, which is what makes the ordering checks meaningful.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
import uuid
from collections import Counter
from dataclasses import replace
from datetime import date, datetime, timezone
from typing import Any

import pytest

from spjobs import contract
from spjobs.generator.config import GeneratorConfig, parse_duration
from spjobs.generator.model import (
    FLUSH,
    KIND_CUSTOMER,
    KIND_CUSTOMER_UPDATE,
    KIND_TRANSACTION,
    Record,
    RecordModel,
    Tally,
)
from spjobs.generator.producer import GeneratorError, run, worker_configs

START = 1_795_700_000.0  # 2026-11-26, a fixed "now"
AMOUNT = re.compile(r"^-?\d+\.\d{2}$")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
STATE = re.compile(r"^[A-Z]{2}$")


class FakeClock:
    """Advances a little on every reading, so update waves happen on (fake) time."""

    def __init__(self, start: float = START, step: float = 0.0002) -> None:
        self.t = start
        self.step = step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def cfg(**kw: Any) -> GeneratorConfig:
    base: dict[str, Any] = {"bootstrap_servers": "unused:9092", "customers": 200}
    return GeneratorConfig(**{**base, **kw})


def take(model: RecordModel, events: int) -> list[Record | object]:
    """The stream up to (and including) ``events`` events, barriers included."""
    out: list[Record | object] = []
    n = 0
    for item in model.stream():
        out.append(item)
        if isinstance(item, Record) and item.kind not in (KIND_CUSTOMER, KIND_CUSTOMER_UPDATE):
            n += 1
            if n == events:
                return out
    raise AssertionError("unreachable")


def records(items: list[Any]) -> list[Record]:
    return [i for i in items if isinstance(i, Record)]


# --- the reference validator ----------------------------------------------------------


def _timestamp_ok(v: Any) -> bool:
    if not isinstance(v, str) or not TIMESTAMP.match(v):
        return False
    try:
        datetime.strptime(v[:-4] + v[-4:-1] + "000Z", contract.TIMESTAMP_FORMAT)
    except ValueError:
        return False
    return True


def _date_ok(v: Any) -> bool:
    try:
        return isinstance(v, str) and len(v) == 10 and bool(datetime.strptime(v, contract.DATE_FORMAT))
    except ValueError:
        return False


class Validator:
    """Classifies records the way the contract says the Spark job must."""

    def __init__(self) -> None:
        self.customers: set[str] = set()  # valid customer ids seen so far
        self.transaction_ids: set[str] = set()  # ids of valid transactions seen so far

    def defects(self, rec: Record) -> list[str]:
        try:
            d = json.loads(rec.value)
        except ValueError:
            return ["malformed_json"]
        assert isinstance(d, dict)
        if rec.topic == "customers":
            found = self._customer(d)
            if not found:
                assert rec.key == d["customer_id"].encode()
                self.customers.add(d["customer_id"])
            return found
        found = self._transaction(d)
        if not found:
            assert rec.key == d["customer_id"].encode()
            self.transaction_ids.add(d["transaction_id"])
        return found

    def _customer(self, d: dict[str, Any]) -> list[str]:
        found = []
        assert set(d) <= set(contract.CUSTOMER_FIELDS), d
        if len(set(contract.CUSTOMER_REQUIRED) - set(d)) == 1:
            found.append("missing_field")
        else:
            assert set(d) == set(contract.CUSTOMER_FIELDS), d
        if "birth_date" in d and not _date_ok(d["birth_date"]):
            found.append("malformed_date")
        for f in ("signup_time", "updated_at"):
            assert f not in d or _timestamp_ok(d[f]), d
        assert "state" not in d or STATE.match(d["state"])
        assert all(isinstance(d[f], str) and d[f] for f in d)
        return found

    def _transaction(self, d: dict[str, Any]) -> list[str]:
        found = []
        assert set(d) <= set(contract.TRANSACTION_FIELDS), d
        missing = set(contract.TRANSACTION_FIELDS) - set(d)
        assert missing <= set(contract.TRANSACTION_REQUIRED) and len(missing) <= 1, d
        if missing:
            found.append("missing_field")
        if "event_time" in d and not _timestamp_ok(d["event_time"]):
            found.append("malformed_date")
        if "amount" in d:
            assert AMOUNT.match(d["amount"]), d
            if float(d["amount"]) <= 0:
                found.append("non_positive_amount")
        if "category" in d and d["category"] not in contract.CATEGORIES:
            found.append("unknown_category")
        if "customer_id" in d and d["customer_id"] not in self.customers:
            found.append("unknown_customer")
        if d.get("transaction_id") in self.transaction_ids:
            found.append("duplicate_transaction_id")
        assert "payment_method" not in d or d["payment_method"] in contract.PAYMENT_METHODS
        assert d.get("currency", contract.CURRENCY) == contract.CURRENCY
        if "transaction_id" in d:
            assert uuid.UUID(d["transaction_id"]).version == 4
        return found


# --- model ----------------------------------------------------------------------------


def test_same_config_and_clock_give_the_same_stream() -> None:
    c = cfg(invalid_ratio=0.1, customer_update_ratio=0.01)
    a = take(RecordModel(c, FakeClock()), 5000)
    b = take(RecordModel(c, FakeClock()), 5000)
    assert a == b
    assert FLUSH in a[c.customers + 1 :]  # update waves happened, barriers included


def test_seed_and_instance_change_the_ids() -> None:
    def ids(c: GeneratorConfig) -> tuple[set[str], set[str]]:
        recs = records(take(RecordModel(c, FakeClock()), 2000))
        customers = {r.ident for r in recs if r.kind == KIND_CUSTOMER}
        transactions = {r.ident for r in recs if r.kind == KIND_TRANSACTION}
        return customers, transactions

    base_c, base_t = ids(cfg())
    _, seed_t = ids(cfg(seed=7))
    inst_c, inst_t = ids(cfg(instance="1"))
    assert len(base_c) == 200 and len(base_t) > 1900
    assert not base_t & seed_t
    assert not base_c & inst_c and not base_t & inst_t


def test_valid_records_follow_the_contract() -> None:
    c = cfg(invalid_ratio=0.0, customer_update_ratio=0.01)
    today = datetime.fromtimestamp(START, timezone.utc).date()
    v = Validator()
    kinds: Counter[str] = Counter()
    for rec in records(take(RecordModel(c, FakeClock()), 20_000)):
        kinds[rec.kind] += 1
        assert v.defects(rec) == [], rec
        d = json.loads(rec.value)
        if rec.topic == c.customers_topic:
            assert list(d) == list(contract.CUSTOMER_FIELDS)
            born = date.fromisoformat(d["birth_date"])
            age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
            assert 18 <= age <= 90
        else:
            assert list(d) == list(contract.TRANSACTION_FIELDS)
            # Joined from byte fragments: exactly compact UTF-8 JSON, like json.dumps would write.
            assert rec.value == json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode()
            assert AMOUNT.match(d["amount"]) and int(d["amount"].replace(".", "")) > 0
            lag = (
                START
                - datetime.strptime(d["event_time"], contract.TIMESTAMP_FORMAT)
                .replace(tzinfo=timezone.utc)
                .timestamp()
            )
            assert -10 <= lag <= c.max_lateness_seconds + 10  # fake clock drifts a few seconds
    assert kinds[KIND_CUSTOMER] == 200 and kinds[KIND_TRANSACTION] == 20_000
    assert 100 < kinds[KIND_CUSTOMER_UPDATE] < 300  # ~1% of 20k


def test_transactions_only_follow_acknowledged_customer_versions() -> None:
    """After a FLUSH everything before it is acknowledged; check each transaction against that."""
    c = cfg(invalid_ratio=0.05, customer_update_ratio=0.02)
    acked: dict[str, bytes] = {}
    unacked: dict[str, bytes] = {}
    updates_seen = 0
    for item in take(RecordModel(c, FakeClock()), 20_000):
        if item is FLUSH:
            acked.update(unacked)
            unacked.clear()
            continue
        assert isinstance(item, Record)
        if item.topic == c.customers_topic:
            if item.kind in (KIND_CUSTOMER, KIND_CUSTOMER_UPDATE):
                unacked[item.ident] = item.value
                updates_seen += item.kind == KIND_CUSTOMER_UPDATE
            else:
                assert item.ident.startswith("Q")  # invalid customers: ids nobody references
        elif item.kind != "unknown_customer":
            cid = item.key.decode()
            assert cid in acked and cid not in unacked, item
    assert updates_seen > 100


def test_each_injected_kind_has_exactly_its_one_defect() -> None:
    c = cfg(invalid_ratio=0.3)
    v = Validator()
    per_kind: Counter[str] = Counter()
    topics: set[tuple[str, str]] = set()
    for rec in records(take(RecordModel(c, FakeClock()), 20_000)):
        found = v.defects(rec)
        if rec.kind in (KIND_CUSTOMER, KIND_CUSTOMER_UPDATE, KIND_TRANSACTION):
            assert found == [], rec
        else:
            assert found == [rec.kind], rec
            per_kind[rec.kind] += 1
            topics.add((rec.kind, rec.topic))
    assert set(per_kind) == set(contract.INJECTED_KINDS)
    assert min(per_kind.values()) > 600  # ~6000 / 7 each
    for kind in ("missing_field", "malformed_date", "malformed_json"):
        assert {(kind, "customers"), (kind, "transactions")} <= topics


def test_duplicates_resend_an_earlier_valid_transaction_with_the_same_key() -> None:
    originals: dict[str, tuple[bytes, int]] = {}
    dups = 0
    for pos, rec in enumerate(records(take(RecordModel(cfg(invalid_ratio=0.2), FakeClock()), 5000))):
        if rec.kind == KIND_TRANSACTION:
            originals[rec.ident] = (rec.key, pos)
        elif rec.kind == "duplicate_transaction_id":
            key, first = originals[rec.ident]
            assert key == rec.key and first < pos
            dups += 1
    assert dups > 50


def test_invalid_ratio_is_respected() -> None:
    recs = records(take(RecordModel(cfg(), FakeClock()), 20_000))
    invalid = sum(r.kind not in (KIND_CUSTOMER, KIND_CUSTOMER_UPDATE, KIND_TRANSACTION) for r in recs)
    assert abs(invalid - 400) < 80  # 0.02 of 20k; sigma ~ 20
    updates = sum(r.kind == KIND_CUSTOMER_UPDATE for r in recs)
    assert abs(updates - 40) < 30  # 0.002 of 20k
    none = records(take(RecordModel(cfg(invalid_ratio=0.0, customer_update_ratio=0.0), FakeClock()), 5000))
    assert {r.kind for r in none} == {KIND_CUSTOMER, KIND_TRANSACTION}


def test_tally_counts_what_it_is_given() -> None:
    c = cfg(invalid_ratio=0.1, customer_update_ratio=0.01, track_injected=True)
    tally = Tally(injected=[])
    recs = records(take(RecordModel(c, FakeClock()), 5000))
    for rec in recs:
        tally.count(rec, c.customers_topic)
    kinds = Counter(r.kind for r in recs)
    assert tally.customers == kinds[KIND_CUSTOMER] == 200
    assert tally.customer_updates == kinds[KIND_CUSTOMER_UPDATE]
    assert tally.transactions == kinds[KIND_TRANSACTION]
    assert tally.invalid == {k: kinds[k] for k in contract.INJECTED_KINDS}
    assert tally.events == 5000 and tally.total == len(recs)
    assert tally.invalid_in_customers_topic == sum(
        r.topic == "customers" for r in recs if r.kind in contract.INJECTED_KINDS
    )
    assert tally.injected is not None and len(tally.injected) == tally.invalid_total
    d = tally.as_dict()
    assert d["invalid_total"] == tally.invalid_total and len(d["injected"]) == tally.invalid_total  # type: ignore[arg-type]
    both = tally.merge(tally)
    assert both.total == 2 * tally.total and both.invalid["malformed_json"] == 2 * kinds["malformed_json"]


# --- config ---------------------------------------------------------------------------


def test_config_from_operator_json() -> None:
    doc = {
        "kafka": {
            "bootstrapServers": "kafka:9092",
            "topics": {"customers": {"name": "c1"}, "transactions": {"name": "t1"}},
        },
        "generator": {
            "ratePerSecond": 500,
            "customers": 50,
            "seed": 3,
            "invalidRatio": 0.1,
            "maxLateness": "250ms",
            "records": 1000,
            "duration": "1m",
        },
    }
    c = GeneratorConfig.from_job_config(doc, workers=2, records=None)
    assert (c.bootstrap_servers, c.customers_topic, c.transactions_topic) == ("kafka:9092", "c1", "t1")
    assert (c.rate_per_second, c.customers, c.seed, c.invalid_ratio) == (500.0, 50, 3, 0.1)
    assert (c.max_lateness_seconds, c.records, c.duration_seconds, c.workers) == (0.25, 1000, 60.0, 2)
    d = GeneratorConfig.from_job_config({"kafka": {"bootstrapServers": "k:1"}})
    assert d == GeneratorConfig(bootstrap_servers="k:1")
    assert [parse_duration(s) for s in ("5s", "250ms", "1m", "2h", "1.5s", 3)] == [5, 0.25, 60, 7200, 1.5, 3]
    with pytest.raises(ValueError):
        parse_duration("5 parsecs")
    with pytest.raises(ValueError):
        GeneratorConfig.from_job_config({})
    with pytest.raises(ValueError):
        cfg(invalid_ratio=1.5)


def test_worker_configs_split_the_work() -> None:
    parts = worker_configs(cfg(workers=3, records=1000, customers=200, rate_per_second=90, instance="r1"))
    assert [p.instance for p in parts] == ["r1.0", "r1.1", "r1.2"]
    assert sum(p.records or 0 for p in parts) == 1000 and sum(p.customers for p in parts) == 200
    assert all(p.workers == 1 and p.rate_per_second == 30 for p in parts)


# --- producer, against a fake that acknowledges only on flush ------------------------------


class FakeMessage:
    def __init__(self, topic: str) -> None:
        self._topic = topic

    def topic(self) -> str:
        return self._topic


class FakeProducer:
    """Acks on flush() only; checks at produce time that referenced customers are acked."""

    fail_at: int | None = None

    def __init__(self, conf: dict[str, Any]) -> None:
        assert conf["acks"] == "all" and conf["enable.idempotence"] is True
        self.customers_topic = "customers"
        self.queue: list[tuple[str, bytes, Any]] = []
        self.produced = 0
        self.latest: dict[str, bytes] = {}  # customer -> last produced version
        self.acked: dict[str, bytes] = {}  # customer -> last acknowledged version

    def produce(self, topic: str, value: bytes, key: bytes, partition: int, on_delivery: Any, /) -> None:
        assert partition == -1
        cid = key.decode()
        if topic == self.customers_topic:
            self.latest[cid] = value
        elif cid.startswith("C"):
            assert self.acked.get(cid) == self.latest.get(cid) is not None, f"{cid} not acknowledged"
        self.queue.append((topic, value, on_delivery))
        self.produced += 1

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        for topic, value, cb in self.queue:
            if topic == self.customers_topic:
                d = json.loads(value) if value.endswith(b"}") else {}
                if str(d.get("customer_id", "")).startswith("C"):
                    self.acked[d["customer_id"]] = value
            self.fail_at = None if self.fail_at is None else self.fail_at - 1
            cb("broker said no" if self.fail_at == 0 else None, FakeMessage(topic))
        self.queue.clear()
        return 0

    def __len__(self) -> int:
        return len(self.queue)


class FailingProducer(FakeProducer):
    fail_at = 300


def test_run_bounds_records_and_counts_acknowledged_ones() -> None:
    c = cfg(records=3000, invalid_ratio=0.05, customer_update_ratio=0.02, track_injected=True)
    progress: list[Tally] = []
    t = run(c, progress=progress.append, clock=FakeClock(), producer_factory=FakeProducer)
    assert t.events == 3000 and t.customers == 200 and t.unacknowledged == 0
    assert t.customer_updates > 0 and t.invalid_total > 0
    assert t.injected is not None and len(t.injected) == t.invalid_total
    assert Counter(i.kind for i in t.injected) == Counter({k: n for k, n in t.invalid.items() if n})


def test_run_stops_on_request_and_on_duration() -> None:
    stop = threading.Event()
    stop.set()
    t = run(cfg(), stop=stop, clock=FakeClock(), producer_factory=FakeProducer)
    assert t.events == 0 and t.unacknowledged == 0
    t = run(cfg(duration_seconds=0.5, rate_per_second=200), clock=FakeClock(), producer_factory=FakeProducer)
    assert 5 <= t.events <= 110  # paced: ~100 in 0.5 s however fast the machine (loose: no timing test)


def test_run_raises_on_delivery_failure() -> None:
    with pytest.raises(GeneratorError, match="broker said no"):
        run(cfg(records=10_000), clock=FakeClock(), producer_factory=FailingProducer)


def test_run_with_workers_sums_their_tallies() -> None:
    c = cfg(records=1001, customers=30, workers=2, invalid_ratio=0.1)
    t = run(c, producer_factory=FakeProducer)
    assert t.events == 1001 and t.customers == 30


def test_streams_are_infinite_and_lazy() -> None:
    model = RecordModel(replace(cfg(), customers=5), FakeClock())
    assert len(list(itertools.islice(model.stream(), 100_000))) == 100_000


# --- command line -----------------------------------------------------------------------


def test_cli_reads_the_job_config_and_applies_flags(tmp_path: Any) -> None:
    from spjobs.generator.__main__ import _parse_args, load_config

    job = tmp_path / "job.json"
    job.write_text(json.dumps({"kafka": {"bootstrapServers": "k:9092"}, "generator": {"records": 5}}))
    c = load_config(_parse_args(["--config", str(job), "--duration", "30s", "--workers", "2"]))
    assert (c.bootstrap_servers, c.records, c.duration_seconds, c.workers) == ("k:9092", 5, 30.0, 2)
    c = load_config(_parse_args(["--bootstrap-servers", "b:1", "--records", "7"]))
    assert (c.bootstrap_servers, c.records) == ("b:1", 7)


def test_cli_rejects_a_bad_config_with_a_json_log_line(capsys: Any) -> None:
    from spjobs.generator.__main__ import main

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        assert main(["--records", "5"]) == 2  # no bootstrap servers anywhere
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["level"] == "error" and "bootstrap" in line["error"] and "ts" in line


def test_librdkafka_retrying_warnings_are_info_and_real_warnings_stay(caplog) -> None:
    from spjobs.generator.producer import _rdkafka_log

    tag = uuid.uuid4().hex  # the repeat filter ignores digits: the letters keep these unique
    retry = (
        f"GETPID [{tag}] [thrd:main]: Failed to acquire idempotence PID "
        "from broker 127.0.0.1:9092/1: Broker: Coordinator load in progress: retrying"
    )
    with caplog.at_level(logging.WARNING, logger=_rdkafka_log.name):
        _rdkafka_log.warning(retry)
        _rdkafka_log.warning(f"FAIL [{tag}]: Connect to ipv4#127.0.0.1:9092 failed")
    assert [(r.levelname, r.getMessage()[:4]) for r in caplog.records] == [("WARNING", "FAIL")]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=_rdkafka_log.name):
        _rdkafka_log.warning(retry)
    assert [(r.levelname, r.getMessage()[-8:]) for r in caplog.records] == [("INFO", "retrying")]
