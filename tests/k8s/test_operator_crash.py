"""The operator killed in the middle of reconciling converges after a restart, with no
duplicate children, and objects it cannot handle never crash it."""

from __future__ import annotations

import signal
import time

import pytest
import yaml
from conftest import EXAMPLE, launch_operator, stop_operator
from k8s_util import apply_under_relaxed_crd, wait_for

pytestmark = pytest.mark.k8s

NS = "crash-test"
PIPELINES = [f"p{i}" for i in range(6)]
KINDS = ["kafkatopics", "configmaps", "persistentvolumeclaims", "deployments", "sparkapplications"]
PER_PIPELINE = {
    "kafkatopics": 2,
    "configmaps": 1,
    "persistentvolumeclaims": 1,
    "deployments": 1,
    "sparkapplications": 1,
}


def _manifests() -> str:
    base = yaml.safe_load(EXAMPLE.read_text())
    docs = []
    for name in PIPELINES:
        doc = yaml.safe_load(yaml.safe_dump(base))
        doc["metadata"] = {"name": name, "namespace": NS}
        docs.append(doc)
    return yaml.safe_dump_all(docs)


def _children(cp) -> dict[str, dict[str, int]]:
    """Per pipeline, per kind: how many children carry its instance label."""
    counts: dict[str, dict[str, int]] = {p: dict.fromkeys(KINDS, 0) for p in PIPELINES}
    for kind in KINDS:
        out = cp.kubectl(
            "get",
            kind,
            "-n",
            NS,
            "-o",
            'jsonpath={range .items[*]}{.metadata.labels.app\\.kubernetes\\.io/instance}{"\\n"}{end}',
        )
        for inst in out.stdout.split():
            if inst in counts:
                counts[inst][kind] += 1
    return counts


def test_killed_mid_reconcile_converges_without_duplicates(cp, tmp_path):
    cp.kubectl("create", "namespace", NS)
    log = tmp_path / "operator.log"
    op = launch_operator(cp, NS, log)
    try:
        cp.kubectl("apply", "-f", "-", input=_manifests())
        # Kill it while it is creating children: some pipelines done, some half-done.
        wait_for(lambda: sum(c["configmaps"] for c in _children(cp).values()) >= 1, 30, "first children")
        time.sleep(0.3)
        op.proc.send_signal(signal.SIGKILL)
        op.proc.wait()
        op = launch_operator(cp, NS, log)
        wait_for(
            lambda: all(c == PER_PIPELINE for c in _children(cp).values()),
            90,
            "every pipeline to have exactly its children",
        )
        # Converged: stays exactly like that (no late duplicates) and every status is written.
        time.sleep(3)
        assert all(c == PER_PIPELINE for c in _children(cp).values()), _children(cp)
        for name in PIPELINES:
            phase = cp.kubectl("get", "sp", name, "-n", NS, "-o", "jsonpath={.status.phase}").stdout
            assert phase in {"Provisioning", "Running", "Degraded"}, (name, phase)
    finally:
        stop_operator(op)
        cp.kubectl("delete", "namespace", NS, "--wait=false")


def test_objects_it_cannot_handle_do_not_crash_it(cp, tmp_path):
    """Stored, but rejected by the spec model (stored before the CRD got the rule): the
    operator reports, lives on."""
    ns = "crash-test-2"
    cp.kubectl("create", "namespace", ns)
    op = launch_operator(cp, ns, tmp_path / "operator.log")
    try:
        bad = yaml.safe_load(EXAMPLE.read_text())
        bad["metadata"] = {"name": "weird", "namespace": ns}
        bad["spec"]["kafka"]["bootstrapServers"] = "broker:99999"  # port out of range
        good = yaml.safe_load(EXAMPLE.read_text())
        good["metadata"] = {"name": "fine", "namespace": ns}
        apply_under_relaxed_crd(cp, [bad, good])

        def phase(name: str) -> str:
            return cp.kubectl("get", "sp", name, "-n", ns, "-o", "jsonpath={.status.phase}").stdout

        wait_for(lambda: phase("weird") == "Failed", 30, "the bad pipeline to be marked Failed")
        wait_for(lambda: phase("fine") in {"Provisioning", "Running"}, 30, "the good one to proceed")
        assert op.proc.poll() is None, op.log_tail()
        op.healthz()
    finally:
        stop_operator(op)
        cp.kubectl("delete", "namespace", ns, "--wait=false")
