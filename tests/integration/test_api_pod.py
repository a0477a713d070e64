"""The REST service as the operator runs it in a pod (render.api_deployment's command line,
the ConfigMap's pipeline.json, the token from the environment), against a real broker.

Only the bind address is changed (loopback, not 0.0.0.0) and the port (a free one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest
import yaml

from streampipeline import render
from streampipeline.api.config import TOKEN_ENV
from streampipeline.api.server import free_port
from streampipeline.local.kafka import TopicSpec, ensure_topics
from streampipeline.settings import Settings
from streampipeline.spec import load_manifest

from .api_util import auth, customer

pytestmark = pytest.mark.integration


def _pipeline(bootstrap: str):
    return load_manifest(
        yaml.safe_dump(
            {
                "apiVersion": "streampipeline.io/v1alpha1",
                "kind": "StreamPipeline",
                "metadata": {"name": f"pod{uuid.uuid4().hex[:6]}", "namespace": "streampipeline"},
                "spec": {
                    "kafka": {"cluster": "dev", "bootstrapServers": bootstrap},
                    "api": {"enabled": True},
                },
            }
        )
    )


def _request(url: str, data: dict | None = None, headers: dict | None = None) -> tuple[int, dict]:
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _serve(tmp_path, kafka, token: str | None):
    p = _pipeline(kafka.bootstrap_servers)
    config = tmp_path / render.CONFIG_KEY
    config.write_text(render.configmap(p)["data"][render.CONFIG_KEY])  # what the pod mounts
    (c,) = render.api_deployment(p, Settings())["spec"]["template"]["spec"]["containers"]
    args = list(c["args"])
    port = free_port()
    args[args.index("--config") + 1] = str(config)
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = str(port)
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    if token is not None:
        env[TOKEN_ENV] = token
    log = tmp_path / f"api-{port}.log"
    out = log.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streampipeline.cli", *args], stdout=out, stderr=subprocess.STDOUT, env=env
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            if _request(f"{url}/healthz")[0] == 200:
                return p, proc, url, log
        except OSError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


def _stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_pod_command_serves_the_rendered_config_with_the_secret_token(tmp_path, kafka):
    token = "pod-token-" + uuid.uuid4().hex
    p, proc, url, log = _serve(tmp_path, kafka, token)
    try:
        status, body = _request(f"{url}/readyz")
        assert (status, body["kafka"]) == (200, kafka.bootstrap_servers)
        status, body = _request(f"{url}/api/v1/topics")
        assert status == 200 and {p.customers_topic, p.transactions_topic} <= set(json.dumps(body).split('"'))
        assert (
            _request(f"{url}/api/v1/datasets/transactions")[0] == 503
        )  # --no-sink: the claim is the driver's
        posts = f"{url}/api/v1/topics/{p.customers_topic}/messages"
        assert _request(posts, customer(), auth("wrong"))[0] == 401
        # With the token the request gets past auth to validation (422, nothing produced) ...
        status, body = _request(posts, customer(birth_date="yesterday"), auth(token))
        assert status == 422 and body["errors"][0]["field"] == "birth_date", body
        # ... and a valid record is produced (acks=all) to the pipeline's topic.
        ensure_topics(
            kafka.bootstrap_servers, [TopicSpec(p.customers_topic, 1, 1, {"cleanup.policy": "compact"})]
        )
        status, body = _request(posts, customer(), auth(token))
        assert status == 201 and body["records"][0]["offset"] == 0, body
    finally:
        _stop(proc)
    assert token not in log.read_text()  # the Secret's value never reaches the log


def test_pod_without_a_secret_is_read_only_and_invents_no_token(tmp_path, kafka):
    p, proc, url, log = _serve(tmp_path, kafka, None)
    try:
        assert _request(f"{url}/readyz")[0] == 200
        posts = f"{url}/api/v1/topics/{p.customers_topic}/messages"
        assert _request(posts, customer(), auth("anything"))[0] == 401
    finally:
        _stop(proc)
    text = log.read_text()
    assert "Read-only" in text and "write token" not in text
