"""spec.api against a real API server and garbage collector: the operator creates the REST
service's Deployment and Service, keeps them while suspended, deletes them when disabled
(but never someone else's object of that name), and status.children names them.

A pipeline of its own (``quotes``) in the watched namespace, so the shared ``payments``
pipeline of test_operator.py is left alone; it is deleted at the end.
"""

from __future__ import annotations

import copy
import json

import pytest
import yaml
from conftest import EXAMPLE, NAMESPACE
from k8s_util import wait_for

from streampipeline import render
from streampipeline.settings import Settings
from streampipeline.spec import load_manifest

pytestmark = pytest.mark.k8s

NAME = "quotes"
API = f"{NAME}-api"
SECRET = f"{NAME}-api-token"


def _doc(**api) -> dict:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"]["name"] = NAME
    doc["spec"]["sink"]["retainOnDelete"] = False  # nothing left behind for later modules
    doc["spec"]["api"] = {"enabled": True, **api}
    return doc


def _subset(expected, actual, path="") -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} missing"
            _subset(value, actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), path
        for i, (e, a) in enumerate(zip(expected, actual)):
            _subset(e, a, f"{path}[{i}]")
    else:
        assert expected == actual, f"{path}: {expected!r} != {actual!r}"


def _status(kget) -> dict:
    return (kget("streampipeline", NAME) or {}).get("status") or {}


def _patch_spec(cp, spec: dict) -> None:
    patch = json.dumps({"spec": spec}, separators=(",", ":"))
    cp.kubectl("patch", "sp", NAME, "-n", NAMESPACE, "--type=merge", "-p", patch)


def _observed(kget) -> bool:
    sp = kget("streampipeline", NAME)
    return bool(sp) and (sp.get("status") or {}).get("observedGeneration") == sp["metadata"]["generation"]


@pytest.fixture(scope="module")
def quotes(cp, operator, kget):
    cp.kubectl(
        "create", "secret", "generic", SECRET, "-n", NAMESPACE, "--from-literal=token=s3cret-for-tests"
    )  # fmt: skip
    doc = _doc(tokenSecretName=SECRET, replicas=2)
    cp.kubectl("apply", "-f", "-", input=json.dumps(doc))
    wait_for(lambda: kget("deployment", API) and kget("service", API), 30, "the API Deployment and Service")
    yield load_manifest(doc)
    cp.kubectl("delete", "sp", NAME, "-n", NAMESPACE, "--ignore-not-found", "--wait=true", check=False)
    cp.kubectl("delete", "secret", SECRET, "-n", NAMESPACE, "--ignore-not-found", check=False)
    cp.kubectl("delete", "service", API, "-n", NAMESPACE, "--ignore-not-found", check=False)
    # The real garbage collector (it may lag on its first resync after start).
    wait_for(lambda: kget("deployment", f"{NAME}-generator") is None, 90, "the children collected", 1.0)


def test_api_children_created_as_rendered_and_owned(quotes, kget):
    """Accepted by the API server's own validation of Deployments and Services, carrying every
    rendered field, owned by the pipeline."""
    uid = kget("streampipeline", NAME)["metadata"]["uid"]
    for obj in (render.api_deployment(quotes, Settings()), render.api_service(quotes)):
        live = kget(obj["kind"].lower(), API)
        _subset(obj["spec"], live["spec"], obj["kind"])
        _subset(obj["metadata"]["labels"], live["metadata"]["labels"])
        (ref,) = live["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
            "StreamPipeline",
            NAME,
            uid,
            True,
        )
    dep = kget("deployment", API)
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["args"][:3] == ["api", "--config", render.CONFIG_PATH] and "--no-sink" in c["args"]
    assert {
        "name": "STREAMPIPELINE_API_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "token"}},
    } in c["env"]
    assert dep["spec"]["replicas"] == 2


def test_status_children_name_them(quotes, kget):
    children = wait_for(
        lambda: _status(kget).get("children", {}).get("apiDeployment") and _status(kget)["children"],
        20,
        "children",
    )
    assert children["apiDeployment"] == children["apiService"] == API
    assert children["deployment"] == f"{NAME}-generator"


def test_api_pods_are_created_by_the_real_controllers(quotes, cp):
    selector = f"app.kubernetes.io/instance={NAME},app.kubernetes.io/component=api"

    def pods():
        out = cp.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json", "-l", selector).stdout
        return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]

    items = wait_for(lambda: len(pods()) == 2 and pods(), 30, "two API pods")
    for pod in items:
        (c,) = pod["spec"]["containers"]
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_suspend_keeps_the_api(quotes, cp, kget):
    _patch_spec(cp, {"suspend": True})
    wait_for(lambda: _status(kget).get("phase") == "Suspended", 30, "phase Suspended")
    wait_for(lambda: _observed(kget), 20, "the suspend reconciled")
    assert kget("deployment", f"{NAME}-generator")["spec"]["replicas"] == 0
    assert kget("deployment", API)["spec"]["replicas"] == 2 and kget("service", API)
    _patch_spec(cp, {"suspend": False})
    wait_for(lambda: kget("sparkapplication", f"{NAME}-processor"), 30, "the Spark job back")


def test_disabling_deletes_them_and_status_forgets_them(quotes, cp, kget):
    _patch_spec(cp, {"api": {"enabled": False}})
    wait_for(
        lambda: kget("deployment", API) is None and kget("service", API) is None, 30, "API children deleted"
    )
    children = wait_for(
        lambda: "apiDeployment" not in _status(kget).get("children", {"apiDeployment": 1})
        and _status(kget)["children"],
        20,
        "status.children without the API",
    )
    assert "apiService" not in children and children["deployment"] == f"{NAME}-generator"
    assert kget("deployment", f"{NAME}-generator")  # nothing else touched


def test_someone_elses_object_of_that_name_is_left_alone(quotes, cp, kget):
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": API, "namespace": NAMESPACE},
        "spec": {"selector": {"app": "mine"}, "ports": [{"port": 80}]},
    }
    cp.kubectl("apply", "-f", "-", input=json.dumps(svc))
    _patch_spec(cp, {"generator": {"ratePerSecond": 123}})  # a reconcile with the API disabled
    wait_for(lambda: _observed(kget), 20, "the change reconciled")
    wait_for(
        lambda: kget("deployment", f"{NAME}-generator")["spec"]["template"]["spec"]["containers"][0]["args"][
            3
        ]
        == "123",
        20,
        "rate applied",
    )
    live = kget("service", API)
    assert live is not None and live["spec"]["selector"] == {"app": "mine"}
    cp.kubectl("delete", "service", API, "-n", NAMESPACE)


def test_enabling_again_recreates_them(quotes, cp, kget):
    doc = copy.deepcopy(_doc(tokenSecretName=SECRET))
    _patch_spec(cp, {"api": doc["spec"]["api"]})
    wait_for(lambda: kget("deployment", API) and kget("service", API), 30, "API children re-created")
    # A merge patch keeps the rest of spec.api (replicas: 2), and so does the new Deployment.
    assert kget("deployment", API)["spec"]["replicas"] == 2
    children = wait_for(lambda: _status(kget).get("children", {}).get("apiService"), 20, "status.children")
    assert children == API
