"""The daily batch report over one day of the pipeline's ``transactions/`` Parquet.

One day is ``[day 00:00, next day 00:00)`` of ``event_time`` in a time zone (UTC by
default).  ``transactions/`` is partitioned by the UTC ``year``/``month`` of
``event_time``, so a day in another zone can span two ``month=`` partitions: every
partition the window touches is read, and rows are selected by ``event_time``.

Four tables, each written as ``<report>/date=YYYY-MM-DD/<table>.parquet``: totals by
category, by city, the top customers, and the period (UTC year, month) x state x age band
roll-up.  Amounts are summed as exact decimals and carried as integer cents too.  The
date's directory is replaced as a whole (built beside it, then renamed), so a re-run of a
date leaves exactly one copy, and a reader never sees half a report.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

AMOUNT = pa.decimal128(18, 2)
TABLES = {
    "by_category": ("category",),
    "by_city": ("city",),
    "top_customers": ("customer_id",),
    "by_period_state_age_band": ("year", "month", "state", "age_band"),
}
COLUMNS = ("transaction_id", "customer_id", "event_time", "amount", "category", "city", "state", "age_band")

__all__ = ["TABLES", "daily_report", "day_window", "read_day", "write_report"]


def day_window(day: date, tz: str = "UTC") -> tuple[datetime, datetime]:
    """The UTC instants where ``day`` starts and ends in zone ``tz``."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(0), zone)
    end = datetime.combine(day + timedelta(days=1), time(0), zone)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def _months(start: datetime, end: datetime) -> list[tuple[int, int]]:
    months, y, m = [], start.year, start.month
    last = end - timedelta(microseconds=1)
    while (y, m) <= (last.year, last.month):
        months.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return months


def read_day(transactions: str | Path, day: date, tz: str = "UTC") -> pa.Table:
    """The day's valid transactions, with the partition's ``year``/``month`` as columns."""
    start, end = day_window(day, tz)
    root = Path(transactions)
    parts = []
    for y, m in _months(start, end):
        directory = root / f"year={y}" / f"month={m}"
        if not directory.is_dir():
            continue
        data = ds.dataset(str(directory), format="parquet")
        ts = data.schema.field("event_time").type
        naive = ts.tz is None
        lo = pa.scalar(start.replace(tzinfo=None) if naive else start, type=ts)
        hi = pa.scalar(end.replace(tzinfo=None) if naive else end, type=ts)
        t = data.to_table(
            columns=list(COLUMNS), filter=(ds.field("event_time") >= lo) & (ds.field("event_time") < hi)
        )
        t = t.append_column("year", pa.array([y] * t.num_rows, pa.int32()))
        t = t.append_column("month", pa.array([m] * t.num_rows, pa.int32()))
        parts.append(t)
    if not parts:
        schema = pa.schema([(c, pa.string()) for c in COLUMNS]).set(
            COLUMNS.index("amount"), pa.field("amount", pa.decimal128(12, 2))
        )
        empty = schema.empty_table()
        return empty.append_column("year", pa.array([], pa.int32())).append_column(
            "month", pa.array([], pa.int32())
        )
    return pa.concat_tables(parts, promote_options="default")


def _rollup(t: pa.Table, keys: tuple[str, ...]) -> pa.Table:
    cents = pc.cast(pc.multiply(t["amount"], pa.scalar(100, pa.decimal128(3, 0))), pa.int64())
    t = t.append_column("cents", cents)
    g = t.group_by(list(keys)).aggregate([("transaction_id", "count"), ("cents", "sum")])
    total_cents = pc.cast(g["cents_sum"], pa.int64())
    out = {k: g[k] for k in keys}
    out["transaction_count"] = pc.cast(g["transaction_id_count"], pa.int64())
    out["total_amount"] = pc.divide(
        pc.cast(total_cents, pa.decimal128(20, 0)), pa.scalar(100, pa.decimal128(3, 0))
    )
    out["total_amount"] = pc.cast(out["total_amount"], AMOUNT)
    out["total_cents"] = total_cents
    return pa.table(out)


def daily_report(t: pa.Table, top: int = 10) -> dict[str, pa.Table]:
    """The four tables for one day's rows (each sorted, so equal inputs give equal files)."""
    tables = {}
    for name, keys in TABLES.items():
        r = _rollup(t, keys)
        if name == "top_customers":
            r = r.sort_by([("total_cents", "descending"), ("customer_id", "ascending")]).slice(0, top)
            r = r.append_column("rank", pa.array(range(1, r.num_rows + 1), pa.int32()))
        else:
            r = r.sort_by([(k, "ascending") for k in keys])
        tables[name] = r
    return tables


def write_report(tables: dict[str, pa.Table], report_root: str | Path, day: date) -> Path:
    """Replace ``<report_root>/date=YYYY-MM-DD/`` with ``tables`` as a whole."""
    root = Path(report_root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"date={day.isoformat()}"
    staging = root / f".staging-{day.isoformat()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        for name, table in tables.items():
            pq.write_table(table, staging / f"{name}.parquet", compression="zstd")
        old = None
        if final.exists():
            old = root / f".old-{day.isoformat()}-{uuid.uuid4().hex[:8]}"
            final.rename(old)
        staging.rename(final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def run(
    sink_path: str | Path, day: date, *, tz: str = "UTC", report_path: str | None = None, top: int = 10
) -> dict[str, Any]:
    """Read, compute and write one day's report; return what a log line or XCom should show."""
    rows = read_day(Path(sink_path) / "transactions", day, tz)
    tables = daily_report(rows, top)
    target = write_report(tables, report_path or Path(sink_path) / "reports" / "daily", day)
    start, end = day_window(day, tz)
    total = pc.sum(tables["by_category"]["total_cents"]).as_py() or 0
    return {
        "date": day.isoformat(),
        "timezone": tz,
        "window_utc": [start.isoformat(), end.isoformat()],
        "path": str(target),
        "transactions": rows.num_rows,
        "total_amount": f"{total // 100}.{total % 100:02d}",
        "months": sorted(
            {f"{y}-{m:02d}" for y, m in zip(rows["year"].to_pylist(), rows["month"].to_pylist())}
        ),
        "rows": {name: t.num_rows for name, t in tables.items()},
    }
