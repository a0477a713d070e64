"""Checks shared by the integration tests: the job's Parquet against the reference."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds

from spjobs import contract as C

from .reference import Expected, compute, read_topic


def read_dataset(path: Path) -> pd.DataFrame:
    files = sorted(path.rglob("*.parquet")) if path.exists() else []
    if not files:
        return pd.DataFrame()
    return ds.dataset(files, format="parquet", partitioning="hive").to_table().to_pandas()


def reference_for(bootstrap: str, job_config: dict) -> Expected:
    topics = job_config["kafka"]["topics"]
    return compute(
        read_topic(bootstrap, topics["customers"]["name"]),
        read_topic(bootstrap, topics["transactions"]["name"]),
        tuple(job_config["processing"]["ageBands"]),
    )


def assert_outputs_match(sink: Path, exp: Expected) -> dict[str, int]:
    """No loss, no duplicates, right reasons, exact aggregates.  Returns some figures."""
    txns = read_dataset(sink / C.OUT_TRANSACTIONS)
    dupes = txns["transaction_id"][txns["transaction_id"].duplicated()].tolist()
    assert not dupes, f"{len(dupes)} transaction ids written more than once, e.g. {dupes[:5]}"
    expected_ids = set(exp.transactions["transaction_id"])
    got_ids = set(txns["transaction_id"])
    assert got_ids == expected_ids, (
        f"missing {len(expected_ids - got_ids)} (e.g. {sorted(expected_ids - got_ids)[:3]}), "
        f"unexpected {len(got_ids - expected_ids)} (e.g. {sorted(got_ids - expected_ids)[:3]})"
    )
    merged = txns.merge(exp.transactions, on="transaction_id", suffixes=("", "_exp"))
    for col in ("customer_id", "amount", "category", "city", "state", "age_band"):
        bad = merged[merged[col].astype(str) != merged[f"{col}_exp"].astype(str)]
        assert bad.empty, f"column {col} differs for {len(bad)} rows:\n{bad[[col, col + '_exp']].head()}"
    assert (merged["year"].astype(int) == merged["year_exp"]).all()
    assert (merged["month"].astype(int) == merged["month_exp"]).all()

    customers = read_dataset(sink / C.OUT_CUSTOMERS)
    assert len(customers) == exp.customers
    assert not customers.duplicated(["customer_id", "kafka_partition", "kafka_offset"]).any()

    quarantine = read_dataset(sink / C.OUT_QUARANTINE)
    got = {(r.topic, int(r.partition), int(r.offset)): r.reason for r in quarantine.itertuples()}
    assert len(got) == len(quarantine), "a record was quarantined twice"
    assert got == exp.reasons, _diff(got, exp.reasons)
    # The raw payload is kept: only a record that had none (a tombstone) has none.
    no_value = quarantine["raw_value"].isna()
    assert (no_value == (quarantine["reason"] == C.REASON_NULL_VALUE)).all()
    assert quarantine["detail"].notna().all(), "every quarantined record says why"

    for name, keys in C.AGGREGATES.items():
        agg = read_dataset(sink / C.OUT_AGGREGATES / name)
        want = exp.aggregates[name]
        assert len(agg) == len(want), f"{name}: {len(agg)} rows, expected {len(want)}"
        keys = list(keys)
        for k in keys:
            if k in ("year", "month"):
                agg[k] = agg[k].astype(int)
                want[k] = want[k].astype(int)
        m = agg.merge(want, on=keys, suffixes=("", "_exp"), how="outer", indicator=True)
        assert (m["_merge"] == "both").all(), f"{name}: keys differ:\n{m[m['_merge'] != 'both'].head()}"
        assert (m["transaction_count"].astype(int) == m["transaction_count_exp"].astype(int)).all(), name
        assert all(Decimal(a) == Decimal(b) for a, b in zip(m["total_amount"], m["total_amount_exp"])), name
        assert all(Decimal(a) == Decimal(b) for a, b in zip(m["avg_amount"], m["avg_amount_exp"])), name
    return {
        "transactions": len(txns),
        "quarantine": len(quarantine),
        "customers": len(customers),
        **{f"reason:{k}": v for k, v in Counter(got.values()).items()},
    }


def _diff(got: dict, want: dict) -> str:
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    wrong = [(k, got[k], want[k]) for k in want if k in got and got[k] != want[k]]
    return f"quarantine differs: missing {missing[:5]} extra {extra[:5]} wrong reason {wrong[:5]}"
