"""What spark-operator does with a SparkApplication, for a node that has no spark-operator.

spark-operator turns a SparkApplication into one ``spark-submit --deploy-mode cluster``
call (its controller's submission code) plus, through its mutating webhook, pod settings
that Spark's own confs cannot express (security contexts, volumes other than PVC, emptyDir,
hostPath and NFS). This module does the same from the SparkApplication object the operator
created: :func:`submit_command` builds the spark-submit arguments (image, main file and
arguments, name, namespace, ServiceAccount, sparkConf, driver and executor cores, memory,
overhead, Java options and labels, PVC volumes as ``spark.kubernetes.driver.volumes.*``)
and two pod template files standing in for the webhook (pod and container security
contexts, the other volumes and their mounts). The driver then creates its executor pods
itself, with its ServiceAccount's RBAC, exactly as under spark-operator.

Not done (spark-operator's, not Spark's): the SparkApplication's status, restarts per its
``restartPolicy``, owner references from the driver pod to the SparkApplication.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

DRIVER_CONTAINER = "spark-kubernetes-driver"
EXECUTOR_CONTAINER = "spark-kubernetes-executor"
# Volume kinds Spark mounts from confs (spark-operator passes these as confs, the rest
# through its webhook).
_CONF_VOLUMES = {
    "persistentVolumeClaim": "persistentVolumeClaim",
    "emptyDir": "emptyDir",
    "hostPath": "hostPath",
}


def spark_submit_bin() -> Path:
    """The spark-submit of the test venv's pyspark (its jars include spark-kubernetes)."""
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-submit"


def _role_confs(role: str, part: dict[str, Any]) -> dict[str, str]:
    confs: dict[str, str] = {}
    if "cores" in part:
        confs[f"spark.{role}.cores"] = str(part["cores"])
    if "coreRequest" in part:
        confs[f"spark.kubernetes.{role}.request.cores"] = str(part["coreRequest"])
    if "coreLimit" in part:
        confs[f"spark.kubernetes.{role}.limit.cores"] = str(part["coreLimit"])
    if "memory" in part:
        confs[f"spark.{role}.memory"] = str(part["memory"])
    if "memoryOverhead" in part:
        confs[f"spark.{role}.memoryOverhead"] = str(part["memoryOverhead"])
    if "javaOptions" in part:
        confs[f"spark.{role}.extraJavaOptions"] = str(part["javaOptions"])
    for key, value in (part.get("labels") or {}).items():
        confs[f"spark.kubernetes.{role}.label.{key}"] = str(value)
    for key, value in (part.get("annotations") or {}).items():
        confs[f"spark.kubernetes.{role}.annotation.{key}"] = str(value)
    return confs


def _split_volumes(
    spec: dict[str, Any], part: dict[str, Any], role: str
) -> tuple[dict[str, str], list, list]:
    """(confs for the volumes Spark mounts itself, template volumes, template mounts)."""
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    confs: dict[str, str] = {}
    t_volumes: list[dict] = []
    t_mounts: list[dict] = []
    for mount in part.get("volumeMounts") or []:
        vol = volumes.get(mount["name"])
        if vol is None:
            raise ValueError(f"{role} mounts volume {mount['name']!r}, which spec.volumes lacks")
        kind = next((k for k in _CONF_VOLUMES if k in vol), None)
        if kind is None:  # the webhook's part: a pod template
            t_volumes.append(vol)
            t_mounts.append(mount)
            continue
        prefix = f"spark.kubernetes.{role}.volumes.{kind}.{mount['name']}"
        confs[f"{prefix}.mount.path"] = mount["mountPath"]
        if mount.get("readOnly"):
            confs[f"{prefix}.mount.readOnly"] = "true"
        if mount.get("subPath"):
            confs[f"{prefix}.mount.subPath"] = mount["subPath"]
        for key, value in (vol[kind] or {}).items():
            confs[f"{prefix}.options.{key}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return confs, t_volumes, t_mounts


def _pod_template(part: dict[str, Any], container: str, volumes: list, mounts: list) -> dict[str, Any]:
    c: dict[str, Any] = {"name": container}
    if part.get("securityContext"):
        c["securityContext"] = part["securityContext"]
    if mounts:
        c["volumeMounts"] = mounts
    pod_spec: dict[str, Any] = {"containers": [c]}
    if part.get("podSecurityContext"):
        pod_spec["securityContext"] = part["podSecurityContext"]
    if volumes:
        pod_spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "spec": pod_spec}


def submit_command(
    app: dict[str, Any],
    *,
    master: str,
    workdir: Path,
    submission_auth: dict[str, str] | None = None,
    extra_conf: dict[str, str] | None = None,
) -> list[str]:
    """The spark-submit argv for ``app`` (writes the pod templates into ``workdir``).

    :param master: the API server's URL (``https://host:port``).
    :param submission_auth: ``caCertFile``/``clientCertFile``/``clientKeyFile`` for
        spark-submit's own calls (``spark.kubernetes.authenticate.submission.*``).
    :param extra_conf: confs the caller adds last (they win), e.g. smaller CPU requests.
    """
    spec, meta = app["spec"], app["metadata"]
    if spec.get("mode", "cluster") != "cluster":
        raise ValueError(f"only cluster mode is submitted, not {spec.get('mode')!r}")
    name = meta["name"]
    driver, executor = spec.get("driver") or {}, spec.get("executor") or {}
    conf: dict[str, str] = {
        "spark.kubernetes.namespace": meta["namespace"],
        "spark.kubernetes.container.image": spec["image"],
        "spark.kubernetes.submission.waitAppCompletion": "false",
        "spark.kubernetes.driver.pod.name": f"{name}-driver",
        "spark.kubernetes.driver.label.sparkoperator.k8s.io/app-name": name,
        "spark.kubernetes.executor.label.sparkoperator.k8s.io/app-name": name,
    }
    if spec.get("imagePullPolicy"):
        conf["spark.kubernetes.container.image.pullPolicy"] = spec["imagePullPolicy"]
    conf.update({k: str(v) for k, v in (spec.get("sparkConf") or {}).items()})
    conf.update(_role_confs("driver", driver))
    if driver.get("serviceAccount"):
        conf["spark.kubernetes.authenticate.driver.serviceAccountName"] = driver["serviceAccount"]
    conf.update(_role_confs("executor", executor))
    if "instances" in executor:
        conf["spark.executor.instances"] = str(executor["instances"])
    for role, part, container in (
        ("driver", driver, DRIVER_CONTAINER),
        ("executor", executor, EXECUTOR_CONTAINER),
    ):
        vconfs, t_volumes, t_mounts = _split_volumes(spec, part, role)
        conf.update(vconfs)
        template = workdir / f"{role}-pod-template.yaml"
        template.write_text(yaml.safe_dump(_pod_template(part, container, t_volumes, t_mounts)))
        conf[f"spark.kubernetes.{role}.podTemplateFile"] = str(template)
        conf[f"spark.kubernetes.{role}.podTemplateContainerName"] = container
    for key, path in (submission_auth or {}).items():
        conf[f"spark.kubernetes.authenticate.submission.{key}"] = path
    conf.update(extra_conf or {})
    argv = [
        str(spark_submit_bin()),
        "--master",
        f"k8s://{master}",
        "--deploy-mode",
        "cluster",
        "--name",
        name,
    ]
    for key, value in conf.items():
        argv += ["--conf", f"{key}={value}"]
    return [*argv, spec["mainApplicationFile"], *(str(a) for a in spec.get("arguments") or [])]


def submit(argv: list[str], *, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    """Run spark-submit; it returns once the driver pod exists (waitAppCompletion=false).

    No kubeconfig: Spark's Kubernetes client would otherwise merge the user's current
    context (its client key, read as RSA) into the submission's own auth confs.
    """
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["KUBECONFIG"] = os.devnull
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, env=env)
