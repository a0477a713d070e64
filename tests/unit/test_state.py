"""The exactly-once machinery without Spark: publishing, undo, snapshots, delta selection."""

from __future__ import annotations

import json

import pyarrow as pa

from spjobs.processor.state import DeltaTable, Publisher, Snapshots, replace_file


def stage(pub: Publisher, batch: int, dataset: str, rel: str, text: str = "x") -> None:
    f = pub.stage_dir(batch, dataset) / rel
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(text)


def test_publish_names_files_by_batch_and_undo_removes_exactly_them(tmp_path):
    sink = tmp_path / "sink"
    pub = Publisher(sink, tmp_path / "work")
    stage(pub, 3, "transactions", "year=2026/month=11/part-0.parquet")
    stage(pub, 3, "quarantine", "part-0.parquet")
    rels = pub.publish(3, ["transactions", "quarantine"])
    assert rels == [
        "transactions/year=2026/month=11/batch-0000000003-part-0.parquet",
        "quarantine/batch-0000000003-part-0.parquet",
    ]
    stage(pub, 4, "quarantine", "part-0.parquet")
    pub.publish(4, ["quarantine"])
    pub.undo(3)  # the batch is re-run after a crash
    assert sorted(p.name for p in sink.rglob("*.parquet")) == ["batch-0000000004-part-0.parquet"]


def test_undo_of_a_batch_that_crashed_while_staging(tmp_path):
    pub = Publisher(tmp_path / "sink", tmp_path / "work")
    stage(pub, 5, "transactions", "part-0.parquet")
    pub.undo(5)
    assert not pub.stage_dir(5, "transactions").exists()


def test_delta_table_reads_only_earlier_committed_batches(tmp_path):
    t = DeltaTable(tmp_path / "ids")
    for b in (0, 1, 2):
        d = t.delta_path(b)
        d.mkdir()
        (d / "_SUCCESS").touch()
    t.delta_path(3).mkdir()  # an interrupted write: no _SUCCESS
    assert [p.rsplit("-", 1)[1] for p in t.paths_before(2)] == ["0000000000", "0000000001"]
    assert len(t.paths_before(10)) == 3
    t.discard(2)
    assert not t.delta_path(2).exists() and not t.delta_path(3).exists()


def test_snapshots_read_the_latest_committed_before_the_batch(tmp_path):
    s = Snapshots(tmp_path / "snap", keep=2)
    for b in range(4):
        s.write(b, {"t.parquet": pa.table({"n": [b]})}, {"c.json": {"b": b}})
    assert s.read_json(3, "c.json", {}) == {"b": 2}
    assert s.read_table(3, "t.parquet").column("n").to_pylist() == [2]
    assert s.read_json(1, "c.json", {"none": True}) == {"none": True}, "older snapshots were pruned"
    s.discard(3)
    assert s.read_json(99, "c.json", {}) == {"b": 2}
    assert json.loads((tmp_path / "snap" / "snap-0000000002" / "c.json").read_text()) == {"b": 2}


def test_replace_file_is_atomic_rename(tmp_path):
    src = tmp_path / "a"
    src.write_text("new")
    dst = tmp_path / "out" / "part-00000.parquet"
    dst.parent.mkdir()
    dst.write_text("old")
    replace_file(src, dst)
    assert dst.read_text() == "new" and not list(dst.parent.glob(".*.tmp"))


def test_delta_table_write_read_and_compact(tmp_path):
    t = DeltaTable(tmp_path / "ids")
    for b in range(4):
        t.write(b, pa.table({"transaction_id": [f"T{b}a", f"T{b}b"]}))
    assert sum(x.num_rows for x in t.read_before(3)) == 6
    t.compact(2)
    assert [p.rsplit("/", 1)[1] for p in t.paths_before(4)] == ["base-0000000002", "delta-0000000003"]
    ids = sorted(i for x in t.read_before(4) for i in x["transaction_id"].to_pylist())
    assert ids == sorted(f"T{b}{s}" for b in range(4) for s in "ab")


def test_compaction_also_removes_covered_directories_that_lost_their_marker(tmp_path):
    t = DeltaTable(tmp_path / "ids")
    for b in range(4):
        t.write(b, pa.table({"transaction_id": [f"T{b}"]}))
    t.compact(1)  # base-1 holds batches 0 and 1
    # The removal of delta-0 after that compaction was interrupted just after its marker went.
    t.write(0, pa.table({"transaction_id": ["T0"]}))
    (t.delta_path(0) / "_SUCCESS").unlink()
    t.compact(2)
    left = sorted(p.name for p in (tmp_path / "ids").iterdir())
    assert left == ["base-0000000002", "delta-0000000003"]
    ids = sorted(i for x in t.read_before(4) for i in x["transaction_id"].to_pylist())
    assert ids == ["T0", "T1", "T2", "T3"]


def test_compaction_keeps_only_what_the_filter_keeps(tmp_path):
    t = DeltaTable(tmp_path / "ids")
    for b in range(3):
        t.write(b, pa.table({"transaction_id": [f"T{b}"], "n": [b]}))
    t.compact(2, keep=lambda tbl: tbl.filter(pa.compute.greater_equal(tbl["n"], 1)))
    assert [i for x in t.read_before(3) for i in x["transaction_id"].to_pylist()] == ["T1", "T2"]


def test_each_file_is_flushed_before_what_vouches_for_it_and_each_directory_after(tmp_path, monkeypatch):
    """A node crash keeps only what reached the disk: data before markers, renames and
    manifests; directory entries once made.  Records every fsync and what existed then."""
    from spjobs.processor import state

    flushed: list[tuple[str, bool]] = []  # (path relative to tmp_path, a marker existed beside it)
    real = state.fsync_path

    def record(path):
        p = type(tmp_path)(path)
        beside = p.parent if p.is_file() else p
        has_marker = any((beside / m).exists() for m in ("_SUCCESS", "_COMMITTED"))
        flushed.append((str(p.relative_to(tmp_path)), has_marker))
        real(p)

    monkeypatch.setattr(state, "fsync_path", record)
    table = pa.table({"id": ["a", "b"]})

    DeltaTable(tmp_path / "ids").write(7, table)
    assert flushed == [
        ("ids/delta-0000000007/part-00000.parquet", False),  # data, before the marker
        ("ids/delta-0000000007", True),  # the marker's entry (after the data)
        ("ids", False),  # the delta directory's entry
    ]

    flushed.clear()
    Snapshots(tmp_path / "snaps").write(7, {"agg.parquet": table}, {"counters.json": {"n": 2}})
    assert flushed == [
        ("snaps/snap-0000000007/agg.parquet", False),
        ("snaps/snap-0000000007/counters.json", False),
        ("snaps/snap-0000000007", True),
        ("snaps", False),
    ]

    flushed.clear()
    pub = Publisher(tmp_path / "sink", tmp_path / "work")
    (tmp_path / "sink" / "transactions").mkdir(parents=True)
    stage(pub, 7, "transactions", "year=2026/month=11/part-0.parquet")
    pub.publish(7, ["transactions"])
    paths = [p for p, _ in flushed]
    # the manifest (data, then its rename) before any move; then the new entries, deepest first
    assert paths == [
        "work/manifests/.batch-0000000007.json.tmp",
        "work/manifests",
        "sink/transactions/year=2026/month=11",
        "sink/transactions/year=2026",
        "sink/transactions",
    ]

    flushed.clear()
    snapshot = tmp_path / "snaps" / "snap-0000000007" / "agg.parquet"
    replace_file(snapshot, tmp_path / "sink" / "agg" / "part.parquet")
    assert [p for p, _ in flushed] == ["sink/agg/.part.parquet.tmp", "sink/agg"]
