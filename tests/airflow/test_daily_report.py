"""The daily report DAG in real Airflow over the Parquet of a real local run, against an
independent pandas recomputation, to the cent."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.integration

TABLES = ("by_category", "by_city", "top_customers", "by_period_state_age_band")


def _transactions(sink: Path) -> pd.DataFrame:
    t = ds.dataset(str(sink / "transactions"), format="parquet", partitioning="hive").to_table()
    df = t.to_pandas()
    df["year"], df["month"] = df["year"].astype(int), df["month"].astype(int)
    return df


def expected(sink: Path, day: str, tz: str, top: int = 10) -> dict[str, pd.DataFrame]:
    """The report recomputed with pandas from every row of the dataset."""
    df = _transactions(sink)
    local = df["event_time"].dt.tz_convert(ZoneInfo(tz))
    df = df[local.dt.strftime("%Y-%m-%d") == day].copy()
    df["cents"] = [int(a * 100) for a in df["amount"]]  # Decimal: exact
    out = {}
    for name, keys in {
        "by_category": ["category"],
        "by_city": ["city"],
        "top_customers": ["customer_id"],
        "by_period_state_age_band": ["year", "month", "state", "age_band"],
    }.items():
        g = df.groupby(keys, as_index=False).agg(
            transaction_count=("transaction_id", "size"), total_cents=("cents", "sum")
        )
        if name == "top_customers":
            g = g.sort_values(["total_cents", "customer_id"], ascending=[False, True]).head(top)
        else:
            g = g.sort_values(keys)
        g["total_amount"] = [Decimal(int(c)).scaleb(-2) for c in g["total_cents"]]
        out[name] = g.reset_index(drop=True)
    return out


def assert_report_equals(report_dir: Path, want: dict[str, pd.DataFrame]) -> None:
    assert sorted(p.name for p in report_dir.iterdir()) == sorted(f"{t}.parquet" for t in TABLES)
    for name in TABLES:
        got = pq.read_table(report_dir / f"{name}.parquet").to_pandas()
        exp = want[name]
        keys = [c for c in exp.columns if c not in ("transaction_count", "total_cents", "total_amount")]
        assert len(got) == len(exp), (name, len(got), len(exp))
        assert got[keys].astype(str).values.tolist() == exp[keys].astype(str).values.tolist(), name
        assert got["transaction_count"].tolist() == exp["transaction_count"].tolist(), name
        assert got["total_cents"].tolist() == exp["total_cents"].tolist(), name
        assert got["total_amount"].tolist() == exp["total_amount"].tolist(), name  # Decimal == Decimal
    if "rank" in pq.read_schema(report_dir / "top_customers.parquet").names:
        ranks = pq.read_table(report_dir / "top_customers.parquet")["rank"].to_pylist()
        assert ranks == list(range(1, len(ranks) + 1))


@pytest.fixture(scope="module")
def sink(real_run, tmp_path_factory) -> Path:
    """A copy of the real run's sink, plus rows shaped exactly like the job's (copies of real
    rows with new ids and event times) on both sides of a month boundary: 2026-11-30 in
    São Paulo is 03:00Z on Nov 30 to 03:00Z on Dec 1, so it spans month=11 and month=12."""
    dst = tmp_path_factory.mktemp("report-sink") / "sink"
    shutil.copytree(real_run / "transactions", dst / "transactions")
    real = ds.dataset(str(real_run / "transactions"), format="parquet", partitioning="hive")
    files = real.files
    schema = pq.read_schema(files[0])
    rows = pa.concat_tables([pq.read_table(f, schema=schema) for f in files]).slice(0, 900)
    first = pc.min(rows["event_time"]).as_py()
    for i, (start, month) in enumerate(
        [("2026-11-30T12:00:00Z", 11), ("2026-12-01T01:00:00Z", 12), ("2026-12-01T04:00:00Z", 12)]
    ):
        part = rows.slice(i * 300, 300)
        base = datetime.fromisoformat(start.replace("Z", "+00:00"))
        times = [base + (t - first) % timedelta(hours=1) for t in part["event_time"].to_pylist()]
        part = part.set_column(
            schema.get_field_index("event_time"),
            "event_time",
            pa.array(times, schema.field("event_time").type),
        )
        ids = pc.binary_join_element_wise(part["transaction_id"], pa.scalar(f"-synthetic{i}"), "")
        part = part.set_column(schema.get_field_index("transaction_id"), "transaction_id", ids)
        directory = dst / "transactions" / "year=2026" / f"month={month}"
        directory.mkdir(parents=True, exist_ok=True)
        pq.write_table(part.cast(schema), directory / f"part-synthetic-{i}.parquet")
    return dst


def _report(airflow, sink: Path, logical_date: str, **conf):
    result = airflow.run(
        "streampipeline_daily_report", {"sink_path": str(sink), **conf}, logical_date=logical_date
    )
    assert result.ok, result.explain()
    return result.xcom["build_report"]


def test_report_of_the_real_runs_day_equals_pandas(airflow, real_run, tmp_path):
    day = _transactions(real_run)["event_time"].min().strftime("%Y-%m-%d")
    summary = _report(airflow, real_run, f"{day}T00:00:00+00:00", report_path=str(tmp_path / "reports"))
    want = expected(real_run, day, "UTC")
    assert summary["transactions"] == int(want["by_category"]["transaction_count"].sum()) > 0
    assert_report_equals(tmp_path / "reports" / f"date={day}", want)


def test_a_day_spanning_two_month_partitions(airflow, sink):
    summary = _report(airflow, sink, "2026-11-30T00:00:00+00:00", timezone="America/Sao_Paulo")
    assert summary["months"] == ["2026-11", "2026-12"]
    assert summary["window_utc"] == ["2026-11-30T03:00:00+00:00", "2026-12-01T03:00:00+00:00"]
    want = expected(sink, "2026-11-30", "America/Sao_Paulo")
    assert summary["transactions"] >= 600  # both synthetic sets inside, the third outside
    periods = want["by_period_state_age_band"]
    assert set(zip(periods["year"], periods["month"])) >= {(2026, 11), (2026, 12)}
    assert_report_equals(sink / "reports" / "daily" / "date=2026-11-30", want)


def test_a_rerun_of_the_same_date_replaces_the_report(airflow, sink):
    reports = sink / "reports" / "daily"
    before = pq.read_table(reports / "date=2026-11-30" / "by_category.parquet")
    # one more transaction lands for that day (a late file), then the date is re-run
    extra_dir = sink / "transactions" / "year=2026" / "month=11"
    extra = pq.read_table(extra_dir / "part-synthetic-0.parquet").slice(0, 1)
    extra = extra.set_column(0, "transaction_id", pa.array(["late-one"]))
    pq.write_table(extra, extra_dir / "part-late.parquet")
    summary = _report(airflow, sink, "2026-11-30T00:00:00+00:00", timezone="America/Sao_Paulo")
    assert [p.name for p in reports.iterdir() if not p.name.startswith(".")] == ["date=2026-11-30"]
    assert not [p for p in reports.iterdir() if p.name.startswith(".")], "no staging left behind"
    want = expected(sink, "2026-11-30", "America/Sao_Paulo")
    assert_report_equals(reports / "date=2026-11-30", want)
    after = pq.read_table(reports / "date=2026-11-30" / "by_category.parquet")
    assert pc.sum(after["transaction_count"]).as_py() == pc.sum(before["transaction_count"]).as_py() + 1
    assert summary["transactions"] == pc.sum(after["transaction_count"]).as_py()
