"""The REST service's pure parts: which offsets answer a read, lag, the token check,
bounded dataset reads on real Parquet, and the vendored chart library's integrity."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streampipeline.api import datasets as D
from streampipeline.api.auth import token_matches
from streampipeline.api.kafka_io import Window, pick, read_windows
from streampipeline.api.telemetry import lag

VENDOR = Path(__file__).resolve().parents[2] / "operator" / "streampipeline" / "api" / "static" / "vendor"


def test_read_windows_examples():
    marks = {0: (0, 10), 1: (5, 7), 2: (0, 0)}
    assert read_windows(marks, "latest", 3) == [Window(0, 7, 10), Window(1, 5, 7)]
    assert read_windows(marks, "earliest", 3) == [Window(0, 0, 3), Window(1, 5, 7)]
    assert read_windows(marks, 6, 2) == [Window(0, 6, 8), Window(1, 6, 7)]
    assert read_windows(marks, 2, 2) == [Window(0, 2, 4), Window(1, 5, 7)], "clamped to what is retained"
    assert read_windows(marks, 100, 5) == []


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.integers(0, 5),
        st.tuples(st.integers(0, 1000), st.integers(0, 1000)).map(sorted).map(tuple),
        max_size=4,
    ),
    st.one_of(st.sampled_from(["latest", "earliest"]), st.integers(0, 2000)),
    st.integers(1, 500),
)
def test_read_windows_stay_within_the_log_and_the_limit(marks, start, limit):
    for w in read_windows(marks, start, limit):
        low, high = marks[w.partition]
        assert low <= w.start < w.end <= high
        assert w.end - w.start <= limit


def rec(p, o, ts):
    return {"partition": p, "offset": o, "timestamp_ms": ts}


def test_pick_takes_the_newest_or_oldest_across_partitions():
    rs = [rec(0, 1, 10), rec(0, 2, 40), rec(1, 7, 20), rec(1, 8, 30)]
    assert pick(rs, "latest", 2) == [rec(0, 2, 40), rec(1, 8, 30)]
    assert pick(rs, "earliest", 2) == [rec(0, 1, 10), rec(1, 7, 20)]
    assert pick(rs, "latest", 10) == sorted(rs, key=lambda r: (r["partition"], r["offset"]))


def test_lag_counts_what_the_job_has_not_committed():
    topics = {
        "t": {"partitions": [{"partition": 0, "low": 0, "high": 10}, {"partition": 1, "low": 4, "high": 9}]}
    }
    assert lag(topics, None) == {"t": 10 + 5}
    assert lag(topics, {"offsets": {"t": {"0": 7, "1": 9}}}) == {"t": 3}


def test_token_comparison():
    assert token_matches("s3cret", "s3cret")
    assert not token_matches("s3cret", "s3cre")
    assert not token_matches("s3cret", "")
    assert not token_matches(None, "anything")
    assert not token_matches("", "")
    assert not token_matches("s3cret", None)


@pytest.fixture
def sink(tmp_path):
    part = tmp_path / "transactions" / "year=2026" / "month=11"
    part.mkdir(parents=True)
    n = 250
    pq.write_table(
        pa.table(
            {
                "transaction_id": [f"T{i}" for i in range(n)],
                "customer_id": [f"C{i % 7}" for i in range(n)],
                "amount": pa.array([Decimal("1.25")] * n, type=pa.decimal128(12, 2)),
                "category": ["groceries" if i % 2 else "travel" for i in range(n)],
            }
        ),
        part / "part-0.parquet",
    )
    agg = tmp_path / "aggregates" / "by_category"
    agg.mkdir(parents=True)
    pq.write_table(pa.table({"category": ["travel"], "transaction_count": [3]}), agg / "part-00000.parquet")
    return tmp_path


def test_dataset_reads_are_filtered_limited_and_json_ready(sink):
    out = D.read(sink, "transactions", {"customer_id": "C3", "year": "2026"}, 10, 1 << 20)
    assert len(out["rows"]) == 10 and out["truncated"] is True
    assert all(r["customer_id"] == "C3" and r["year"] == 2026 and r["month"] == 11 for r in out["rows"])
    assert out["rows"][0]["amount"] == "1.25"
    assert D.read(sink, "transactions", {"year": "2025"}, 10, 1 << 20)["rows"] == []
    assert D.read(sink, "by_category", {}, 10, 1 << 20)["rows"] == [
        {"category": "travel", "transaction_count": 3}
    ]
    assert D.read(sink, "quarantine", {"reason": "x"}, 10, 1 << 20)["rows"] == [], "nothing written yet"
    small = D.read(sink, "transactions", {}, 200, 2000)
    assert small["truncated"] is True and 0 < len(small["rows"]) < 200, "the byte bound stops the read"
    with pytest.raises(D.DatasetError, match="cannot be filtered on 'reason'"):
        D.read(sink, "transactions", {"reason": "x"}, 10, 1 << 20)
    with pytest.raises(D.DatasetError, match="must be an integer"):
        D.read(sink, "transactions", {"year": "abc"}, 10, 1 << 20)


def test_the_vendored_chart_library_is_the_pinned_build_with_its_license():
    lib = VENDOR / "chart.js-4.5.1.umd.min.js"
    assert hashlib.sha256(lib.read_bytes()).hexdigest() == (
        "48444a82d4edcb5bec0f1965faacdde18d9c17db3063d042abada2f705c9f54a"
    )
    assert "MIT License" in (VENDOR / "chart.js-LICENSE.md").read_text()
    assert "4.5.1" in (VENDOR / "README.md").read_text()
    page = (VENDOR.parent / "dashboard.html").read_text()
    assert "/static/vendor/chart.js-4.5.1.umd.min.js" in page
    assert "://" not in page, "the page loads nothing from another host"


def test_a_local_run_prints_a_generated_token_but_never_the_users_own(monkeypatch, tmp_path):
    """`streampipeline run` shows the token it generated once; a token the user set in the
    environment is a secret of theirs and is used without being echoed."""
    from streampipeline.api import server as server_mod
    from streampipeline.local import api as local_api

    class _Server:
        url = "http://127.0.0.1:1"

        def __init__(self, cfg, port=0):
            self.cfg = cfg

        def start(self):
            return self

    monkeypatch.setattr(server_mod, "BackgroundServer", _Server)
    from streampipeline.spec import load_manifest

    root = Path(__file__).resolve().parents[2]
    job_config = load_manifest((root / "k8s" / "examples" / "pipeline.yaml").read_text()).to_job_config()
    for users in (None, "users-own-secret-token"):
        if users:
            monkeypatch.setenv("STREAMPIPELINE_API_TOKEN", users)
        else:
            monkeypatch.delenv("STREAMPIPELINE_API_TOKEN", raising=False)
        lines: list[str] = []
        run_api = local_api.start_for(job_config, tmp_path, lines.append)
        text = "\n".join(lines)
        if users:
            assert run_api.token == users and users not in text
        else:
            assert run_api.token and run_api.token in text
