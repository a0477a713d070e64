"""Apply a StreamPipeline with server-side apply and wait for the status the operator writes.

Server-side apply (not create, not a merge patch): a re-run with the same manifest is a
no-op on the API server (same ``generation``, same ``resourceVersion``), and a changed
field is updated in place.  Each DAG applies under its own field manager so that the
schedule DAG, which declares only ``spec.suspend``, never takes away fields the deploy
DAG declared.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from copy import deepcopy
from pathlib import Path
from typing import Any

import yaml

GROUP = "streampipeline.io"
VERSION = "v1alpha1"
PLURAL = "streampipelines"
KIND = "StreamPipeline"
DEPLOY_MANAGER = "streampipeline-airflow-deploy"
SCHEDULE_MANAGER = "streampipeline-airflow-schedule"

__all__ = [
    "PipelineFailed",
    "apply",
    "desired_manifest",
    "get",
    "suspend_patch",
    "wait_for_phase",
]


class PipelineFailed(RuntimeError):
    """The pipeline reached a state the DAG must fail on; the message says why and what to do."""


def _load_manifest(path: str) -> dict[str, Any]:
    try:
        docs = [d for d in yaml.safe_load_all(Path(path).read_text(encoding="utf-8")) if d]
    except (OSError, yaml.YAMLError) as exc:
        raise PipelineFailed(f"cannot read the StreamPipeline manifest {path}: {exc}") from exc
    pipelines = [d for d in docs if isinstance(d, dict) and d.get("kind") == KIND]
    if len(pipelines) != 1:
        raise PipelineFailed(f"{path} must hold exactly one {KIND} document, found {len(pipelines)}")
    return pipelines[0]


def desired_manifest(params: Mapping[str, Any]) -> dict[str, Any]:
    """The StreamPipeline the deploy DAG declares: the ``manifest`` file if given, with the
    params that are set (name, namespace, kafka_cluster, rate_per_second, replicas,
    suspend) on top; without a file, ``name`` and ``kafka_cluster`` are required."""
    if params.get("manifest"):
        doc = deepcopy(_load_manifest(str(params["manifest"])))
    else:
        if not params.get("name") or not params.get("kafka_cluster"):
            raise PipelineFailed(
                "give either the param 'manifest' (a StreamPipeline YAML file on the worker) "
                "or both 'name' and 'kafka_cluster'"
            )
        doc = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": {}, "spec": {}}
    meta = doc.setdefault("metadata", {})
    spec = doc.setdefault("spec", {})
    if params.get("name"):
        meta["name"] = params["name"]
    if params.get("namespace"):
        meta["namespace"] = params["namespace"]
    meta.setdefault("namespace", "default")
    if params.get("kafka_cluster"):
        spec.setdefault("kafka", {})["cluster"] = params["kafka_cluster"]
    generator = {"ratePerSecond": params.get("rate_per_second"), "replicas": params.get("replicas")}
    for key, value in generator.items():
        if value is not None:
            spec.setdefault("generator", {})[key] = value
    if params.get("suspend") is not None:
        spec["suspend"] = bool(params["suspend"])
    # Only what a user declares: server-managed metadata in a copied manifest would conflict.
    for key in ("resourceVersion", "uid", "generation", "creationTimestamp", "managedFields"):
        meta.pop(key, None)
    doc.pop("status", None)
    return doc


def suspend_patch(name: str, namespace: str, suspend: bool) -> dict[str, Any]:
    """The schedule DAG's whole declaration: ``spec.suspend`` and nothing else."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"suspend": suspend},
    }


def _api_error(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    try:
        doc = json.loads(body) if body else {}
    except (TypeError, ValueError):
        doc = {}
    message = doc.get("message") or body or str(exc)
    return f"HTTP {getattr(exc, 'status', '?')}: {message}"


def apply(api: Any, manifest: Mapping[str, Any], field_manager: str = DEPLOY_MANAGER) -> dict[str, Any]:
    """Server-side apply ``manifest`` (``api``: a kubernetes ``CustomObjectsApi``); return
    the object as stored.  A spec the API server rejects (schema, CEL rules) raises
    :class:`PipelineFailed` with the server's message."""
    meta = manifest["metadata"]
    try:
        api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            meta["namespace"],
            PLURAL,
            meta["name"],
            manifest,
            field_manager=field_manager,
            force=True,  # the DAG's declaration wins over a hand edit of the same field
            _content_type="application/apply-patch+yaml",
        )
    except Exception as exc:
        if getattr(exc, "status", None) is None:
            raise
        raise PipelineFailed(
            f"the API server rejected StreamPipeline {meta['namespace']}/{meta['name']}: {_api_error(exc)}"
        ) from exc
    # The client does not decode an apply-patch answer (it returns None): read it back.
    stored = get(api, meta["name"], meta["namespace"])
    if stored is None:
        raise PipelineFailed(f"StreamPipeline {meta['namespace']}/{meta['name']} vanished right after apply")
    return stored


def get(api: Any, name: str, namespace: str) -> dict[str, Any] | None:
    """The pipeline as stored, or None when it does not exist."""
    try:
        return api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except Exception as exc:
        if getattr(exc, "status", None) == 404:
            return None
        raise


def condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return {}


def _describe(obj: Mapping[str, Any]) -> str:
    status = obj.get("status") or {}
    ready = condition(obj, "Ready")
    message = status.get("message") or ready.get("message") or "no message"
    return f"phase {status.get('phase') or 'none yet'}: {message}"


def _reached(obj: Mapping[str, Any], want: str) -> bool:
    status = obj.get("status") or {}
    if want == "Ready":
        return condition(obj, "Ready").get("status") == "True" and status.get("phase") == "Running"
    return status.get("phase") == want


def wait_for_phase(
    api: Any,
    name: str,
    namespace: str,
    want: str,
    *,
    generation: int | None = None,
    timeout: float = 600.0,
    poll: float = 2.0,
    log: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll until the operator reports ``want`` (``Ready`` or ``Suspended``) for
    ``generation`` or later: a status written for the previous spec does not count.
    A ``Failed`` phase ends the wait at once with the pipeline's own message; a timeout
    fails with the last phase and message."""
    deadline = clock() + timeout
    ref = f"StreamPipeline {namespace}/{name}"
    last = ""
    while True:
        obj = get(api, name, namespace)
        if obj is None:
            raise PipelineFailed(f"{ref} does not exist (deleted while waiting?)")
        status = obj.get("status") or {}
        current = generation or obj["metadata"].get("generation")
        seen = status.get("observedGeneration")
        if seen is not None and current is not None and seen >= current:
            if _reached(obj, want):
                log(f"{ref} reached {want} ({_describe(obj)})")
                return obj
            if status.get("phase") == "Failed":
                raise PipelineFailed(
                    f"{ref} failed: {status.get('message') or _describe(obj)} "
                    f"(see `kubectl describe streampipeline {name} -n {namespace}`)"
                )
            state = _describe(obj)
        else:
            state = f"waiting for the operator to observe generation {current} (seen: {seen})"
        if state != last:
            log(f"{ref}: {state}")
            last = state
        if clock() > deadline:
            raise PipelineFailed(f"{ref} not {want} after {timeout:.0f}s; last {state}")
        sleep(poll)
