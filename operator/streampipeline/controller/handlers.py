"""kopf handlers: StreamPipeline -> KafkaTopics, ConfigMap, PVC, Deployments, SparkApplication,
Service.

* create/resume/update: parse the spec (an invalid one sets ``phase: Failed`` and is not
  retried: the user has to fix it), render the children, adopt them (owner references:
  deletion is left to the garbage collector, so there is no finalizer that could hang),
  and server-side apply them.  What an update does follows from that: a rate/replica
  change patches the Deployment in place, a partition increase patches the KafkaTopic,
  and a change to what the Spark job runs (its ``spec-hash`` annotation) deletes and
  re-creates the SparkApplication, which resumes from its checkpoint.  ``suspend``
  scales the generator to 0 and deletes the SparkApplication (the REST service stays:
  topics and data do).  ``spec.api.enabled: false`` deletes the REST service's
  Deployment and Service (``<name>-api``) if the pipeline owns them.
* status: recomputed from the children's own status whenever a child changes (event
  handlers on KafkaTopics, Deployments and SparkApplications carrying our labels); a
  deleted child is re-created.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

import kopf

from .. import render
from ..settings import Settings
from ..spec import API_VERSION, GROUP, KIND, PLURAL, VERSION, SpecError, StreamPipeline, parse_spec
from . import metrics
from .kube import ApiException, Kube, load_api_client
from .status import Observed, compute_status, failed_status

__all__ = ["STATE", "reconcile", "refresh_status"]

log = logging.getLogger("streampipeline.controller")

MANAGED = {"app.kubernetes.io/managed-by": render.MANAGED_BY}
STATUS_KEYS = ("phase", "message", "topics", "generator", "processor", "children", "conditions")


class _State:
    kube: Kube | None = None
    settings: Settings = Settings()


STATE = _State()
_locks: dict[tuple[str, str], threading.RLock] = {}
_locks_guard = threading.Lock()


def _lock(namespace: str, name: str) -> threading.RLock:
    with _locks_guard:
        return _locks.setdefault((namespace, name), threading.RLock())


def _kube() -> Kube:
    if STATE.kube is None:
        STATE.kube = Kube(load_api_client())
    return STATE.kube


# Level-triggered safety net: every known pipeline is reconciled (which also corrects drift,
# e.g. a Deployment scaled by hand) and its status refreshed this often.  Not a kopf timer:
# timers make kopf put a finalizer on every object.
RESYNC_ENV = "STREAMPIPELINE_RESYNC_SECONDS"
_known: set[tuple[str, str]] = set()
_stop_resync = threading.Event()


def _resync_loop(interval: float) -> None:
    while not _stop_resync.wait(interval):
        for ns, name in sorted(_known):
            try:
                body = _kube().get(API_VERSION, KIND, ns, name)
                if body is None:
                    _known.discard((ns, name))
                elif not body["metadata"].get("deletionTimestamp"):
                    reconcile(body, log)
            except Exception as exc:  # keep the loop alive; kopf's handlers retry on their own
                log.warning(f"resync of {ns}/{name} failed: {exc}")


@kopf.on.startup()
def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    STATE.settings = Settings.from_env()
    STATE.kube = Kube(load_api_client())
    settings.execution.max_workers = 8
    settings.posting.level = logging.WARNING  # Events for problems only
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    interval = float(os.environ.get(RESYNC_ENV) or 60)
    if interval > 0:
        _stop_resync.clear()
        threading.Thread(target=_resync_loop, args=(interval,), name="resync", daemon=True).start()


@kopf.on.cleanup()
def _cleanup(**_: Any) -> None:
    _stop_resync.set()


@kopf.on.probe(id="pipelines")
def _probe(**_: Any) -> int:
    return sum(1 for _ in metrics._phases)


@kopf.on.probe(id="apiserver", errors=kopf.ErrorsMode.PERMANENT, timeout=5)
def _probe_apiserver(**_: Any) -> str:
    """/healthz (liveness and readiness) fails while the API server cannot be reached:
    kopf's own endpoint would answer 200 while every call fails."""
    try:
        return _kube().version()
    except Exception as exc:
        raise kopf.PermanentError(f"cannot reach the Kubernetes API server: {exc}") from exc


# --- reconcile --------------------------------------------------------------------------------


def _temporary(exc: ApiException, what: str) -> kopf.TemporaryError:
    reason = f"{exc.status} {exc.reason}"
    if exc.status == 404:
        return kopf.TemporaryError(f"{what}: API not available (is its CRD installed?): {reason}", delay=30)
    return kopf.TemporaryError(f"{what}: {reason}: {(exc.body or '')[:300]}", delay=10)


def _ensure_pvc(kube: Kube, p: StreamPipeline, claim: dict[str, Any], owner: Mapping[str, Any]) -> None:
    """Create the claim if absent (never resize it); own it only if it is not retained."""
    name = claim["metadata"]["name"]
    retain = p.spec.sink.retain_on_delete
    existing = kube.get("v1", "PersistentVolumeClaim", p.namespace, name)
    if existing is None:
        if not retain:
            kopf.adopt(claim, owner=owner)
        kube.apply(claim)
        return
    uid = owner["metadata"]["uid"]
    refs = list((existing.get("metadata") or {}).get("ownerReferences") or [])
    ours = [r for r in refs if r.get("uid") == uid]
    if retain and ours:
        kube.merge_patch(
            "v1", "PersistentVolumeClaim", p.namespace, name,
            {"metadata": {"ownerReferences": [r for r in refs if r.get("uid") != uid]}},
        )  # fmt: skip
    elif not retain and not ours:
        ref = dict(kopf.build_owner_reference(owner))  # type: ignore[arg-type]
        kube.merge_patch(
            "v1", "PersistentVolumeClaim", p.namespace, name, {"metadata": {"ownerReferences": [*refs, ref]}}
        )


def _delete_spark_application(kube: Kube, ns: str, name: str) -> bool:
    """Delete in the foreground: the application stays (terminating) until its driver pod is
    gone, so no new run (a replacement, a resume) is submitted while a pod of the same name
    still exists.  False if there was none."""
    return kube.delete(render.SPARK_APP_API, "SparkApplication", ns, name, propagation="Foreground")


def _ensure_spark_application(kube: Kube, app: dict[str, Any], logger: logging.Logger) -> None:
    meta = app["metadata"]
    ns, name = meta["namespace"], meta["name"]
    existing = kube.get(render.SPARK_APP_API, "SparkApplication", ns, name)
    if existing is not None:
        old_meta = existing.get("metadata") or {}
        if old_meta.get("deletionTimestamp"):
            raise kopf.TemporaryError(f"SparkApplication {name} is still terminating", delay=5)
        old_hash = (old_meta.get("annotations") or {}).get(render.SPEC_HASH_ANNOTATION)
        if old_hash != meta["annotations"][render.SPEC_HASH_ANNOTATION]:
            logger.info(f"SparkApplication {name} changed: replacing it (it resumes from its checkpoint)")
            _delete_spark_application(kube, ns, name)
            if kube.get(render.SPARK_APP_API, "SparkApplication", ns, name) is not None:
                raise kopf.TemporaryError(f"SparkApplication {name} is still terminating", delay=5)
    kube.apply(app)


# The REST service's children (spec.api): removed again when it is disabled.
API_KINDS = (("apps/v1", "Deployment"), ("v1", "Service"))


def _remove_api(kube: Kube, p: StreamPipeline, owner: Mapping[str, Any], logger: logging.Logger) -> None:
    """Delete ``<name>-api`` (Deployment and Service) if this pipeline owns them: an object
    of that name that someone else made is left alone."""
    name, uid = render.names(p)["api"], owner["metadata"]["uid"]
    for api_version, kind in API_KINDS:
        try:
            existing = kube.get(api_version, kind, p.namespace, name)
            refs = ((existing or {}).get("metadata") or {}).get("ownerReferences") or []
            if any(r.get("uid") == uid for r in refs) and kube.delete(api_version, kind, p.namespace, name):
                logger.info(f"spec.api.enabled is false: deleted {kind} {name}")
        except ApiException as exc:
            raise _temporary(exc, f"{kind} {name}") from exc


def reconcile(body: Mapping[str, Any], logger: logging.Logger | None = None) -> StreamPipeline | None:
    """Bring the children in line with ``body`` (a StreamPipeline); idempotent.

    Returns the parsed pipeline, or ``None`` if the spec is invalid (status says why).
    """
    logger = logger or log
    kube = _kube()
    meta = body["metadata"]
    ns, name, generation = meta["namespace"], meta["name"], meta.get("generation")
    with _lock(ns, name), metrics.timed_reconcile() as outcome:
        try:
            p = parse_spec(name, body.get("spec"), ns)
        except SpecError as exc:
            outcome["result"] = "invalid"
            logger.error(f"invalid spec, nothing changed: {exc}")
            refresh_status(ns, name, observed_generation=generation)
            return None
        try:
            # One child failing (e.g. Strimzi's CRD not installed yet) does not hold back the
            # others; the handler is retried with every problem in its message.
            problems: list[kopf.TemporaryError] = []
            for obj in render.children(p, STATE.settings):
                what = f"{obj['kind']} {obj['metadata']['name']}"
                try:
                    if obj["kind"] == "PersistentVolumeClaim":
                        _ensure_pvc(kube, p, obj, body)
                        continue
                    # Retained topics outlive the pipeline with the volume: the checkpoint on
                    # it holds their offsets, so a re-created pipeline resumes instead of
                    # failing on topics that start again at offset 0.  (Server-side apply
                    # drops an owner reference it set before once it is no longer applied.)
                    if not (obj["kind"] == "KafkaTopic" and p.spec.sink.retain_on_delete):
                        kopf.adopt(obj, owner=body)  # type: ignore[arg-type]
                    if obj["kind"] == "SparkApplication":
                        _ensure_spark_application(kube, obj, logger)
                    else:
                        kube.apply(obj)
                except ApiException as exc:
                    problems.append(_temporary(exc, what))
                except kopf.TemporaryError as exc:
                    problems.append(exc)
            if problems:
                delay = min(e.delay or 10 for e in problems)
                raise kopf.TemporaryError("; ".join(str(e) for e in problems), delay=delay)
            if not p.spec.api.enabled:
                _remove_api(kube, p, body, logger)
            if p.spec.suspend:
                processor = render.names(p)["processor"]
                try:
                    if _delete_spark_application(kube, ns, processor):
                        logger.info(f"suspended: deleted SparkApplication {processor}")
                except ApiException as exc:
                    if exc.status != 404:  # 404: no such kind installed, nothing to delete
                        raise _temporary(exc, f"SparkApplication {processor}") from exc
        finally:
            try:
                refresh_status(ns, name, observed_generation=generation)
            except ApiException as exc:  # never hide the original error
                logger.warning(f"could not update status: {exc.status} {exc.reason}")
        return p


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
def reconcile_handler(body: kopf.Body, logger: logging.Logger, **_: Any) -> None:
    reconcile(body, logger)


# --- status -----------------------------------------------------------------------------------


def observe(kube: Kube, p: StreamPipeline) -> Observed:
    n = render.names(p)
    return Observed(
        topics={
            role: kube.get(render.KAFKA_TOPIC_API, "KafkaTopic", p.namespace, n[role])
            for role in render.TOPIC_ROLES
        },
        deployment=kube.get("apps/v1", "Deployment", p.namespace, n["generator"]),
        spark_application=kube.get(render.SPARK_APP_API, "SparkApplication", p.namespace, n["processor"]),
    )


def refresh_status(namespace: str, name: str, observed_generation: int | None = None) -> dict | None:
    """Recompute the status from the children and write it if it changed (serialised per
    pipeline, reading after the lock is taken, so the last write reflects the latest state)."""
    kube = _kube()
    with _lock(namespace, name):
        body = kube.get(API_VERSION, KIND, namespace, name)
        if body is None:
            metrics.forget_pipeline(namespace, name)
            return None
        previous = body.get("status") or {}
        meta = body["metadata"]
        try:
            p = parse_spec(name, body.get("spec"), namespace)
        except SpecError as exc:
            messages = [str(e) for e in exc.errors]
            status = failed_status(messages, previous, observed_generation=observed_generation)
        else:
            status = compute_status(
                p,
                observe(kube, p),
                previous,
                observed_generation=observed_generation,
                deleting=bool(meta.get("deletionTimestamp")),
            )
        patch: dict[str, Any] = {k: None for k in STATUS_KEYS if k not in status and k in previous}
        old_children = previous.get("children") or {}
        if isinstance(old_children, dict) and "children" in status:
            # A merge patch merges objects: a child no longer listed is removed by a null.
            status["children"] = {
                **{k: None for k in old_children if k not in status["children"]},
                **status["children"],
            }
        patch.update({k: v for k, v in status.items() if previous.get(k) != v})
        if patch:
            kube.merge_patch(API_VERSION, KIND, namespace, name, {"status": patch}, sub="status")
        metrics.set_phase(namespace, name, status["phase"])
        return status


def _owner_name(body: Mapping[str, Any]) -> str | None:
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == KIND and ref.get("apiVersion", "").startswith(f"{GROUP}/"):
            return ref.get("name")
    labels = (body.get("metadata") or {}).get("labels") or {}
    return labels.get("app.kubernetes.io/instance")


def _child_event(type: str | None, body: kopf.Body, namespace: str, logger: logging.Logger, **_: Any) -> None:
    owner = _owner_name(body)
    if not owner or not namespace:
        return
    try:
        status = refresh_status(namespace, owner)
        if type == "DELETED" and status is not None and status.get("phase") not in ("Deleting", "Failed"):
            pipeline = _kube().get(API_VERSION, KIND, namespace, owner)
            if pipeline is not None and not pipeline["metadata"].get("deletionTimestamp"):
                reconcile(pipeline, logger)  # re-create what was deleted behind our back
    except (ApiException, kopf.TemporaryError) as exc:
        logger.warning(f"status of {namespace}/{owner} not updated: {exc}")


kopf.on.event("kafka.strimzi.io", "v1", "kafkatopics", labels=MANAGED)(_child_event)
kopf.on.event("apps", "v1", "deployments", labels=MANAGED)(_child_event)
kopf.on.event("sparkoperator.k8s.io", "v1beta2", "sparkapplications", labels=MANAGED)(_child_event)


@kopf.on.event(GROUP, VERSION, PLURAL)
def _pipeline_event(type: str | None, body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    if type == "DELETED":
        _known.discard((namespace, name))
        metrics.forget_pipeline(namespace, name)
        with _locks_guard:
            _locks.pop((namespace, name), None)
        return
    _known.add((namespace, name))
    deleting = body.get("metadata", {}).get("deletionTimestamp")
    if deleting and body.get("status", {}).get("phase") != "Deleting":
        refresh_status(namespace, name)
