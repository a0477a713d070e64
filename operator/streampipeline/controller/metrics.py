"""Prometheus metrics of the operator (served by :func:`serve` on ``--metrics-port``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from ..crd import PHASES

__all__ = ["REGISTRY", "forget_pipeline", "serve", "set_phase", "timed_reconcile"]

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter(
    "streampipeline_reconciles_total",
    "StreamPipeline reconciliations, by result (success, invalid, error).",
    ["result"],
    registry=REGISTRY,
)
ERRORS = Counter(
    "streampipeline_reconcile_errors_total",
    "Reconciliations that failed (and will be retried), by error kind.",
    ["kind"],
    registry=REGISTRY,
)
DURATION = Histogram(
    "streampipeline_reconcile_duration_seconds",
    "Time to reconcile one StreamPipeline (render + apply every child).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
PIPELINES = Gauge(
    "streampipeline_pipelines",
    "StreamPipelines known to this operator, by status.phase.",
    ["phase"],
    registry=REGISTRY,
)
for _phase in PHASES:
    PIPELINES.labels(phase=_phase).set(0)

_phases: dict[tuple[str, str], str] = {}
_lock = threading.Lock()


def _publish() -> None:
    counts = dict.fromkeys(PHASES, 0)
    for phase in _phases.values():
        counts[phase] = counts.get(phase, 0) + 1
    for phase, n in counts.items():
        PIPELINES.labels(phase=phase).set(n)


def set_phase(namespace: str, name: str, phase: str) -> None:
    with _lock:
        _phases[(namespace, name)] = phase
        _publish()


def forget_pipeline(namespace: str, name: str) -> None:
    with _lock:
        _phases.pop((namespace, name), None)
        _publish()


@contextmanager
def timed_reconcile() -> Iterator[dict[str, str]]:
    """Times the block and counts it: as ``error`` if it raises, else as the ``result`` the
    block left in the yielded dict (``success`` unless changed, e.g. to ``invalid``)."""
    start = time.perf_counter()
    outcome = {"result": "success"}
    try:
        yield outcome
    except Exception as exc:
        RECONCILES.labels(result="error").inc()
        ERRORS.labels(kind=type(exc).__name__).inc()
        raise
    else:
        RECONCILES.labels(result=outcome["result"]).inc()
    finally:
        DURATION.observe(time.perf_counter() - start)


def serve(port: int, addr: str = "0.0.0.0") -> None:
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread."""
    start_http_server(port, addr=addr, registry=REGISTRY)
