"""render.api_deployment / api_service: the REST service a pipeline gets with spec.api.enabled
(pure; no cluster), and what the service's command line and image need."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from streampipeline import render
from streampipeline.api.config import TOKEN_ENV
from streampipeline.cli import _read_job_config, build_parser
from streampipeline.controller.status import Observed, compute_status
from streampipeline.settings import Settings
from streampipeline.spec import load_manifest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "k8s" / "examples" / "pipeline.yaml"
SETTINGS = Settings()


def pipeline(**api):
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["api"] = {"enabled": True, **api}
    if api.get("mountSink"):
        doc["spec"].setdefault("sink", {}).setdefault("volume", {})["existingClaim"] = "shared-rwx"
    return load_manifest(doc)


def _container(dep):
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return c


def test_disabled_by_default_nothing_rendered():
    p = load_manifest(EXAMPLE)
    kinds = [(o["kind"], o["metadata"]["name"]) for o in render.children(p, SETTINGS)]
    assert ("Deployment", "payments-api") not in kinds and not any(k == "Service" for k, _ in kinds)
    assert "apiDeployment" not in compute_status(p, Observed())["children"]


def test_enabled_adds_deployment_and_service_last():
    p = pipeline()
    objs = render.children(p, SETTINGS)
    assert [(o["kind"], o["metadata"]["name"]) for o in objs[-2:]] == [
        ("Deployment", "payments-api"),
        ("Service", "payments-api"),
    ]
    assert objs[-2] == render.api_deployment(p, SETTINGS) and objs[-1] == render.api_service(p)
    children = compute_status(p, Observed())["children"]
    assert children["apiDeployment"] == children["apiService"] == "payments-api"


def test_suspend_keeps_the_api():
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"].update(suspend=True, api={"enabled": True})
    objs = render.children(load_manifest(doc), SETTINGS)
    assert {("Deployment", "payments-api"), ("Service", "payments-api")} <= {
        (o["kind"], o["metadata"]["name"]) for o in objs
    }
    assert not any(o["kind"] == "SparkApplication" for o in objs)


def test_deployment_shape_security_and_probes():
    p = pipeline(replicas=3)
    dep = render.api_deployment(p, SETTINGS)
    gen = render.generator_deployment(p, SETTINGS)
    assert dep["metadata"]["labels"] == render.common_labels(p, "api")
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["selector"]["matchLabels"] == render.selector_labels(p, "api")
    pod = dep["spec"]["template"]["spec"]
    assert dep["spec"]["template"]["metadata"]["labels"] == render.common_labels(p, "api")
    assert pod["securityContext"] == gen["spec"]["template"]["spec"]["securityContext"]
    assert pod["automountServiceAccountToken"] is False
    c = _container(dep)
    assert c["securityContext"] == _container(gen)["securityContext"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["image"] == SETTINGS.api_image and c["imagePullPolicy"] == SETTINGS.image_pull_policy
    assert c["command"] == ["streampipeline"]
    assert c["ports"] == [{"name": "http", "containerPort": render.API_PORT, "protocol": "TCP"}]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["resources"] == {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
    # The config the service reads is the ConfigMap the operator renders, read-only; /tmp writable.
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["config"] == {"name": "config", "mountPath": render.CONFIG_DIR, "readOnly": True}
    assert mounts["tmp"]["mountPath"] == "/tmp" and "data" not in mounts
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == render.configmap(p)["metadata"]["name"]


def test_arguments_parse_and_serve_the_rendered_config():
    p = pipeline()
    args = build_parser().parse_args(_container(render.api_deployment(p, SETTINGS))["args"])
    assert args.func.__name__ == "_cmd_api"
    assert (args.manifest, args.config) == (None, render.CONFIG_PATH)
    assert (args.host, args.port) == ("0.0.0.0", render.API_PORT)
    assert args.no_sink and args.no_new_token  # Kafka only; a pod never invents a token


def test_token_from_the_secret_or_read_only():
    env = _container(render.api_deployment(pipeline(tokenSecretName="payments-api-token"), SETTINGS))["env"]
    (token,) = [e for e in env if e["name"] == TOKEN_ENV]
    assert token["valueFrom"] == {"secretKeyRef": {"name": "payments-api-token", "key": "token"}}
    env = _container(render.api_deployment(pipeline(), SETTINGS))["env"]
    assert TOKEN_ENV not in {e["name"] for e in env}


def test_mount_sink_mounts_the_existing_claim_read_only():
    p = pipeline(mountSink=True)
    dep = render.api_deployment(p, SETTINGS)
    c = _container(dep)
    assert "--no-sink" not in c["args"]
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "data"]
    assert mount == {"name": "data", "mountPath": p.spec.sink.path, "readOnly": True}
    (vol,) = [v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "data"]
    assert vol["persistentVolumeClaim"] == {"claimName": "shared-rwx", "readOnly": True}


def test_config_change_rolls_the_api_pods():
    def hash_of(p):
        return render.api_deployment(p, SETTINGS)["spec"]["template"]["metadata"]["annotations"]

    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["api"] = {"enabled": True}
    before = hash_of(load_manifest(doc))
    doc["spec"]["kafka"]["bootstrapServers"] = "other:9092"
    assert hash_of(load_manifest(doc)) != before
    doc["spec"]["kafka"].pop("bootstrapServers")
    doc["spec"]["generator"]["ratePerSecond"] = 7  # not the service's business
    assert hash_of(load_manifest(doc)) == before


def test_service():
    p = pipeline()
    svc = render.api_service(p)
    assert svc["metadata"] == {
        "name": "payments-api",
        "namespace": "streampipeline",
        "labels": render.common_labels(p, "api"),
    }
    assert svc["spec"]["selector"] == render.selector_labels(p, "api")
    (port,) = svc["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (render.API_PORT, "http")
    assert render.selector_labels(p, "api") != render.selector_labels(p, "generator")


def test_api_image_from_the_environment():
    settings = Settings.from_env({"STREAMPIPELINE_API_IMAGE": "reg.example/api:7"})
    assert _container(render.api_deployment(pipeline(), settings))["image"] == "reg.example/api:7"


def test_read_job_config_accepts_the_rendered_one_and_explains_a_wrong_file(tmp_path):
    p = pipeline()
    good = tmp_path / "pipeline.json"
    good.write_text(render.configmap(p)["data"][render.CONFIG_KEY])
    assert _read_job_config(good) == p.to_job_config()
    for text in ("{", "[]", '{"kafka": {}}', json.dumps({**p.to_job_config(), "sink": 3})):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(SystemExit, match="is not a pipeline job config"):
            _read_job_config(bad)


def test_api_cli_needs_a_manifest_or_a_config(tmp_path):
    from streampipeline.cli import main

    with pytest.raises(SystemExit, match="give a manifest or --config"):
        main(["api"])
    with pytest.raises(SystemExit, match="give a manifest or --config"):
        main(["api", str(EXAMPLE), "--config", str(tmp_path / "x.json")])


def test_service_code_imports_without_spark_pandas_faker_or_kopf():
    """The operator image runs the service and carries none of these (images/requirements)."""
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('pyspark', 'pandas', 'faker', 'airflow', 'kopf', 'kubernetes'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import streampipeline.api.app, streampipeline.cli, streampipeline.render\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lock = (ROOT / "images" / "requirements" / "operator.txt").read_text().lower()
    for pkg in ("fastapi==", "uvicorn==", "pyarrow==", "confluent-kafka=="):
        assert f"\n{pkg}" in lock, pkg
    for pkg in ("pyspark", "pandas", "apache-airflow", "faker"):
        assert f"\n{pkg}==" not in lock, pkg


def test_progress_reader_agrees_with_the_job_s(tmp_path):
    from spjobs import contract as C
    from spjobs.processor.batch import read_progress as job_read
    from streampipeline.api.telemetry import read_progress as api_read

    assert api_read(tmp_path) is None is job_read(tmp_path)
    path = tmp_path / C.CHECKPOINTS_DIR / "processor" / "progress.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"batch_id": 4, "input": {"transactions": 10}}))
    assert api_read(tmp_path) == job_read(tmp_path) == {"batch_id": 4, "input": {"transactions": 10}}
    path.write_text("{not json")
    assert api_read(tmp_path) is None is job_read(tmp_path)
