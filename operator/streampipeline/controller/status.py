"""A StreamPipeline's ``status``, derived from what its children report (pure functions).

* ``TopicsReady``: both KafkaTopics have Strimzi's ``Ready`` condition ``True`` for their
  current generation (``status.observedGeneration``).
* ``GeneratorReady``: the Deployment's ``availableReplicas`` reached the desired count.
* ``ProcessorRunning``: the SparkApplication's ``status.applicationState.state`` is ``RUNNING``.
* ``Ready``: all three (never while suspended).
* ``DriverMemorySufficient``: advisory, from the spec alone: whether the Spark driver's
  memory outside its heap holds the estimated batch and deduplication window
  (:meth:`StreamPipeline.driver_memory`); ``False`` says what to set, ``Unknown`` when
  the generator's rate is unbounded. It does not count towards ``Ready``: the job runs
  until the window fills.

``phase``: ``Failed`` (invalid spec, or the Spark job gave up), ``Deleting``, ``Suspended``,
``Running`` (Ready), ``Pending`` (no child exists yet), ``Degraded`` (was Running, no longer
Ready), else ``Provisioning``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..crd import CONDITION_TYPES
from ..render import names
from ..spec import StreamPipeline

__all__ = ["Observed", "compute_status", "driver_memory_check", "failed_status", "now_iso"]

SPARK_RUNNING = "RUNNING"
# The job is rendered with restartPolicy Always, so spark-operator retries a failed run or a
# failed submission (SUBMISSION_FAILED, e.g. the old driver pod still terminating) itself:
# only FAILED, which that policy never reaches on its own, means it gave up.
SPARK_GAVE_UP = ("FAILED",)


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass
class Observed:
    """The children as read from the API server (``None``: the object does not exist)."""

    topics: dict[str, Mapping[str, Any] | None] = field(default_factory=dict)  # role -> KafkaTopic
    deployment: Mapping[str, Any] | None = None
    spark_application: Mapping[str, Any] | None = None

    def any_exists(self) -> bool:
        return any(t is not None for t in self.topics.values()) or any(
            o is not None for o in (self.deployment, self.spark_application)
        )


def _ready_condition(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond
    return None


def _condition(
    type_: str,
    ok: bool | None,
    reason: str,
    message: str,
    previous: Sequence[Mapping[str, Any]],
    now: str,
) -> dict[str, Any]:
    status = "Unknown" if ok is None else "True" if ok else "False"
    old = next((c for c in previous if c.get("type") == type_), None)
    since = old.get("lastTransitionTime") if old and old.get("status") == status else None
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or now,
    }


def _topics(p: StreamPipeline, observed: Observed) -> tuple[bool, str, str, int]:
    ready, problems = 0, []
    for role, name in (("customers", names(p)["customers"]), ("transactions", names(p)["transactions"])):
        topic = observed.topics.get(role)
        if topic is None:
            problems.append(f"KafkaTopic {name} does not exist")
            continue
        cond = _ready_condition(topic)
        generation = (topic.get("metadata") or {}).get("generation")
        seen = (topic.get("status") or {}).get("observedGeneration")
        if generation is not None and (seen is None or seen < generation):
            # Strimzi's Ready is about the spec it last saw: after an edit, not yet this one.
            problems.append(f"KafkaTopic {name}: generation {generation} not reconciled by Strimzi yet")
        elif cond is not None and cond.get("status") == "True":
            ready += 1
        elif cond is not None:
            problems.append(
                f"KafkaTopic {name}: {cond.get('reason') or 'NotReady'}: {cond.get('message') or ''}"
            )
        else:
            problems.append(f"KafkaTopic {name} not reconciled by Strimzi yet")
    if ready == 2:
        return True, "TopicsReady", "2/2 KafkaTopics ready", ready
    reason = "TopicsMissing" if any("does not exist" in m for m in problems) else "TopicsNotReady"
    return False, reason, "; ".join(m.strip() for m in problems), ready


def _generator(p: StreamPipeline, observed: Observed) -> tuple[bool, str, str, str]:
    desired = 0 if p.spec.suspend else p.spec.generator.replicas
    dep = observed.deployment
    if dep is None:
        return (
            False,
            "DeploymentMissing",
            f"Deployment {names(p)['generator']} does not exist",
            f"0/{desired}",
        )
    available = int((dep.get("status") or {}).get("availableReplicas") or 0)
    counts = f"{available}/{desired}"
    if available >= desired:
        return True, "MinimumReplicasAvailable", f"{counts} generator pods available", counts
    return False, "ReplicasUnavailable", f"{counts} generator pods available", counts


def _processor(observed: Observed) -> tuple[bool, str, str, str]:
    app = observed.spark_application
    if app is None:
        return False, "NotCreated", "SparkApplication does not exist", "-"
    state_obj = (app.get("status") or {}).get("applicationState") or {}
    state = state_obj.get("state") or ""
    if state == SPARK_RUNNING:
        return True, "Running", "Spark job is running", state
    if not state:
        return False, "NotSubmitted", "SparkApplication not picked up by spark-operator yet", "-"
    message = f"Spark job is {state}"
    if state_obj.get("errorMessage"):
        message += f": {state_obj['errorMessage']}"
    return False, state.title().replace("_", ""), message, state


def driver_memory_check(p: StreamPipeline) -> tuple[bool | None, str, str]:
    """``DriverMemorySufficient``'s status, reason and message (also printed by ``validate``)."""
    est = p.driver_memory()
    field = "spec.processing.driver.memoryOverhead"
    given = (
        f"{field} ({est.configured_mib:.0f} MiB)"
        if est.explicit
        else (f"Spark's default memoryOverhead ({est.configured_mib:.0f} MiB, 40% of driver.memory)")
    )
    batch = f"a batch of {est.batch_records:,} records"
    if est.window_ids is None:
        needs = f"about {est.needed_mib:.0f} MiB outside its JVM heap for {batch} alone"
        window = (
            "generator.ratePerSecond is 0 (as fast as possible), "
            "so the deduplication window's size is unknown"
        )
    else:
        window_text = p.spec.processing.deduplication_window
        needs = (
            f"about {est.needed_mib:.0f} MiB outside its JVM heap for {batch} and "
            f"{est.window_ids:,.0f} ids in the {window_text} deduplication window"
        )
        window = ""
    if est.sufficient is False:
        message = f"the Spark driver needs {needs}, more than {given}: set {field}: {est.suggestion}"
        return False, "BelowEstimate", message + (f" or more; {window}" if window else "")
    if est.sufficient is None:
        message = f"{window}: size {field} for it (the driver needs {needs}; it gets {given})"
        return None, "RateUnbounded", message
    return True, "Sufficient", f"{given} holds the estimated need: the Spark driver needs {needs}"


def _children(p: StreamPipeline) -> dict[str, Any]:
    n = names(p)
    return {
        "kafkaTopics": [n["customers"], n["transactions"]],
        "configMap": n["config"],
        "persistentVolumeClaim": n["data"],
        "deployment": n["generator"],
        "sparkApplication": n["processor"],
        # The REST service (spec.api): a Deployment and a Service of the same name.
        **({"apiDeployment": n["api"], "apiService": n["api"]} if p.spec.api.enabled else {}),
    }


def compute_status(
    p: StreamPipeline,
    observed: Observed,
    previous: Mapping[str, Any] | None = None,
    *,
    observed_generation: int | None = None,
    deleting: bool = False,
    now: str | None = None,
) -> dict[str, Any]:
    """The full ``status`` (the operator's fields; kopf's own are left alone)."""
    previous = previous or {}
    now = now or now_iso()
    prev_conditions = previous.get("conditions") or []
    suspended = p.spec.suspend

    topics_ok, t_reason, t_message, topics_ready = _topics(p, observed)
    gen_ok, g_reason, g_message, gen_counts = _generator(p, observed)
    proc_ok, p_reason, p_message, proc_state = _processor(observed)
    if suspended:
        gen_ok, g_reason = False, "Suspended"
        proc_ok, p_reason, p_message = False, "Suspended", "spec.suspend is true: the Spark job is stopped"
        if observed.spark_application is None:
            proc_state = "-"
    ready = topics_ok and gen_ok and proc_ok and not suspended

    if ready:
        r_reason, r_message = "Running", "all children are ready"
    elif suspended:
        r_reason, r_message = "Suspended", "spec.suspend is true"
    else:
        waiting = [
            m for ok, m in ((topics_ok, t_message), (gen_ok, g_message), (proc_ok, p_message)) if not ok
        ]
        r_reason, r_message = "NotReady", "; ".join(waiting)

    prev_phase = previous.get("phase")
    if deleting:
        phase = "Deleting"
    elif suspended:
        phase = "Suspended"
    elif ready:
        phase = "Running"
    elif proc_state in SPARK_GAVE_UP:
        phase, r_reason = "Failed", "ProcessorFailed"
    elif not observed.any_exists():
        phase = "Pending"
    elif prev_phase in ("Running", "Degraded"):
        phase = "Degraded"
    else:
        phase = "Provisioning"

    conditions = [
        _condition("TopicsReady", topics_ok, t_reason, t_message, prev_conditions, now),
        _condition("GeneratorReady", gen_ok, g_reason, g_message, prev_conditions, now),
        _condition("ProcessorRunning", proc_ok, p_reason, p_message, prev_conditions, now),
        _condition("Ready", ready, r_reason, r_message, prev_conditions, now),
        _condition("DriverMemorySufficient", *driver_memory_check(p), prev_conditions, now),
    ]
    status: dict[str, Any] = {
        "phase": phase,
        "message": "" if ready else r_message,
        "topics": f"{topics_ready}/2",
        "generator": gen_counts,
        "processor": proc_state,
        "children": _children(p),
        "conditions": conditions,
    }
    generation = (
        observed_generation if observed_generation is not None else previous.get("observedGeneration")
    )
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def failed_status(
    messages: Sequence[str],
    previous: Mapping[str, Any] | None = None,
    *,
    observed_generation: int | None = None,
    now: str | None = None,
) -> dict[str, Any]:
    """Status of a pipeline whose spec is invalid: nothing is created or changed."""
    previous = previous or {}
    now = now or now_iso()
    message = "invalid spec: " + "; ".join(messages)
    prev_conditions = previous.get("conditions") or []
    conditions = [
        dict(c) for c in prev_conditions if c.get("type") in CONDITION_TYPES and c.get("type") != "Ready"
    ]
    conditions.append(_condition("Ready", False, "InvalidSpec", message, prev_conditions, now))
    status: dict[str, Any] = {"phase": "Failed", "message": message, "conditions": conditions}
    generation = (
        observed_generation if observed_generation is not None else previous.get("observedGeneration")
    )
    if generation is not None:
        status["observedGeneration"] = generation
    return status
