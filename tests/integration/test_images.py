"""The generator and Spark images, built from images/*/Dockerfile, run as their pods run them.

The images are built in the suite's own Docker engine on local stand-ins for the upstream
bases (tests/harness/standins/NOTES.md says how each differs from the real one). Each
container gets the security settings, command, arguments and volumes of the object the
operator renders for it (tests/harness/podrun.py), and the host's network only so that it
reaches the test broker on loopback:

* the generator Deployment's container produces to a real KRaft broker; the records in the
  topics equal the tally it prints;
* the Spark image runs through its own entrypoint in ``driver`` mode with the arguments
  spark-operator gives a driver pod (``driver --properties-file … --class
  org.apache.spark.deploy.PythonRunner local:///…/processor_main.py --config …``), the
  SparkApplication's sparkConf and driver settings in the properties file and ``local[2]``
  standing in for the Kubernetes master (executors as pods are the real-node tests' part);
  the Parquet on the mounted sink passes the local integration test's data-contract checks,
  and a ``docker stop`` (SIGTERM to the container) ends with the job's clean stop and exit 0.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from harness.docker_engine import host_python310
from harness.podrun import expand, prepare_volume_dir, security_flags

from spjobs.processor.batch import read_progress
from streampipeline import render
from streampipeline.local.kafka import TopicSpec, ensure_topics
from streampipeline.settings import Settings
from streampipeline.spec import load_manifest

from .reference import read_topic
from .verify import assert_outputs_match, reference_for

pytestmark = [pytest.mark.integration, pytest.mark.images]

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 4_000
CUSTOMERS = 300


@pytest.fixture(scope="module")
def pipeline(kafka):
    """The example pipeline pointed at the test broker, with its topics created."""
    doc = load_manifest(ROOT / "k8s" / "examples" / "pipeline.yaml").to_manifest()
    doc["metadata"]["name"] = "imgtest"
    doc["spec"]["kafka"]["bootstrapServers"] = kafka.bootstrap_servers
    doc["spec"]["kafka"]["topics"] = {}  # default names: imgtest-customers, imgtest-transactions
    doc["spec"]["generator"].update({"customers": CUSTOMERS, "invalidRatio": 0.05, "ratePerSecond": 0})
    doc["spec"]["processing"].update({"trigger": "1s"})
    p = load_manifest(doc)
    topics = p.to_job_config()["kafka"]["topics"]
    ensure_topics(
        kafka.bootstrap_servers,
        [TopicSpec(t["name"], t["partitions"], t["replicas"], t.get("config")) for t in topics.values()],
        max_replicas=1,
    )
    return p


def _config_dir(tmp: Path, p) -> Path:
    """The pipeline's ConfigMap as the kubelet mounts it: one file per key."""
    cm = render.configmap(p)
    d = tmp / "config"
    d.mkdir()
    for key, value in cm["data"].items():
        (d / key).write_text(value)
        (d / key).chmod(0o644)
    d.chmod(0o755)
    return d


@pytest.fixture(scope="module")
def generated(pipeline, project_images, docker_engine, tmp_path_factory):
    """The generator Deployment's container, run to a bound of EVENTS events."""
    tmp = tmp_path_factory.mktemp("generator")
    config = _config_dir(tmp, pipeline)
    dep = render.generator_deployment(pipeline, Settings())
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e.get("value", "") for e in c["env"]}
    env["POD_NAME"] = "imgtest-generator-abc12"  # the downward API's metadata.name
    args = [expand(a, env) for a in c["args"]] + ["--records", str(EVENTS)]
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    flags = security_flags(pod["securityContext"], c["securityContext"])
    for name, mount in mounts.items():
        if "configMap" in volumes[name]:
            flags += ["-v", f"{config}:{mount['mountPath']}:ro"]
        elif "emptyDir" in volumes[name]:
            flags += ["--tmpfs", f"{mount['mountPath']}:rw,mode=1777"]
    for k, v in env.items():
        flags += ["-e", f"{k}={v}"]
    assert c["image"] == project_images["generator"]
    t0 = time.monotonic()
    proc = docker_engine.docker(
        "run", "--rm", "--network", "host", *flags, "--entrypoint", c["command"][0],
        c["image"], *c["command"][1:], *args,
        check=False, timeout=600,
    )  # fmt: skip
    return proc, time.monotonic() - t0


def test_generator_image_produces_what_it_tallies(generated, pipeline, kafka):
    proc, seconds = generated
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tally = json.loads(proc.stdout.strip().splitlines()[-1])
    assert tally["events"] == EVENTS and tally["unacknowledged"] == 0, tally
    topics = pipeline.to_job_config()["kafka"]["topics"]
    customers = read_topic(kafka.bootstrap_servers, topics["customers"]["name"])
    transactions = read_topic(kafka.bootstrap_servers, topics["transactions"]["name"])
    in_customers = tally["customers"] + tally["customer_updates"] + tally["invalid_in_customers_topic"]
    assert len(customers) == in_customers, tally
    assert len(customers) + len(transactions) == tally["total"], tally
    # The pod's name is in every id, as on Kubernetes (--instance $(POD_NAME)).
    assert all(b"imgtest-generator-abc12" in (r.key or b"") for r in transactions[:50]), transactions[0]
    print(f"generator container: {EVENTS} events in {seconds:.1f}s")


def _spark_properties(app: dict, tmp: Path) -> Path:
    """spark.properties as spark-operator's spark-submit hands it to the driver pod."""
    spec = app["spec"]
    driver = spec["driver"]
    props = {
        "spark.master": "local[2]",  # stands in for k8s://…: executors run in the driver's JVM here
        "spark.app.name": app["metadata"]["name"],
        "spark.submit.deployMode": "client",
        "spark.driver.cores": str(driver["cores"]),
        "spark.driver.memory": driver["memory"],
        "spark.driver.extraJavaOptions": driver["javaOptions"],
        **spec["sparkConf"],
    }
    path = tmp / "spark.properties"
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    path.chmod(0o644)
    return path


def test_spark_image_driver_writes_the_contract_and_stops_cleanly(
    generated, pipeline, kafka, project_images, docker_engine, tmp_path
):
    assert generated[0].returncode == 0, "the generator run failed (see its test)"
    app = render.spark_application(pipeline, Settings())
    spec = app["spec"]
    driver = spec["driver"]
    assert spec["image"] == project_images["spark"]
    config = _config_dir(tmp_path, pipeline)
    sink = prepare_volume_dir(tmp_path / "sink", driver["podSecurityContext"].get("fsGroup"))
    props = _spark_properties(app, tmp_path)
    mounts = {m["name"]: m["mountPath"] for m in driver["volumeMounts"]}
    flags = security_flags(driver["podSecurityContext"], driver["securityContext"])
    flags += [
        "-v", f"{sink}:{mounts['data']}",
        "-v", f"{config}:{mounts['config']}:ro",
        "-v", f"{props}:/opt/spark/conf/spark.properties:ro",
        "-e", "SPARK_DRIVER_BIND_ADDRESS=127.0.0.1",
        "-e", "SPARK_CONF_DIR=/opt/spark/conf",
    ]  # fmt: skip
    main = spec["mainApplicationFile"]
    name = f"sp-imgtest-driver-{int(time.time())}"
    docker_engine.docker(
        "run", "-d", "--name", name, "--network", "host", *flags, spec["image"],
        "driver", "--properties-file", "/opt/spark/conf/spark.properties",
        "--class", "org.apache.spark.deploy.PythonRunner", main, *spec["arguments"],
    )  # fmt: skip
    try:
        t0 = time.monotonic()
        topics = pipeline.to_job_config()["kafka"]["topics"]
        produced = len(read_topic(kafka.bootstrap_servers, topics["transactions"]["name"]))
        consumed = 0
        while time.monotonic() - t0 < 600:
            state = docker_engine.docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip()
            assert state == "true", _logs(docker_engine, name)
            progress = read_progress(sink) or {}
            consumed = (progress.get("input") or {}).get(topics["transactions"]["name"], 0)
            if consumed >= produced:
                break
            time.sleep(2)
        assert consumed >= produced, f"consumed {consumed} of {produced}:\n{_logs(docker_engine, name)}"
        caught_up = time.monotonic() - t0
        docker_engine.docker("stop", "-t", "60", name, timeout=120)  # SIGTERM, SIGKILL after 60 s
        code = int(docker_engine.docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip())
        logs = _logs(docker_engine, name)
    finally:
        docker_engine.docker("rm", "-f", name, check=False)
    assert code == 0, f"exit {code} on SIGTERM (143: the Python driver never got it):\n{logs}"
    events = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert any(e.get("event") == "stopping" for e in events), logs[-3000:]
    assert any(e.get("event") == "stopped" for e in events), "the job's clean stop ran"
    version = docker_engine.docker(
        "run", "--rm", "--entrypoint", "python3", spec["image"], "-c",
        "import sys; print('%d.%d' % sys.version_info[:2])",
    ).stdout.strip()  # fmt: skip
    if host_python310() is not None:  # the real image's Python minor; else the stand-in's fallback
        assert version == "3.10", f"the Spark stand-in runs Python {version}, the real image 3.10"
    figures = assert_outputs_match(sink, reference_for(kafka.bootstrap_servers, pipeline.to_job_config()))
    assert figures["transactions"] > 0
    print(f"spark container (Python {version}): caught up in {caught_up:.1f}s, {figures}")


def _logs(engine, name: str) -> str:
    proc = engine.docker("logs", "--tail", "200", name, check=False)
    return (proc.stdout + proc.stderr)[-8000:]
