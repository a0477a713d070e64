"""The sink's Parquet outputs, read with pyarrow: filtered, limited, never unbounded.

Rows are streamed batch by batch and reading stops at ``limit`` (plus one, to say
whether there is more), so a request costs at most one record batch beyond what it
returns however large a dataset grows.  The job publishes files by atomic rename, so a
reader sees whole files; one that vanishes under a read (a re-run's cleanup) is retried.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from spjobs import contract as C


@dataclass(frozen=True)
class Dataset:
    """One output under the sink: its directory, the columns it may be filtered on."""

    name: str
    path: str
    filters: tuple[str, ...]
    hive: bool = False


DATASETS: dict[str, Dataset] = {
    C.OUT_TRANSACTIONS: Dataset(
        C.OUT_TRANSACTIONS,
        C.OUT_TRANSACTIONS,
        ("year", "month", "customer_id", "category", "city", "payment_method", "transaction_id"),
        hive=True,
    ),
    C.OUT_CUSTOMERS: Dataset(C.OUT_CUSTOMERS, C.OUT_CUSTOMERS, ("customer_id", "state", "city")),
    C.OUT_QUARANTINE: Dataset(
        C.OUT_QUARANTINE,
        C.OUT_QUARANTINE,
        ("reason", "topic", "record_type", "transaction_id", "customer_id"),
    ),
    **{name: Dataset(name, f"{C.OUT_AGGREGATES}/{name}", keys) for name, keys in C.AGGREGATES.items()},
}
INT_COLUMNS = frozenset({"year", "month", "partition"})


class DatasetError(ValueError):
    """A filter that does not apply to the dataset (the message names it)."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(value).decode("ascii")
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


def _files(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*.parquet") if not p.name.startswith((".", "_")))


def _expression(spec: Dataset, schema: pa.Schema, filters: dict[str, str]) -> ds.Expression | None:
    expr = None
    for column, raw in filters.items():
        if column not in spec.filters:
            raise DatasetError(
                f"{spec.name} cannot be filtered on {column!r}; it can on: {', '.join(spec.filters)}"
            )
        if column not in schema.names:
            continue  # nothing written yet with that column: no row matches
        if column in INT_COLUMNS:
            try:
                value: Any = int(raw)
            except ValueError as exc:
                raise DatasetError(f"{column} must be an integer, got {raw!r}") from exc
        else:
            value = raw
        term = pc.field(column) == pa.scalar(value, type=schema.field(column).type)
        expr = term if expr is None else expr & term
    return expr


def read(sink: Path, name: str, filters: dict[str, str], limit: int, max_bytes: int) -> dict[str, Any]:
    """Up to ``limit`` rows of dataset ``name`` matching every filter (column == value)."""
    spec = DATASETS[name]
    root = sink / spec.path
    for attempt in range(3):
        try:
            return _read(spec, root, filters, limit, max_bytes)
        except FileNotFoundError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _read(spec: Dataset, root: Path, filters: dict[str, str], limit: int, max_bytes: int) -> dict[str, Any]:
    files = _files(root) if root.is_dir() else []
    out: dict[str, Any] = {
        "dataset": spec.name,
        "filters": filters,
        "limit": limit,
        "rows": [],
        "truncated": False,
    }
    if not files:
        for column in filters:
            if column not in spec.filters:
                raise DatasetError(
                    f"{spec.name} cannot be filtered on {column!r}; it can on: {', '.join(spec.filters)}"
                )
        return out
    partitioning = ds.partitioning(flavor="hive") if spec.hive else None
    dataset = ds.dataset(files, format="parquet", partitioning=partitioning, partition_base_dir=str(root))
    expr = _expression(spec, dataset.schema, filters)
    if any(c in filters and c not in dataset.schema.names for c in spec.filters):
        return out
    rows: list[dict[str, Any]] = []
    size = 0
    for batch in dataset.to_batches(filter=expr, batch_size=max(limit + 1, 64)):
        for row in batch.to_pylist():
            if len(rows) >= limit:
                out["truncated"] = True
                break
            row = {k: _jsonable(v) for k, v in row.items()}
            size += len(repr(row))
            if size > max_bytes:
                out["truncated"] = True
                break
            rows.append(row)
        if out["truncated"]:
            break
    out["rows"] = rows
    return out
