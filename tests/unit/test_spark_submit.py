"""The spark-operator stand-in's spark-submit call, built from a rendered SparkApplication.

The node test (tests/node/test_pipeline.py) runs it for real; these check each
SparkApplication field lands in the conf Spark reads, so a field the stand-in drops is
caught without a node.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from harness.spark_submit import submit_command

from streampipeline import render
from streampipeline.settings import Settings
from streampipeline.spec import load_manifest

MANIFEST = {
    "apiVersion": "streampipeline.io/v1alpha1",
    "kind": "StreamPipeline",
    "metadata": {"name": "payments", "namespace": "pipes"},
    "spec": {"kafka": {"cluster": "dev-cluster"}, "processing": {"driver": {"memoryOverhead": "768m"}}},
}


def _confs(argv: list[str]) -> dict[str, str]:
    return dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--conf")


@pytest.fixture
def app() -> dict:
    return render.spark_application(load_manifest(MANIFEST), Settings())


def test_every_field_reaches_spark(app: dict, tmp_path: Path) -> None:
    argv = submit_command(app, master="https://10.0.0.1:6443", workdir=tmp_path, extra_conf={"spark.x": "1"})
    spec, conf = app["spec"], _confs(argv)
    assert argv[1:5] == ["--master", "k8s://https://10.0.0.1:6443", "--deploy-mode", "cluster"]
    assert argv[-3:] == [spec["mainApplicationFile"], *spec["arguments"]]
    assert conf["spark.kubernetes.container.image"] == spec["image"]
    assert conf["spark.kubernetes.namespace"] == "pipes"
    assert conf["spark.kubernetes.authenticate.driver.serviceAccountName"] == spec["driver"]["serviceAccount"]
    assert conf["spark.driver.memory"] == spec["driver"]["memory"]
    assert conf["spark.driver.memoryOverhead"] == "768m"
    assert conf["spark.executor.instances"] == str(spec["executor"]["instances"])
    assert conf["spark.executor.extraJavaOptions"] == spec["executor"]["javaOptions"]
    for key, value in spec["sparkConf"].items():
        assert conf[key] == value
    assert conf["spark.x"] == "1"
    data = next(m for m in spec["driver"]["volumeMounts"] if m["name"] == "data")
    pvc = "spark.kubernetes.driver.volumes.persistentVolumeClaim.data"
    assert conf[f"{pvc}.mount.path"] == data["mountPath"]
    assert conf[f"{pvc}.options.claimName"] == "payments-data"
    for key, value in spec["driver"]["labels"].items():
        assert conf[f"spark.kubernetes.driver.label.{key}"] == value


def test_the_webhooks_part_is_a_pod_template(app: dict, tmp_path: Path) -> None:
    conf = _confs(submit_command(app, master="https://h:1", workdir=tmp_path))
    driver = yaml.safe_load(Path(conf["spark.kubernetes.driver.podTemplateFile"]).read_text())["spec"]
    assert driver["securityContext"] == app["spec"]["driver"]["podSecurityContext"]
    (container,) = driver["containers"]
    assert container["name"] == conf["spark.kubernetes.driver.podTemplateContainerName"]
    assert container["securityContext"] == app["spec"]["driver"]["securityContext"]
    assert [v["name"] for v in driver["volumes"]] == ["config"]  # the PVC goes through confs
    assert [m["name"] for m in container["volumeMounts"]] == ["config"]
    executor = yaml.safe_load(Path(conf["spark.kubernetes.executor.podTemplateFile"]).read_text())["spec"]
    assert executor["securityContext"] == app["spec"]["executor"]["podSecurityContext"]
    assert "volumes" not in executor


def test_a_mount_of_a_missing_volume_is_an_error(app: dict, tmp_path: Path) -> None:
    app["spec"]["volumes"] = [v for v in app["spec"]["volumes"] if v["name"] != "config"]
    with pytest.raises(ValueError, match="'config'"):
        submit_command(app, master="https://h:1", workdir=tmp_path)
