"""The deploy, schedule and health DAGs in real Airflow against the real control plane,
with the operator running.  Strimzi, spark-operator and the kubelet cannot run here, so a
background thread writes the status they would write (as tests/k8s does), in the mode
each test asks for: everything ready, the Spark job FAILED, or the job re-running."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from airflow_util import TOPICS, kubernetes_connection, pipeline_manifest

pytestmark = pytest.mark.k8s

NAME, NAMESPACE = "payments", "streampipeline"


def _k8s_conftest():
    """tests/k8s/conftest.py by path (its control-plane set-up and operator launcher)."""
    path = Path(__file__).resolve().parents[1] / "k8s" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_k8s_conftest_for_airflow", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


K8S = _k8s_conftest()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Cluster:
    """kubectl on the control plane, and the children's status the missing controllers write."""

    def __init__(self, cp) -> None:
        self.cp = cp
        self.mode = "off"  # off | ready | failed | rerun
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drive, daemon=True)

    def get(self, kind: str, name: str) -> dict | None:
        out = self.cp.kubectl(
            "get", kind, name, "-n", NAMESPACE, "-o", "json", "--ignore-not-found", "--show-managed-fields"
        ).stdout
        return json.loads(out) if out.strip() else None

    def pipeline(self) -> dict:
        return self.get("streampipeline", NAME) or {}

    def _patch_status(self, kind: str, name: str, status: dict) -> None:
        self.cp.kubectl(
            "patch",
            kind,
            name,
            "-n",
            NAMESPACE,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": status}),
            check=False,
        )

    def _drive_once(self) -> None:
        mode = self.mode
        if mode == "off":
            return
        for role in ("customers", "transactions"):
            topic = self.get("kafkatopic", f"{NAME}-{role}")
            if (
                topic
                and (topic.get("status") or {}).get("observedGeneration") != topic["metadata"]["generation"]
            ):
                self._patch_status(
                    "kafkatopic",
                    topic["metadata"]["name"],
                    {
                        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": _now()}],
                        "observedGeneration": topic["metadata"]["generation"],
                        "topicName": f"{NAME}-{role}",
                    },
                )
        selector = f"app.kubernetes.io/instance={NAME},app.kubernetes.io/component=generator"
        pods = json.loads(
            self.cp.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json", "-l", selector).stdout
        )
        for pod in pods["items"]:
            if (pod.get("status") or {}).get("phase") != "Running":
                ready = [
                    {"type": t, "status": "True", "lastTransitionTime": _now()}
                    for t in ("Ready", "ContainersReady")
                ]
                self._patch_status("pod", pod["metadata"]["name"], {"phase": "Running", "conditions": ready})
        app = self.get("sparkapplication", f"{NAME}-processor")
        if app:
            want = {
                "ready": {"state": "RUNNING"},
                "failed": {
                    "state": "FAILED",
                    "errorMessage": "driver container exited with code 137 (OOMKilled)",
                },
                "rerun": {"state": "PENDING_RERUN"},
            }[mode]
            have = (app.get("status") or {}).get("applicationState") or {}
            if have.get("state") != want["state"]:
                self._patch_status(
                    "sparkapplication",
                    app["metadata"]["name"],
                    {
                        "applicationState": want,
                        "driverInfo": {"podName": f"{NAME}-processor-driver"},
                    },
                )

    def _drive(self) -> None:
        while not self._stop.is_set():
            try:
                self._drive_once()
            except Exception as exc:  # a child deleted mid-way: next round
                print(f"[driver] {exc}")
            self._stop.wait(0.5)

    def start(self) -> Cluster:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def wait_phase(self, phase: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while (self.pipeline().get("status") or {}).get("phase") != phase:
            assert time.monotonic() < deadline, f"phase {phase} not reached: {self.pipeline().get('status')}"
            time.sleep(0.3)
        return self.pipeline()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        bin_dir = K8S.ensure_binaries(quiet=True)
    except K8S.ControlPlaneError as exc:
        if not K8S._go_available():
            pytest.skip(f"control-plane binaries are not built and Go is not installed: {exc}")
        raise
    cp = K8S.ControlPlane(bin_dir).start()
    op = None
    driver = None
    try:
        cp.apply_crds([*K8S.UPSTREAM_CRDS, K8S.OUR_CRD])
        cp.kubectl("create", "namespace", NAMESPACE)
        op = K8S.launch_operator(cp, NAMESPACE, tmp_path_factory.mktemp("operator") / "operator.log")
        driver = Cluster(cp).start()
        yield driver
    finally:
        if driver is not None:
            driver.stop()
        if op is not None:
            K8S.stop_operator(op)
        cp.stop()


@pytest.fixture(scope="module")
def conn(cluster) -> dict[str, str]:
    return kubernetes_connection(cluster.cp.kubeconfig, NAMESPACE)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """The example (with the local run's topic names) as a user's file on the worker."""
    path = tmp_path_factory.mktemp("manifest") / "pipeline.yaml"
    path.write_text(yaml.safe_dump(pipeline_manifest(), sort_keys=False))
    return path


def _deploy(airflow, conn, **conf):
    return airflow.run("streampipeline_deploy", {"poll_seconds": 0.5, "timeout_minutes": 2, **conf}, env=conn)


def test_deploy_applies_and_waits_for_ready(airflow, cluster, conn, manifest):
    assert cluster.pipeline() == {}
    cluster.mode = "ready"
    result = _deploy(airflow, conn, manifest=str(manifest), rate_per_second=300)
    assert result.ok, result.explain()
    sp = cluster.pipeline()
    assert sp["spec"]["generator"]["ratePerSecond"] == 300  # the param over the file's 500
    assert sp["spec"]["kafka"]["cluster"] == "dev-cluster"
    managers = {m["manager"]: m["operation"] for m in sp["metadata"]["managedFields"]}
    assert managers.get("streampipeline-airflow-deploy") == "Apply"  # server-side apply
    assert result.xcom["wait_until_ready"]["phase"] == "Running"
    assert result.xcom["wait_until_ready"]["generation"] == sp["metadata"]["generation"]
    assert sp["status"]["phase"] == "Running"
    assert "waiting" in result.output or "reached Ready" in result.output


def test_rerun_with_the_same_params_changes_nothing(airflow, cluster, conn, manifest):
    before = cluster.pipeline()
    dep, app = (
        cluster.get("deployment", f"{NAME}-generator"),
        cluster.get("sparkapplication", f"{NAME}-processor"),
    )
    result = _deploy(airflow, conn, manifest=str(manifest), rate_per_second=300)
    assert result.ok, result.explain()
    after = cluster.pipeline()
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    dep2, app2 = (
        cluster.get("deployment", f"{NAME}-generator"),
        cluster.get("sparkapplication", f"{NAME}-processor"),
    )
    assert dep2["metadata"]["generation"] == dep["metadata"]["generation"]
    assert app2["metadata"]["uid"] == app["metadata"]["uid"]


def test_deploy_updates_in_place_and_waits_for_the_new_generation(airflow, cluster, conn, manifest):
    before = cluster.pipeline()
    dep = cluster.get("deployment", f"{NAME}-generator")
    result = _deploy(airflow, conn, manifest=str(manifest), rate_per_second=250)
    assert result.ok, result.explain()
    sp = cluster.pipeline()
    assert sp["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert sp["metadata"]["uid"] == before["metadata"]["uid"]
    assert result.xcom["wait_until_ready"]["generation"] == sp["metadata"]["generation"]
    assert sp["status"]["observedGeneration"] == sp["metadata"]["generation"]
    (container,) = cluster.get("deployment", f"{NAME}-generator")["spec"]["template"]["spec"]["containers"]
    assert container["args"][container["args"].index("--rate") + 1] == "250"
    assert cluster.get("deployment", f"{NAME}-generator")["metadata"]["uid"] == dep["metadata"]["uid"]


def test_deploy_fails_with_the_pipelines_message_when_failed(airflow, cluster, conn, manifest):
    cluster.mode = "failed"
    cluster.wait_phase("Failed")
    result = _deploy(airflow, conn, manifest=str(manifest), rate_per_second=250)
    assert not result.ok
    assert result.tasks["wait_until_ready"] == "failed"
    assert "StreamPipeline streampipeline/payments failed" in result.output
    assert "Spark job is FAILED: driver container exited with code 137 (OOMKilled)" in result.output
    cluster.mode = "ready"
    cluster.wait_phase("Running")


def test_deploy_fails_with_the_api_servers_message_on_a_rejected_spec(airflow, cluster, conn, manifest):
    before = cluster.pipeline()
    result = _deploy(airflow, conn, manifest=str(manifest), rate_per_second=2_000_000)
    assert not result.ok
    assert result.tasks["apply_pipeline"] == "failed"
    assert "the API server rejected StreamPipeline streampipeline/payments" in result.output
    assert "ratePerSecond" in result.output
    assert cluster.pipeline()["metadata"]["generation"] == before["metadata"]["generation"]


def test_deploy_times_out_with_the_last_status(airflow, cluster, conn, manifest):
    cluster.mode = "off"  # nobody marks the new generator pods ready
    result = _deploy(
        airflow, conn, manifest=str(manifest), rate_per_second=250, replicas=2, timeout_minutes=0.25
    )
    assert not result.ok
    assert "not Ready after 15s" in result.output
    assert "generator pods available" in result.output  # the operator's own message
    cluster.mode = "ready"
    assert _deploy(airflow, conn, manifest=str(manifest), rate_per_second=250, replicas=1).ok


def test_schedule_suspends_outside_business_hours_and_resumes(airflow, cluster, conn):
    # a Saturday noon in São Paulo: action auto suspends
    result = airflow.run(
        "streampipeline_schedule",
        {"poll_seconds": 0.5, "timeout_minutes": 2},
        logical_date="2026-11-28T12:00:00-03:00",
        env=conn,
    )
    assert result.ok, result.explain()
    assert result.xcom["set_suspend"] == {"suspend": True, "phase": "Suspended"}
    sp = cluster.pipeline()
    assert sp["spec"]["suspend"] is True and sp["status"]["phase"] == "Suspended"
    assert sp["spec"]["generator"]["ratePerSecond"] == 250  # the deploy DAG's fields are kept
    deadline = time.monotonic() + 60  # the operator stops the job (a foreground deletion)
    while cluster.get("sparkapplication", f"{NAME}-processor") is not None:
        assert time.monotonic() < deadline, "the SparkApplication was not deleted on suspend"
        time.sleep(0.5)
    managers = {m["manager"] for m in sp["metadata"]["managedFields"]}
    assert {"streampipeline-airflow-deploy", "streampipeline-airflow-schedule"} <= managers

    result = airflow.run("streampipeline_schedule", {"action": "resume", "poll_seconds": 0.5}, env=conn)
    assert result.ok, result.explain()
    assert result.xcom["set_suspend"] == {"suspend": False, "phase": "Running"}
    assert cluster.pipeline()["status"]["phase"] == "Running"
    assert cluster.get("sparkapplication", f"{NAME}-processor") is not None


def test_health_passes_on_a_ready_pipeline(airflow, cluster, conn):
    result = airflow.run("streampipeline_health", {"max_not_ready_minutes": 0}, env=conn)
    assert result.ok, result.explain()
    assert result.xcom["check_health"]["phase"] == "Running"
    assert result.xcom["check_health"]["ready"] == "True"


def test_health_fails_on_a_degraded_pipeline(airflow, cluster, conn):
    cluster.mode = "rerun"
    sp = cluster.wait_phase("Degraded")
    assert "PENDING_RERUN" in sp["status"]["message"]
    lenient = airflow.run("streampipeline_health", {"max_not_ready_minutes": 30}, env=conn)
    assert lenient.ok, lenient.explain()  # within the grace period: a note, not a failure
    assert "within max_not_ready_minutes=30" in lenient.output
    strict = airflow.run("streampipeline_health", {"max_not_ready_minutes": 0}, env=conn)
    assert not strict.ok
    assert "StreamPipeline streampipeline/payments not Ready for" in strict.output
    assert "(phase Degraded): Spark job is PENDING_RERUN" in strict.output
    assert "threshold max_not_ready_minutes=0" in strict.output
    cluster.mode = "ready"
    cluster.wait_phase("Running")


def test_health_checks_the_processors_lag_and_quarantine_share(airflow, cluster, conn, real_run, kafka):
    """The real run's progress in its sink, and its topics on the real broker with records
    the (stopped) processor has not read: the lag is exactly those."""
    from confluent_kafka import Producer

    behind = 37
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    for i in range(behind):
        producer.produce(TOPICS["transactions"], key=b"C-late", value=b'{"not": "read yet %d"}' % i)
    assert producer.flush(30) == 0
    progress = json.loads((real_run / "_checkpoints" / "processor" / "progress.json").read_text())
    read = sum(progress["input"].values())
    quarantined = sum(progress["quarantined"].values())
    share = quarantined / read
    assert 0 < share < 0.2, share
    common = {
        "sink_path": str(real_run),
        "bootstrap_servers": kafka.bootstrap_servers,
        "max_not_ready_minutes": 0,
    }

    strict = airflow.run(
        "streampipeline_health",
        {**common, "max_lag": behind - 1, "max_quarantine_share": share / 2},
        env=conn,
    )
    assert not strict.ok
    assert f"the processor is {behind:,} records behind the topics' end offsets" in strict.output
    assert (
        f"{TOPICS['transactions']} {behind:,}" in strict.output
        and f"above max_lag={behind - 1}" in strict.output
    )
    assert f"quarantine share {share:.2%} ({quarantined:,} of {read:,} records)" in strict.output
    assert "by reason: " in strict.output

    lenient = airflow.run(
        "streampipeline_health", {**common, "max_lag": behind, "max_quarantine_share": share}, env=conn
    )
    assert lenient.ok, lenient.explain()
    figures = lenient.xcom["check_health"]
    assert figures["lag"] == behind
    assert figures["lag_by_topic"] == {TOPICS["customers"]: 0, TOPICS["transactions"]: behind}
    assert figures["records_read"] == read and figures["quarantined"] == quarantined
    assert figures["quarantined_by_reason"] == dict(sorted(progress["quarantined"].items()))
