# ruff: noqa: E501 (the catalogue is a table: one kind per line)
"""A hostile catalogue written into the topics of a live run, beside the generator.

Real broker, real Spark job.  Over 60 kinds of record (encoding, syntax, types, amounts,
timestamps, sizes, keys, headers, ordering, duplicates, producer timestamps) are produced
straight into the two topics while the generator runs.  Afterwards, for every
(topic, partition, offset) in Kafka: the record is in exactly one output, the
catalogue's records have the reason the contract gives them, quarantine keeps the exact
bytes, every Parquet file reads back and validates in full, the outputs and aggregates
equal the independent reference (``reference.py``), and the job never restarted.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from spjobs import contract as C
from streampipeline.local.runner import LocalRun, RunOptions
from streampipeline.spec import load_manifest

from .test_faults import wait_for
from .verify import assert_outputs_match, read_dataset, reference_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 6_000
VALID = "valid"  # expected outcome: in transactions/ or customers/
REFERENCE = None  # expected outcome: whatever the reference says (producer-time dependent)


def txn(tid: str, **over) -> dict:
    d = {
        "transaction_id": tid,
        "customer_id": "H-C1",
        "event_time": "2026-11-26T09:59:58.123Z",
        "amount": "10.50",
        "currency": "BRL",
        "category": "groceries",
        "city": "Recife",
        "payment_method": "pix",
        "merchant": "M",
    }
    d.update(over)
    return {k: v for k, v in d.items() if v is not ...}


def cust(cid: str, **over) -> dict:
    d = {
        "customer_id": cid,
        "name": "Ana",
        "email": "a@x.br",
        "birth_date": "1990-05-01",
        "state": "PE",
        "city": "Recife",
        "signup_time": "2025-01-01T00:00:00.000Z",
        "updated_at": "2025-01-01T00:00:00.000Z",
    }
    d.update(over)
    return {k: v for k, v in d.items() if v is not ...}


def js(d: object, **kw) -> bytes:
    return json.dumps(d, **kw).encode()


@dataclass
class Kind:
    name: str
    group: str
    value: bytes | None
    expected: str | None  # a reason, VALID, or REFERENCE
    topic: str = "transactions"  # or "customers"
    key: bytes | None = b"H-C1"
    headers: list | None = None
    timestamp: int | None = None  # producer CreateTime (ms)
    pause: float = 0.0  # wait this long before sending (to order arrivals)


def catalogue() -> tuple[list[Kind], list[Kind]]:
    """(customers sent and acknowledged first, then everything else in order)."""
    base = [
        Kind("customer_valid", "ordering", js(cust("H-C1")), VALID, "customers"),
        Kind("customer_born_1990", "ordering", js(cust("H-C2", birth_date="1990-05-01")), VALID, "customers"),
    ]
    t = lambda name, **over: js(txn(f"H-{name}", **over))  # noqa: E731
    good = js(txn("H-bytes-base"))
    kinds = [
        # encoding
        Kind("latin1_byte", "encoding", good.replace(b"Recife", b"Rec\xedfe"), C.REASON_INVALID_ENCODING),
        Kind("lone_continuation", "encoding", good.replace(b'"M"', b'"M\x80"'), C.REASON_INVALID_ENCODING),
        Kind("overlong_slash", "encoding", good.replace(b'"M"', b'"\xc0\xaf"'), C.REASON_INVALID_ENCODING),
        Kind("encoded_surrogate", "encoding", good.replace(b'"M"', b'"\xed\xa0\x80"'), C.REASON_INVALID_ENCODING),
        Kind("utf16_with_bom", "encoding", json.dumps(txn("H-u16")).encode("utf-16"), C.REASON_INVALID_ENCODING),
        Kind("truncated_multibyte", "encoding", good[:-2] + b'\xc3"}', C.REASON_INVALID_ENCODING),
        Kind("lone_surrogate_escape", "encoding", t("surrogate", city="\ud800"), C.REASON_INVALID_ENCODING),
        Kind("utf8_bom", "encoding", b"\xef\xbb\xbf" + t("bom"), C.REASON_MALFORMED_JSON),
        Kind("nul_after_object", "encoding", t("nul") + b"\x00", C.REASON_MALFORMED_JSON),
        Kind("ascii_escaped_text", "encoding", t("esc", city="São Paulo"), VALID),
        Kind("four_byte_utf8", "encoding", js(txn("H-emoji", merchant="Café 🍕"), ensure_ascii=False), VALID),
        # syntax
        Kind("truncated", "syntax", t("trunc")[:-5], C.REASON_MALFORMED_JSON),
        Kind("single_quotes", "syntax", t("squote").replace(b'"', b"'"), C.REASON_MALFORMED_JSON),
        Kind("trailing_garbage", "syntax", t("garbage") + b"xyz", C.REASON_MALFORMED_JSON),
        Kind("two_objects", "syntax", t("two-a") + t("two-b"), C.REASON_MALFORMED_JSON),
        Kind("trailing_comma", "syntax", t("comma")[:-1] + b",}", C.REASON_MALFORMED_JSON),
        Kind("nan_constant", "syntax", t("nan")[:-1] + b', "x": NaN}', C.REASON_MALFORMED_JSON),
        Kind("infinity_constant", "syntax", t("inf")[:-1] + b', "x": -Infinity}', C.REASON_MALFORMED_JSON),
        Kind("top_level_array", "syntax", b"[" + t("arr") + b"]", C.REASON_MALFORMED_JSON),
        Kind("top_level_string", "syntax", js("H-str"), C.REASON_MALFORMED_JSON),
        Kind("top_level_number", "syntax", b"42", C.REASON_MALFORMED_JSON),
        Kind("literal_null", "syntax", b"null", C.REASON_MALFORMED_JSON),
        Kind("empty_value", "syntax", b"", C.REASON_MALFORMED_JSON),
        Kind("whitespace_value", "syntax", b" \n\t ", C.REASON_MALFORMED_JSON),
        Kind("comment", "syntax", b"/* c */" + t("comment"), C.REASON_MALFORMED_JSON),
        Kind("unquoted_names", "syntax", t("unq").replace(b'"transaction_id"', b"transaction_id"), C.REASON_MALFORMED_JSON),
        Kind("deep_nesting", "syntax", t("deep")[:-1] + b', "x": ' + b"[" * 6000 + b"]" * 6000 + b"}", C.REASON_MALFORMED_JSON),
        Kind("duplicate_name", "syntax", t("dup-name")[:-1] + b', "amount": "99.00"}', C.REASON_DUPLICATE_FIELD),
        Kind("duplicate_nested_name", "syntax", t("dup-nested")[:-1] + b', "x": {"a": 1, "a": 2}}', C.REASON_DUPLICATE_FIELD),
        Kind("surrounding_whitespace", "syntax", b" \n" + t("ws") + b"\r\n ", VALID),
        Kind("unknown_field", "syntax", js({**txn("H-unknown"), "extra": {"nested": [1, 2, None]}}), VALID),
        Kind("huge_integer_unknown_field", "syntax", t("bigint")[:-1] + b', "x": ' + b"9" * 5000 + b"}", VALID),
        # types
        Kind("amount_float", "types", t("amt-float", amount=10.5), C.REASON_WRONG_TYPE),
        Kind("amount_integer", "types", t("amt-int", amount=10), C.REASON_WRONG_TYPE),
        Kind("category_object", "types", t("cat-obj", category={"name": "groceries"}), C.REASON_WRONG_TYPE),
        Kind("city_array", "types", t("city-arr", city=["Recife"]), C.REASON_WRONG_TYPE),
        Kind("id_number", "types", js({**txn("x"), "transaction_id": 12345}), C.REASON_WRONG_TYPE),
        Kind("currency_boolean", "types", t("cur-bool", currency=True), C.REASON_WRONG_TYPE),
        Kind("event_time_epoch_number", "types", t("ev-num", event_time=1764150000), C.REASON_WRONG_TYPE),
        Kind("customer_birth_date_number", "types", js(cust("H-C-num", birth_date=19900501)), C.REASON_WRONG_TYPE, "customers", b"H-C-num"),
        Kind("merchant_null", "types", t("merchant-null", merchant=None), VALID),
        Kind("category_null", "types", t("cat-null", category=None), C.REASON_MISSING_FIELD),
        # sizes and presence
        Kind("missing_id", "sizes", js({k: v for k, v in txn("x").items() if k != "transaction_id"}), C.REASON_MISSING_FIELD),
        Kind("blank_city", "sizes", t("blank", city="   "), C.REASON_MISSING_FIELD),
        Kind("empty_object", "sizes", b"{}", C.REASON_MISSING_FIELD),
        Kind("customer_on_transactions_topic", "sizes", js(cust("H-C-wrong-topic")), C.REASON_MISSING_FIELD),
        Kind("field_too_long", "sizes", t("long", merchant="m" * (C.MAX_FIELD_CHARS + 1)), C.REASON_FIELD_TOO_LONG),
        Kind("field_at_limit", "sizes", t("at-limit", merchant="m" * C.MAX_FIELD_CHARS), VALID),
        Kind("record_too_large", "sizes", t("large")[:-1] + b', "pad": "' + b"p" * C.MAX_RECORD_BYTES + b'"}', C.REASON_RECORD_TOO_LARGE),
        Kind("record_at_limit", "sizes", None, VALID),  # filled in below
        Kind("tombstone_transactions", "sizes", None, C.REASON_NULL_VALUE),
        Kind("tombstone_customers", "sizes", None, C.REASON_NULL_VALUE, "customers", b"H-tombstone"),
        # timestamps in the payload
        Kind("past_year_9999_in_utc", "timestamps", t("y9999", event_time="9999-12-31T23:59:59-05:00"), C.REASON_TIMESTAMP_OUT_OF_RANGE),
        Kind("before_1970", "timestamps", t("y1969", event_time="1969-12-31T23:59:59Z"), C.REASON_TIMESTAMP_OUT_OF_RANGE),
        Kind("year_2100", "timestamps", t("y2100", event_time="2100-01-01T00:00:00Z"), C.REASON_TIMESTAMP_OUT_OF_RANGE),
        Kind("last_instant", "timestamps", t("y2099", event_time="2099-12-31T23:59:59.999999999Z"), VALID),
        Kind("offset_plus_0530", "timestamps", t("ist", event_time="2026-11-26T15:29:58.123+05:30"), VALID),
        Kind("nanoseconds", "timestamps", t("nanos", event_time="2026-11-26T09:59:58.123456789Z"), VALID),
        Kind("no_zone", "timestamps", t("nozone", event_time="2026-11-26T09:59:58.123"), C.REASON_MALFORMED_DATE),
        Kind("space_separator", "timestamps", t("space", event_time="2026-11-26 09:59:58Z"), C.REASON_MALFORMED_DATE),
        Kind("leap_second", "timestamps", t("leap", event_time="2026-12-31T23:59:60Z"), C.REASON_MALFORMED_DATE),
        Kind("feb_29_non_leap", "timestamps", t("feb29", event_time="2026-02-29T10:00:00Z"), C.REASON_MALFORMED_DATE),
        Kind("lower_case_t_z", "timestamps", t("lower", event_time="2026-11-26t09:59:58z"), C.REASON_MALFORMED_DATE),
        Kind("offset_24h", "timestamps", t("off24", event_time="2026-11-26T09:59:58+24:00"), C.REASON_MALFORMED_DATE),
        Kind("customer_signup_2200", "timestamps", js(cust("H-C-2200", signup_time="2200-01-01T00:00:00Z")), C.REASON_TIMESTAMP_OUT_OF_RANGE, "customers", b"H-C-2200"),
        Kind("customer_updated_at_malformed", "timestamps", js(cust("H-C-upd", updated_at="yesterday")), C.REASON_MALFORMED_DATE, "customers", b"H-C-upd"),
        # amounts and vocabularies
        Kind("one_place", "amounts", t("a-10.5", amount="10.5"), C.REASON_INVALID_AMOUNT),
        Kind("no_places", "amounts", t("a-10", amount="10"), C.REASON_INVALID_AMOUNT),
        Kind("exponent", "amounts", t("a-exp", amount="1e3"), C.REASON_INVALID_AMOUNT),
        Kind("plus_sign", "amounts", t("a-plus", amount="+1.00"), C.REASON_INVALID_AMOUNT),
        Kind("leading_space", "amounts", t("a-space", amount=" 1.00"), C.REASON_INVALID_AMOUNT),
        Kind("leading_zero", "amounts", t("a-zero", amount="01.00"), C.REASON_INVALID_AMOUNT),
        Kind("arabic_digits", "amounts", t("a-arabic", amount="١٢.٣٤"), C.REASON_INVALID_AMOUNT),
        Kind("max_amount", "amounts", t("a-max", amount="99999999.99"), VALID),
        Kind("over_max_amount", "amounts", t("a-over", amount="100000000.00"), C.REASON_INVALID_AMOUNT),
        Kind("min_amount", "amounts", t("a-min", amount="0.01"), VALID),
        Kind("zero", "amounts", t("a-0", amount="0.00"), C.REASON_NON_POSITIVE_AMOUNT),
        Kind("negative_zero", "amounts", t("a-neg0", amount="-0.00"), C.REASON_NON_POSITIVE_AMOUNT),
        Kind("negative", "amounts", t("a-neg", amount="-0.01"), C.REASON_NON_POSITIVE_AMOUNT),
        Kind("currency_usd", "amounts", t("c-usd", currency="USD"), C.REASON_UNSUPPORTED_CURRENCY),
        Kind("currency_lower_case", "amounts", t("c-brl", currency="brl"), C.REASON_UNSUPPORTED_CURRENCY),
        Kind("currency_absent", "amounts", t("c-absent", currency=...), VALID),
        Kind("category_case", "amounts", t("cat-case", category="Groceries"), C.REASON_UNKNOWN_CATEGORY),
        Kind("payment_case", "amounts", t("pay-case", payment_method="PIX"), C.REASON_UNKNOWN_PAYMENT_METHOD),
        # plausibility
        Kind("birth_after_kafka_day", "plausibility", js(cust("H-C-future", birth_date="2099-01-01", signup_time="2099-06-01T00:00:00Z")), C.REASON_IMPLAUSIBLE_BIRTH_DATE, "customers", b"H-C-future"),
        Kind("birth_1880", "plausibility", js(cust("H-C-1880", birth_date="1880-01-01")), C.REASON_IMPLAUSIBLE_BIRTH_DATE, "customers", b"H-C-1880"),
        Kind("birth_after_signup", "plausibility", js(cust("H-C-unborn", signup_time="1989-01-01T00:00:00Z")), C.REASON_IMPLAUSIBLE_BIRTH_DATE, "customers", b"H-C-unborn"),
        Kind("birth_feb_30", "plausibility", js(cust("H-C-feb30", birth_date="1990-02-30")), C.REASON_MALFORMED_DATE, "customers", b"H-C-feb30"),
        Kind("event_before_birth", "plausibility", t("unborn", customer_id="H-C2", event_time="1980-01-01T00:00:00Z"), C.REASON_EVENT_BEFORE_BIRTH, key=b"H-C2"),
        # keys
        Kind("null_key", "keys", t("k-null"), VALID, key=None),
        Kind("binary_key", "keys", t("k-bin"), VALID, key=b"\xff\xfe\x00\x80"),
        Kind("key_not_customer_id", "keys", t("k-other"), VALID, key=b"someone-else"),
        Kind("huge_key", "keys", t("k-huge"), VALID, key=b"k" * 10_000),
        Kind("binary_key_bad_value", "keys", b"\xff" + t("k-bad"), C.REASON_INVALID_ENCODING, key=b"\x00\xff"),
        # headers
        Kind("binary_headers", "headers", t("h-bin"), VALID, headers=[("h", b"\xff\x00"), ("", b"")]),
        Kind("many_headers", "headers", t("h-many"), VALID, headers=[(f"h{i}", str(i).encode()) for i in range(100)]),
        Kind("header_without_value", "headers", t("h-none"), VALID, headers=[("x", None)]),
        # duplicates (each a little later, so arrival order is the send order)
        Kind("first_of_two", "duplicates", t("d-1"), VALID, pause=0.05),
        Kind("exact_resend", "duplicates", t("d-1"), C.REASON_DUPLICATE_TRANSACTION_ID, pause=0.05),
        Kind("same_id_other_content_other_key", "duplicates", t("d-1", amount="99.00"), C.REASON_DUPLICATE_TRANSACTION_ID, key=b"zz", pause=0.05),
        Kind("broken_then_valid_same_id", "duplicates", t("d-2", amount="1"), C.REASON_INVALID_AMOUNT, pause=0.05),
        Kind("valid_after_broken_same_id", "duplicates", t("d-2"), VALID, pause=0.05),
        # ordering
        Kind("customer_never_sent", "ordering", t("o-nobody", customer_id="H-nobody"), C.REASON_UNKNOWN_CUSTOMER, key=b"H-nobody"),
        Kind("customer_only_invalid", "ordering", t("o-invalid", customer_id="H-C-1880"), C.REASON_UNKNOWN_CUSTOMER, key=b"H-C-1880"),
        Kind("older_update_after_newer", "ordering", js(cust("H-C1", city="Olinda", updated_at="2024-01-01T00:00:00Z")), VALID, "customers", pause=0.05),
        Kind("transaction_after_older_update", "ordering", t("o-after-old"), REFERENCE, pause=1.0),
        # producer timestamps (CreateTime topics keep them; LogAppendTime ones replace them)
        Kind("kafka_ts_epoch_plus_1ms", "producer_time", t("p-1970"), REFERENCE, timestamp=1),
        Kind("kafka_ts_one_year_ago", "producer_time", t("p-2025"), REFERENCE, timestamp=int(time.time() * 1000) - 365 * 86_400_000),
        Kind("kafka_ts_ten_minutes_ahead", "producer_time", t("p-ahead"), REFERENCE, timestamp=int(time.time() * 1000) + 600_000),
        Kind("kafka_ts_before_1970", "producer_time", t("p-1969"), REFERENCE, timestamp=-86_400_000),
        Kind("customer_kafka_ts_1970", "producer_time", js(cust("H-C-1970")), REFERENCE, "customers", b"H-C-1970", timestamp=1),
    ]  # fmt: skip
    at_limit = next(k for k in kinds if k.name == "record_at_limit")
    head = t("at-bytes")[:-1] + b', "pad": "'
    at_limit.value = head + b"p" * (C.MAX_RECORD_BYTES - len(head) - 2) + b'"}'
    assert len(at_limit.value) == C.MAX_RECORD_BYTES
    return base, kinds


def _topic(run: LocalRun, which: str) -> str:
    return run.job_config["kafka"]["topics"][which]["name"]


def _produce(producer: Producer, run: LocalRun, kinds: list[Kind], sent: dict) -> None:
    for k in kinds:
        if k.pause:
            producer.flush(30)
            time.sleep(k.pause)

        def done(err, msg, kind=k):
            sent[kind.name] = (err, None if err else (msg.topic(), msg.partition(), msg.offset()))

        extra = {"timestamp": k.timestamp} if k.timestamp is not None else {}
        try:
            producer.produce(
                _topic(run, k.topic), value=k.value, key=k.key, headers=k.headers, on_delivery=done, **extra
            )
        except Exception as exc:  # the client refuses it (e.g. a negative timestamp): never sent
            sent[k.name] = (exc, None)
        producer.poll(0)
    producer.flush(60)


def _end_offsets(bootstrap: str, topics: list[str]) -> dict[str, dict[str, int]]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "sp-hostile-ends"})
    try:
        out = {}
        for t in topics:
            parts = c.list_topics(t, timeout=10).topics[t].partitions
            out[t] = {str(p): c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1] for p in parts}
        return out
    finally:
        c.close()


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    manifest = load_manifest(ROOT / "k8s" / "examples" / "pipeline.yaml").to_manifest()
    manifest["spec"]["generator"].update({"ratePerSecond": 600, "invalidRatio": 0.03, "customers": 400})
    manifest["spec"]["processing"].update({"trigger": "1s"})
    pipeline = load_manifest(manifest)
    out = tmp_path_factory.mktemp("hostile") / "out"
    run = LocalRun(pipeline, RunOptions(output=out, records=EVENTS), printer=lambda s: None)
    sent: dict[str, tuple] = {}
    base, kinds = catalogue()
    try:
        run.prepare()
        run.processor.start()
        pid = run.processor.proc.pid
        gen = run.start_generator()
        wait_for(lambda: run._last_tally.events >= 500, what="the generator to be under way", run=run)
        producer = Producer(
            {"bootstrap.servers": run.bootstrap, "enable.idempotence": True, "message.max.bytes": 1_000_000}
        )
        _produce(producer, run, base, sent)
        time.sleep(1.0)
        _produce(producer, run, kinds, sent)
        gen.join(timeout=600)
        assert not gen.is_alive() and run._generator_error is None, run._generator_error
        ends = _end_offsets(run.bootstrap, [_topic(run, "customers"), _topic(run, "transactions")])

        def caught_up() -> bool:
            got = (run.progress() or {}).get("offsets", {})
            return all(got.get(t, {}).get(p, 0) >= e for t, ps in ends.items() for p, e in ps.items() if e)

        wait_for(caught_up, timeout=600, what="the job to consume every offset", run=run)
        alive = run.processor.proc.poll() is None and run.processor.proc.pid == pid
        log = run.processor.tail() if hasattr(run.processor, "tail") else ""
        run.processor.stop()
        exp = reference_for(run.bootstrap, run.job_config)
    finally:
        run.close()
    return {
        "out": out,
        "exp": exp,
        "sent": sent,
        "kinds": base + kinds,
        "alive": alive,
        "log": log,
        "ends": ends,
    }


def test_the_catalogue_has_over_60_kinds_in_every_group(hostile_run):
    kinds = hostile_run["kinds"]
    assert len(kinds) >= 60
    groups = {k.group for k in kinds}
    assert groups >= {"encoding", "syntax", "types", "sizes", "timestamps", "amounts", "keys", "headers"}
    assert groups >= {"ordering", "duplicates", "producer_time", "plausibility"}


def test_the_job_never_restarted(hostile_run):
    assert hostile_run["alive"], f"the Spark job died or was restarted:\n{hostile_run['log']}"


def test_every_offset_is_in_exactly_one_output(hostile_run):
    out = hostile_run["out"]
    seen: dict[tuple, list[str]] = {}
    for name, topic_of in ((C.OUT_TRANSACTIONS, "transactions"), (C.OUT_CUSTOMERS, "customers")):
        df = read_dataset(out / name)
        for p, o in zip(df["kafka_partition"], df["kafka_offset"]):
            seen.setdefault((topic_of, int(p), int(o)), []).append(name)
    q = read_dataset(out / C.OUT_QUARANTINE)
    for t, p, o in zip(q["topic"], q["partition"], q["offset"]):
        kind = "customers" if t.endswith("customers") else "transactions"
        seen.setdefault((kind, int(p), int(o)), []).append(C.OUT_QUARANTINE)
    twice = {k: v for k, v in seen.items() if len(v) > 1}
    assert not twice, f"records in more than one output: {list(twice.items())[:5]}"
    every = {
        ("customers" if t.endswith("customers") else "transactions", int(p), o)
        for t, ps in hostile_run["ends"].items()
        for p, end in ps.items()
        for o in range(end)
    }
    assert set(seen) == every, (
        f"missing {sorted(every - set(seen))[:5]}, extra {sorted(set(seen) - every)[:5]}"
    )


def test_each_kind_gets_the_contracts_outcome(hostile_run):
    out, sent = hostile_run["out"], hostile_run["sent"]
    outcome: dict[tuple, str] = {}
    for name in (C.OUT_TRANSACTIONS, C.OUT_CUSTOMERS):
        df = read_dataset(out / name)
        for p, o in zip(df["kafka_partition"], df["kafka_offset"]):
            outcome[(name, int(p), int(o))] = VALID
    q = read_dataset(out / C.OUT_QUARANTINE)
    for t, p, o, r in zip(q["topic"], q["partition"], q["offset"], q["reason"]):
        outcome[(t, int(p), int(o))] = r
    wrong = []
    for k in hostile_run["kinds"]:
        err, where = sent[k.name]
        if err is not None:  # only a producer timestamp may be refused by the broker
            assert k.group == "producer_time", (k.name, err)
            continue
        topic, p, o = where
        got = outcome.get((topic, p, o)) or outcome.get((k.topic, p, o))
        want = hostile_run["exp"].reasons.get((topic, p, o), VALID) if k.expected is REFERENCE else k.expected
        if got != want:
            wrong.append((k.name, got, want))
    assert not wrong, f"kinds with the wrong outcome (kind, got, expected): {wrong}"


def test_quarantine_keeps_the_exact_bytes_and_every_file_validates(hostile_run):
    out, sent = hostile_run["out"], hostile_run["sent"]
    files = sorted(out.rglob("*.parquet"))  # the datasets, and the job's state under _checkpoints
    assert any(C.CHECKPOINTS_DIR in f.parts for f in files) and any(
        C.OUT_QUARANTINE in f.parts for f in files
    )
    for f in files:
        pq.read_table(f).validate(full=True)
    q = pq.read_table(out / C.OUT_QUARANTINE)
    q.validate(full=True)
    rows = {(r["topic"], r["partition"], r["offset"]): r for r in q.to_pylist()}
    checked = 0
    for k in hostile_run["kinds"]:
        err, where = sent[k.name]
        if err is None and where in rows:
            r = rows[where]
            assert (r["raw_value"], r["key"]) == (k.value, k.key), k.name
            want_text = None if k.value is None else k.value.decode("utf-8", "backslashreplace")
            assert r["value_text"] == want_text, k.name
            checked += 1
    assert checked >= 50


def test_outputs_and_aggregates_equal_the_reference(hostile_run):
    assert_outputs_match(hostile_run["out"], hostile_run["exp"])
