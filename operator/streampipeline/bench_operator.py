"""``make bench`` (operator part): how fast the operator turns StreamPipelines into children.

Runs against the real control plane of the k8s tests (etcd + kube-apiserver +
kube-controller-manager, ``tests/harness/controlplane.py``) with the upstream Strimzi
``KafkaTopic`` and spark-operator ``SparkApplication`` CRDs and ours installed, and the
operator as a subprocess (``python -m streampipeline.cli operator -n NS``), exactly as in
the tests.  Measured:

* **single**: pipelines created one at a time; for each, the time from the create call
  returning to all 6 children (2 KafkaTopics, ConfigMap, PVC, Deployment, SparkApplication)
  existing.  Children are seen through watches (one per child kind, label selector
  ``app.kubernetes.io/managed-by``) started before the first create, so there is no polling
  error: the time is that of the ADDED event's arrival.
* **bulk**: many pipelines in one ``kubectl apply -f`` of a multi-document file; the time
  from starting the apply until every pipeline has all its children (and, as a further
  figure, until every pipeline has a ``status.phase`` for its generation).
* **baseline** for both, run in this process against the same API server: the same
  rendered children written straight from here, one server-side apply after another, with
  no operator in between.  Each single pipeline is followed by its baseline, so drift on a
  shared machine hits both; the figures are reported as ratios (operator / baseline).
* **RSS** of the operator process (and any children): idle after start-up, peak (``VmHWM``
  and the sampled maximum of the sum) and at the end, from ``/proc/<pid>/status``.

Figures, not pass/fail (the machine may be shared: load averages are recorded): printed as a
table and written as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from . import __version__
from .bench import report

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "bench"
# The baseline's children carry their own managed-by value: the operator does not watch them.
BASELINE_MANAGER = "streampipeline-bench"
MANAGED_SELECTOR = f"app.kubernetes.io/managed-by in (streampipeline-operator,{BASELINE_MANAGER})"
# (list path under /api or /apis, kind) of every child kind; 6 children per pipeline.
CHILD_KINDS = {
    "KafkaTopic": "/apis/kafka.strimzi.io/v1/namespaces/{ns}/kafkatopics",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "PersistentVolumeClaim": "/api/v1/namespaces/{ns}/persistentvolumeclaims",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "SparkApplication": "/apis/sparkoperator.k8s.io/v1beta2/namespaces/{ns}/sparkapplications",
}
PIPELINES_PATH = "/apis/streampipeline.io/v1alpha1/namespaces/{ns}/streampipelines"
CHILDREN_PER_PIPELINE = 6
AIMS = {"single_p95_s": 1.0, "bulk_s": 60.0, "rss_mb": 150.0}


def _shared_dir() -> Path:
    return Path(os.environ.get("STREAMPIPELINE_SHARED") or ROOT.parent / "shared")


def upstream_crds() -> list[Path]:
    crds = _shared_dir() / "crds"
    return [
        crds / "strimzi-1.2.0" / "043-Crd-kafkatopic.yaml",
        crds / "spark-operator-2.5.2" / "sparkoperator.k8s.io_sparkapplications.yaml",
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile (``q`` in 0..1) of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(q * len(sorted_values))))
    return sorted_values[rank - 1]


def _pipeline(name: str, base: dict[str, Any]) -> dict[str, Any]:
    doc = json.loads(json.dumps(base))
    doc["metadata"] = {"name": name, "namespace": NAMESPACE}
    return doc


# --- watching ------------------------------------------------------------------------------------


class ChildWatcher:
    """Records when each child (by owning pipeline) and each pipeline status is first seen.

    One thread per watched collection; raw JSON lines over the API client's connection (no
    model deserialisation, so the bench process stays light next to the operator).
    """

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        from kubernetes import client, config

        self._client, self._config = client, config
        self.kubeconfig, self.namespace = kubeconfig, namespace
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.children: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)  # pipeline -> child -> t
        self.status_at: dict[str, float] = {}  # pipeline -> first time phase set for its generation
        self.events = 0
        self._ready = threading.Barrier(len(CHILD_KINDS) + 2)
        self._stop = False
        self._errors: list[str] = []

    def _api(self):
        cfg = self._client.Configuration()
        self._config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=cfg)
        return self._client.ApiClient(configuration=cfg)

    def start(self) -> None:
        for kind, path in CHILD_KINDS.items():
            t = threading.Thread(
                target=self._run, args=(path.format(ns=self.namespace), MANAGED_SELECTOR, kind), daemon=True
            )
            t.start()
        t = threading.Thread(
            target=self._run,
            args=(PIPELINES_PATH.format(ns=self.namespace), "", "StreamPipeline"),
            daemon=True,
        )
        t.start()
        self._ready.wait(timeout=60)  # every watch is established (response headers received)

    def stop(self) -> None:
        # Closing a TLS connection another thread is reading from can block: the threads are
        # daemons and their connections end with the API server.
        self._stop = True

    def _run(self, path: str, selector: str, kind: str) -> None:
        from kubernetes.watch.watch import iter_resp_lines

        api = self._api()
        query = [("watch", "true"), ("timeoutSeconds", "3600"), ("allowWatchBookmarks", "false")]
        if selector:
            query.append(("labelSelector", selector))
        try:
            resp = api.call_api(
                path,
                "GET",
                query_params=query,
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
            )
        except Exception as exc:
            self._errors.append(f"{kind}: {exc}")
            self._ready.wait(timeout=60)
            return
        self._ready.wait(timeout=60)
        try:
            for line in iter_resp_lines(resp):
                now = time.monotonic()
                if self._stop:
                    return
                event = json.loads(line)
                if event.get("type") not in ("ADDED", "MODIFIED"):
                    continue
                obj = event["object"]
                meta = obj.get("metadata") or {}
                with self.changed:
                    self.events += 1
                    if kind == "StreamPipeline":
                        status = obj.get("status") or {}
                        if (
                            status.get("phase")
                            and status.get("observedGeneration") == meta.get("generation")
                            and meta["name"] not in self.status_at
                        ):
                            self.status_at[meta["name"]] = now
                    else:
                        owner = (meta.get("labels") or {}).get("app.kubernetes.io/instance")
                        if owner:
                            self.children[owner].setdefault((kind, meta["name"]), now)
                    self.changed.notify_all()
        except Exception as exc:  # e.g. the API server stopped
            if not self._stop:
                self._errors.append(f"{kind}: {exc}")

    def wait(self, names: list[str], timeout: float, status: bool = False) -> float | None:
        """Block until every named pipeline has all children (and a status, if asked);
        return the monotonic time the last one got there, or None on timeout."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                done = self.completed_at(names)
                if status and done is not None:
                    done = self.status_done_at(names)
                if done is not None:
                    return done
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.changed.wait(min(left, 1.0))

    def completed_at(self, names: list[str]) -> float | None:
        last = 0.0
        for n in names:
            seen = self.children.get(n, {})
            if len(seen) < CHILDREN_PER_PIPELINE:
                return None
            last = max(last, *seen.values())
        return last

    def status_done_at(self, names: list[str]) -> float | None:
        if not all(n in self.status_at for n in names):
            return None
        return max(self.status_at[n] for n in names)

    def complete_count(self, names: list[str]) -> int:
        with self.lock:
            return sum(1 for n in names if len(self.children.get(n, {})) >= CHILDREN_PER_PIPELINE)

    @property
    def errors(self) -> list[str]:
        return list(self._errors)


# --- the operator process ---------------------------------------------------------------------------


def _proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM of ``pid`` in kB ({} if it is gone)."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    except (OSError, ValueError):
        pass
    return out


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


class OperatorProcess:
    """``streampipeline operator -n NS`` as a subprocess, with an RSS sampler."""

    def __init__(self, kubeconfig: Path, namespace: str, log: Path, preexec_fn: Any = None) -> None:
        self.metrics_port, self.liveness_port = _free_port(), _free_port()
        self.log = log
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONUNBUFFERED": "1"}
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "streampipeline.cli", "operator", "--namespace", namespace,
                    "--metrics-port", str(self.metrics_port),
                    "--liveness", f"http://127.0.0.1:{self.liveness_port}/healthz",
                ],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT, preexec_fn=preexec_fn,
            )  # fmt: skip
        self.peak_sum_kb = 0
        self.processes = 1
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def rss_kb(self) -> tuple[int, int, int]:
        """(sum of VmRSS, sum of VmHWM, number of processes) over the operator and its children."""
        pids = _descendants(self.proc.pid)
        stats = [_proc_status(p) for p in pids]
        self.processes = max(self.processes, len(pids))
        return sum(s.get("VmRSS", 0) for s in stats), sum(s.get("VmHWM", 0) for s in stats), len(pids)

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            rss, _, _ = self.rss_kb()
            self.peak_sum_kb = max(self.peak_sum_kb, rss)

    def wait_healthy(self, timeout: float = 60) -> float:
        t0 = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=5):
                    break
            except OSError:
                if time.monotonic() - t0 > timeout:
                    raise RuntimeError(
                        f"operator not healthy after {timeout:.0f}s:\n{self.log_tail()}"
                    ) from None
                time.sleep(0.2)
        self._sampler.start()
        return time.monotonic() - t0

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            return r.read().decode()

    def cpu_seconds(self) -> float:
        return sum(_cpu_seconds(p) for p in _descendants(self.proc.pid))

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        self._stop.set()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _metric(text: str, name: str) -> float | None:
    m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else None


def _reconcile_figures(text: str) -> dict[str, Any]:
    count = _metric(text, "streampipeline_reconcile_duration_seconds_count")
    total = _metric(text, "streampipeline_reconcile_duration_seconds_sum")
    results = {
        m.group(1): int(float(m.group(2)))
        for m in re.finditer(r'^streampipeline_reconciles_total\{result="(\w+)"\} ([0-9.e+]+)$', text, re.M)
    }
    return {
        "count": int(count or 0),
        "mean_s": round(total / count, 4) if count else None,
        "results": results,
    }


# --- the benchmark ---------------------------------------------------------------------------------


def _direct_children(name: str, base: dict[str, Any]) -> list[dict[str, Any]]:
    """The children the operator renders for pipeline ``name`` (without owner references)."""
    from .render import children
    from .settings import Settings
    from .spec import parse_spec

    objs = children(parse_spec(name, _pipeline(name, base)["spec"], NAMESPACE), Settings())
    for obj in objs:
        obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] = BASELINE_MANAGER
    return objs


def _latency_figures(latencies: list[float]) -> dict[str, Any]:
    latencies = sorted(latencies)
    return {
        "p50_s": round(_quantile(latencies, 0.50), 3),
        "p95_s": round(_quantile(latencies, 0.95), 3),
        "max_s": round(latencies[-1], 3) if latencies else None,
        "mean_s": round(statistics.mean(latencies), 3) if latencies else None,
        "samples_s": [round(x, 3) for x in latencies],
    }


def bench_single(kube: Any, watcher: ChildWatcher, base: dict, n: int, timeout: float) -> dict[str, Any]:
    """Pipelines one at a time, each followed by its baseline: the same 6 children written
    straight from this process (server-side apply, one after another, as the operator does).

    The operator's time runs from its create call returning; the baseline's from before
    its first apply.  Alternating the two keeps machine drift out of their ratio.
    """
    operator_s: list[float] = []
    direct_s: list[float] = []
    timed_out: list[str] = []
    for i in range(n):
        name = f"single-{i:03d}"
        kube.create(_pipeline(name, base))
        created = time.monotonic()
        done = watcher.wait([name], timeout)
        if done is None:
            timed_out.append(name)
        else:
            operator_s.append(max(0.0, done - created))
        name = f"direct-{i:03d}"
        objs = _direct_children(name, base)
        started = time.monotonic()
        for obj in objs:
            kube.apply(obj)
        done = watcher.wait([name], timeout)
        if done is None:
            timed_out.append(name)
        else:
            direct_s.append(max(0.0, done - started))
    result = {"pipelines": n, **_latency_figures(operator_s), "timed_out": timed_out}
    result["direct"] = _latency_figures(direct_s)
    if operator_s and direct_s:
        ratio = _quantile(sorted(operator_s), 0.5) / _quantile(sorted(direct_s), 0.5)
        result["ratio_p50_vs_direct"] = round(ratio, 2)
    return result


def bench_bulk(cp: Any, watcher: ChildWatcher, base: dict, n: int, workdir: Path, timeout: float) -> dict:
    names = [f"bulk-{i:03d}" for i in range(n)]
    manifest = workdir / "bulk.yaml"
    manifest.write_text(yaml.safe_dump_all([_pipeline(name, base) for name in names], sort_keys=False))
    t0 = time.monotonic()
    cp.kubectl("apply", "-f", str(manifest), timeout=timeout)
    applied = time.monotonic() - t0
    done = watcher.wait(names, max(1.0, timeout - applied))
    complete = watcher.complete_count(names)
    status_done = watcher.wait(names, 60 if done else 0, status=True) if done else None
    with watcher.lock:
        per = sorted(
            max(watcher.children[nm].values()) - t0
            for nm in names
            if len(watcher.children.get(nm, {})) >= CHILDREN_PER_PIPELINE
        )
    return {
        "pipelines": n,
        "kubectl_apply_s": round(applied, 2),
        "all_children_s": round(done - t0, 2) if done else None,
        "all_status_s": round(status_done - t0, 2) if status_done else None,
        "complete": complete,
        "per_pipeline_p50_s": round(_quantile(per, 0.5), 2) if per else None,
        "per_pipeline_p95_s": round(_quantile(per, 0.95), 2) if per else None,
        "pipelines_per_s": round(n / (done - t0), 1) if done else None,
    }


def bench_bulk_direct(kube: Any, watcher: ChildWatcher, base: dict, n: int, timeout: float) -> dict:
    """The bulk figure's baseline: the same number of pipelines' children written straight
    from this process, one server-side apply after another."""
    names = [f"direct-bulk-{i:03d}" for i in range(n)]
    objs = [obj for name in names for obj in _direct_children(name, base)]
    t0 = time.monotonic()
    for obj in objs:
        kube.apply(obj)
    done = watcher.wait(names, timeout)
    return {"pipelines": n, "all_children_s": round(done - t0, 2) if done else None}


def run(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from harness import controlplane
    from harness.controlplane import ControlPlane, ensure_binaries

    from .controller.kube import Kube

    missing = [str(p) for p in upstream_crds() if not p.is_file()]
    if missing:
        raise SystemExit(f"upstream CRDs not found (set STREAMPIPELINE_SHARED): {missing}")
    base = yaml.safe_load((ROOT / "k8s" / "examples" / "pipeline.yaml").read_text())
    result: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        },
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "version": __version__,
        "aims": AIMS,
    }
    work = Path(tempfile.mkdtemp(prefix="sp-bench-operator-"))
    print("starting the control plane ...", flush=True)
    bin_dir = ensure_binaries(quiet=True)
    cp = ControlPlane(bin_dir).start()
    operator: OperatorProcess | None = None
    watcher: ChildWatcher | None = None
    try:
        result["control_plane_startup_s"] = round(cp.startup_seconds, 2)
        cp.apply_crds([*upstream_crds(), ROOT / "k8s" / "crd"])
        cp.kubectl("create", "namespace", NAMESPACE)
        print("starting the operator ...", flush=True)
        # The operator dies with this process, like the control plane (PR_SET_PDEATHSIG).
        die_with_parent = getattr(controlplane, "_die_with_parent", None) if sys.platform == "linux" else None
        operator = OperatorProcess(cp.kubeconfig, NAMESPACE, work / "operator.log", die_with_parent)
        result["operator_startup_s"] = round(operator.wait_healthy(), 2)
        time.sleep(2)  # let start-up settle before the idle figure
        idle_rss, _, _ = operator.rss_kb()
        cpu0 = operator.cpu_seconds()
        watcher = ChildWatcher(cp.kubeconfig, NAMESPACE)
        watcher.start()
        kube = Kube(watcher._api())

        print(f"{args.single} pipelines one at a time ...", flush=True)
        t0 = time.monotonic()
        result["single"] = bench_single(kube, watcher, base, args.single, args.timeout)
        result["single"]["wall_s"] = round(time.monotonic() - t0, 2)
        cpu1 = operator.cpu_seconds()
        result["single"]["operator_cpu_s"] = round(cpu1 - cpu0, 2)

        print(f"{args.bulk} pipelines in one kubectl apply ...", flush=True)
        result["bulk"] = bench_bulk(cp, watcher, base, args.bulk, work, args.timeout)
        result["bulk"]["operator_cpu_s"] = round(operator.cpu_seconds() - cpu1, 2)
        print(f"baseline: {args.bulk} pipelines' children written directly ...", flush=True)
        direct = bench_bulk_direct(kube, watcher, base, args.bulk, args.timeout)
        result["bulk"]["direct"] = direct
        if direct["all_children_s"] and result["bulk"]["all_children_s"]:
            result["bulk"]["ratio_vs_direct"] = round(
                result["bulk"]["all_children_s"] / direct["all_children_s"], 2
            )
        if args.settle:
            time.sleep(args.settle)  # e.g. to include a resync pass in the RSS figures
        end_rss, hwm, _ = operator.rss_kb()
        result["rss"] = {
            "idle_mb": round(idle_rss / 1024, 1),
            "peak_mb": round(max(hwm, operator.peak_sum_kb) / 1024, 1),
            "end_mb": round(end_rss / 1024, 1),
            "processes": operator.processes,
            "pipelines_at_end": args.single + args.bulk,
        }
        result["operator_cpu_s_total"] = round(operator.cpu_seconds() - cpu0, 2)
        try:
            result["reconciles"] = _reconcile_figures(operator.metrics())
        except OSError as exc:
            result["reconciles"] = {"error": str(exc)}
        result["watch_events"] = watcher.events
        if watcher.errors:
            result["watch_errors"] = watcher.errors
        if operator.proc.poll() is not None:
            result["operator_exited"] = operator.proc.returncode
        result["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        if args.keep_log:
            shutil.copy(work / "operator.log", args.keep_log)
    finally:
        if watcher is not None:
            watcher.stop()
        if operator is not None:
            operator.stop()
        cp.stop()
        shutil.rmtree(work, ignore_errors=True)
    return result


def format_table(r: dict[str, Any]) -> str:
    s, b, m = r.get("single") or {}, r.get("bulk") or {}, r.get("rss") or {}
    aims = r.get("aims") or AIMS
    rows = [("figure", "measured", "detail", "aim")]
    if s:
        rows.append(
            (
                f"apply -> 6 children ({s['pipelines']} one at a time)",
                f"p50 {s['p50_s']}s, p95 {s['p95_s']}s",
                f"max {s['max_s']}s; direct writes p50 {s['direct']['p50_s']}s "
                f"(operator {s.get('ratio_p50_vs_direct')}x)"
                + (f", {len(s['timed_out'])} timed out" if s["timed_out"] else ""),
                f"p95 <= {aims['single_p95_s']}s",
            )
        )
    if b:
        total = (
            f"{b['all_children_s']}s"
            if b["all_children_s"] is not None
            else f"timeout ({b['complete']} done)"
        )
        rows.append(
            (
                f"{b['pipelines']} pipelines, one kubectl apply",
                total,
                f"apply {b['kubectl_apply_s']}s, all status {b['all_status_s']}s, "
                f"{b['pipelines_per_s']} pipelines/s; direct writes {b['direct']['all_children_s']}s "
                f"(operator {b.get('ratio_vs_direct')}x)",
                f"<= {aims['bulk_s']:.0f}s",
            )
        )
    if m:
        rows.append(
            (
                "operator RSS",
                f"peak {m['peak_mb']} MB",
                f"idle {m['idle_mb']} MB, end {m['end_mb']} MB ({m['pipelines_at_end']} pipelines, "
                f"{m['processes']} process{'es' if m['processes'] != 1 else ''})",
                f"<= {aims['rss_mb']:.0f} MB",
            )
        )
    rec = r.get("reconciles") or {}
    if rec.get("count"):
        rows.append(
            (
                "reconciles",
                f"{rec['count']}",
                f"mean {rec['mean_s']}s each, operator CPU {r.get('operator_cpu_s_total')}s",
                "",
            )
        )
    mach = r.get("machine", {})
    rows.append(
        (
            "machine",
            f"{mach.get('cpus')} CPUs",
            f"load {mach.get('loadavg_before')} -> {mach.get('loadavg_after')}",
            "",
        )
    )
    width = [max(len(x[i]) for x in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, width)).rstrip() for row in rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="streampipeline.bench_operator", description=__doc__.splitlines()[0])
    p.add_argument("--output", default="out/bench-operator.json")
    p.add_argument("--single", type=int, default=50, help="pipelines created one at a time")
    p.add_argument("--bulk", type=int, default=200, help="pipelines in one kubectl apply")
    p.add_argument("--timeout", type=float, default=300, help="per phase, seconds")
    p.add_argument("--settle", type=float, default=0, help="seconds to wait before the end RSS figure")
    p.add_argument("--keep-log", metavar="FILE", help="copy the operator's log here")
    args = p.parse_args(argv)
    faulthandler.register(signal.SIGUSR1)  # kill -USR1 <pid>: dump every thread's stack
    # SIGTERM unwinds like Ctrl-C, so the control plane and the operator are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = run(args)
    report(result, format_table(result), Path(args.output))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
