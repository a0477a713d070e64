"""Batch-versioned state and idempotent publishing: the exactly-once machinery.

Spark writes a micro-batch's offsets to its checkpoint *before* running it and marks it
committed *after* ``foreachBatch`` returns, so after a crash batch N runs again on the
same input.  Everything here is therefore keyed by batch id:

* state (customer versions, accepted transaction ids) is written as one delta per
  batch, and batch N reads only deltas < N: a re-run sees exactly what the first run saw;
* small state (aggregate totals, cumulative counters) is a snapshot per batch;
* output files are staged, then moved into the datasets under names carrying the batch
  id, and a manifest lists them; a re-run first deletes what the manifest lists.

The result: any SIGKILL followed by a restart leaves no missing and no duplicated row.

A node crash or power loss loses what is only in the page cache, so every file is flushed
(``fsync``) before the marker, rename or manifest that vouches for it, and each directory
after the entries that matter were made in it: when ``foreachBatch`` returns, and Spark
writes its commit, the whole batch is on disk.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def _batch_name(prefix: str, batch_id: int) -> str:
    return f"{prefix}-{batch_id:010d}"


def _batch_of(name: str) -> int:
    return int(name.rsplit("-", 1)[1].split(".")[0])


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a directory's entries, to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def mark(path: Path) -> None:
    """Create a marker file and make its directory entry (and the files flushed before it) durable."""
    path.touch()
    fsync_path(path.parent)


def write_table(table: pa.Table, path: Path, **options: object) -> None:
    """A Parquet file, flushed to disk."""
    pq.write_table(table, path, **options)
    fsync_path(path)


def write_part(table: pa.Table, directory: Path) -> None:
    """One Parquet file in ``directory`` (named as Spark names its parts), flushed to disk."""
    directory.mkdir(parents=True, exist_ok=True)
    write_table(table, directory / "part-00000.parquet", compression="zstd")


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(path.parent)


class DeltaTable:
    """An append-only table stored as per-batch deltas plus occasional compacted bases.

    Layout: ``delta-<batch>/`` (one Parquet file) and ``base-<batch>/`` holding
    every row of batches <= <batch>.  A base is only used once its ``_SUCCESS`` exists.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _dirs(self, prefix: str) -> list[tuple[int, Path]]:
        found = []
        for p in self.root.glob(f"{prefix}-*"):
            if p.is_dir() and not p.name.endswith(".tmp") and (p / "_SUCCESS").exists():
                found.append((_batch_of(p.name), p))
        return sorted(found)

    def paths_before(self, batch_id: int) -> list[str]:
        """Parquet dirs holding every row of batches < ``batch_id``."""
        bases = [(b, p) for b, p in self._dirs("base") if b < batch_id]
        start = bases[-1][0] if bases else -1
        paths = [str(bases[-1][1])] if bases else []
        paths += [str(p) for b, p in self._dirs("delta") if start < b < batch_id]
        return paths

    def delta_path(self, batch_id: int) -> Path:
        return self.root / _batch_name("delta", batch_id)

    def discard(self, batch_id: int) -> None:
        """Forget what an interrupted run of ``batch_id`` (or a later one) left behind."""
        for p in self.root.glob("delta-*"):
            if _batch_of(p.name) >= batch_id:
                shutil.rmtree(p, ignore_errors=True)
        for p in self.root.glob("*.tmp"):
            shutil.rmtree(p, ignore_errors=True)

    def write(self, batch_id: int, table: pa.Table) -> None:
        """Write batch ``batch_id``'s delta; it counts only once ``_SUCCESS`` exists."""
        target = self.delta_path(batch_id)
        shutil.rmtree(target, ignore_errors=True)
        write_part(table, target)
        mark(target / "_SUCCESS")
        fsync_path(self.root)

    def read_before(self, batch_id: int) -> list[pa.Table]:
        """Every row of batches < ``batch_id``, as one table per base/delta."""
        return [pq.read_table(p) for p in self.paths_before(batch_id)]

    def compact(self, upto: int, keep: Callable[[pa.Table], pa.Table] | None = None) -> None:
        """Fold everything <= ``upto`` (all committed) into ``base-<upto>``; drop what it covers.

        ``keep`` filters the folded rows (state that has expired need not stay on disk)."""
        paths = self.paths_before(upto + 1)
        if not paths or (len(paths) == 1 and keep is None):
            return
        target = self.root / _batch_name("base", upto)
        if not (target / "_SUCCESS").exists():
            tmp = target.with_name(target.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tables = [pq.read_table(p) for p in paths]
            folded = pa.concat_tables(tables, promote_options="permissive")
            write_part(keep(folded) if keep else folded, tmp)
            mark(tmp / "_SUCCESS")
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
            fsync_path(self.root)  # the base is durable before the deltas it covers go
        # Everything else <= upto goes, with or without its marker: a directory whose
        # marker an interrupted removal already took is garbage too.
        for p in [*self.root.glob("delta-*"), *self.root.glob("base-*")]:
            if not p.name.endswith(".tmp") and _batch_of(p.name) <= upto and p != target:
                shutil.rmtree(p, ignore_errors=True)


class Snapshots:
    """Small per-batch snapshots (Arrow tables and JSON); the last few are kept."""

    def __init__(self, root: Path, keep: int = 5) -> None:
        self.root = root
        self.keep = keep
        root.mkdir(parents=True, exist_ok=True)

    def _committed(self) -> list[tuple[int, Path]]:
        return sorted((_batch_of(p.name), p) for p in self.root.glob("snap-*") if (p / "_COMMITTED").exists())

    def latest_before(self, batch_id: int) -> tuple[int, Path] | None:
        older = [(b, p) for b, p in self._committed() if b < batch_id]
        return older[-1] if older else None

    def read_json(self, batch_id: int, name: str, default: dict) -> dict:
        found = self.latest_before(batch_id)
        if found is None or not (found[1] / name).exists():
            return default
        return json.loads((found[1] / name).read_text())

    def read_table(self, batch_id: int, name: str) -> pa.Table | None:
        found = self.latest_before(batch_id)
        if found is None or not (found[1] / name).exists():
            return None
        return pq.read_table(found[1] / name)

    def write(self, batch_id: int, tables: dict[str, pa.Table], docs: dict[str, dict]) -> Path:
        d = self.root / _batch_name("snap", batch_id)
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        for name, table in tables.items():
            write_table(table, d / name)
        for name, doc in docs.items():
            (d / name).write_text(json.dumps(doc, indent=1, sort_keys=True, default=str))
            fsync_path(d / name)
        mark(d / "_COMMITTED")
        fsync_path(self.root)
        for _, old in self._committed()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return d

    def discard(self, batch_id: int) -> None:
        for p in self.root.glob("snap-*"):
            if _batch_of(p.name) >= batch_id:
                shutil.rmtree(p, ignore_errors=True)


class Publisher:
    """Moves a batch's staged files into the datasets exactly once per batch id."""

    def __init__(self, sink: Path, work: Path) -> None:
        self.sink = sink
        self.staging = work / "staging"
        self.manifests = work / "manifests"
        self.manifests.mkdir(parents=True, exist_ok=True)
        self.staging.mkdir(parents=True, exist_ok=True)

    def stage_dir(self, batch_id: int, dataset: str) -> Path:
        return self.staging / _batch_name("batch", batch_id) / dataset

    def undo(self, batch_id: int) -> None:
        """Delete whatever an earlier, interrupted run of this batch published or staged."""
        manifest = self.manifests / f"{_batch_name('batch', batch_id)}.json"
        if manifest.exists():
            for rel in json.loads(manifest.read_text()):
                (self.sink / rel).unlink(missing_ok=True)
            manifest.unlink()
        shutil.rmtree(self.staging / _batch_name("batch", batch_id), ignore_errors=True)

    def publish(self, batch_id: int, datasets: Iterable[str]) -> list[str]:
        """Move staged Parquet files to ``<sink>/<dataset>/.../batch-<id>-<part>.parquet``."""
        moves: list[tuple[Path, Path]] = []
        prefix = _batch_name("batch", batch_id)
        for dataset in datasets:
            stage = self.stage_dir(batch_id, dataset)
            for f in sorted(stage.rglob("*.parquet")):
                rel = f.relative_to(stage)
                moves.append((f, self.sink / dataset / rel.parent / f"{prefix}-{rel.name}"))
        rels = [str(dst.relative_to(self.sink)) for _, dst in moves]
        # The manifest is written before the first move, so undo() can always clean up.
        atomic_write_text(self.manifests / f"{prefix}.json", json.dumps(rels))
        for src, dst in moves:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)  # the staged file's data was flushed by write_part
        # Every directory between a moved file and the sink holds a new entry or may
        # (year=/month= made just now): flushed deepest first.
        dirs = {d for _, dst in moves for d in dst.parents if self.sink in d.parents}
        for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            fsync_path(d)
        shutil.rmtree(self.staging / prefix, ignore_errors=True)
        return rels

    def forget_before(self, batch_id: int) -> None:
        """Manifests of committed batches are never needed again."""
        for m in self.manifests.glob("batch-*.json"):
            if _batch_of(m.name) < batch_id:
                m.unlink(missing_ok=True)


def replace_file(src: Path, dst: Path) -> None:
    """Publish a single-file dataset atomically (readers see the old or the new file)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    fsync_path(tmp)
    os.replace(tmp, dst)
    fsync_path(dst.parent)
