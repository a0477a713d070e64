"""streampipeline_schedule: suspend a pipeline outside business hours, resume it inside.

Runs at the start and the end of business hours (weekdays, in the DAG's time zone).  With
``action: auto`` the run's time decides: inside [business_start, business_end) on a
weekday it resumes, otherwise it suspends; ``suspend`` and ``resume`` force one.  It
declares only ``spec.suspend`` (server-side apply, its own field manager), then waits
for the phase Suspended, or Ready.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from airflow.sdk import CronTriggerTimetable, Param, dag, task

DOC = __doc__
TIMEZONE = "America/Sao_Paulo"


def wants_suspend(action: str, when: datetime, start_hour: int, end_hour: int, tz: str) -> bool:
    """Whether the run at ``when`` suspends (``auto``: outside weekday business hours)."""
    if action in ("suspend", "resume"):
        return action == "suspend"
    local = when.astimezone(ZoneInfo(tz))
    return not (local.weekday() < 5 and start_hour <= local.hour < end_hour)


@dag(
    dag_id="streampipeline_schedule",
    schedule=CronTriggerTimetable("0 8,18 * * 1-5", timezone=TIMEZONE),
    start_date=datetime(2026, 1, 1, tzinfo=ZoneInfo(TIMEZONE)),
    catchup=False,
    max_active_runs=1,
    tags=["streampipeline"],
    doc_md=DOC,
    params={
        "kubernetes_conn_id": Param("kubernetes_default", type="string"),
        "name": Param("payments", type="string", minLength=1),
        "namespace": Param("streampipeline", type="string", minLength=1),
        "action": Param("auto", enum=["auto", "suspend", "resume"]),
        "business_start_hour": Param(8, type="integer", minimum=0, maximum=23),
        "business_end_hour": Param(18, type="integer", minimum=1, maximum=24),
        "timezone": Param(TIMEZONE, type="string"),
        "timeout_minutes": Param(10, type="number", exclusiveMinimum=0),
        "poll_seconds": Param(5, type="number", exclusiveMinimum=0),
    },
)
def streampipeline_schedule():
    @task
    def set_suspend(params=None, dag_run=None) -> dict:
        from streampipeline_airflow import kube
        from streampipeline_airflow.tasks import custom_objects, failing_clearly, log

        def go() -> dict:
            when = dag_run.logical_date or dag_run.run_after
            suspend = wants_suspend(
                params["action"],
                when,
                params["business_start_hour"],
                params["business_end_hour"],
                params["timezone"],
            )
            api = custom_objects(params["kubernetes_conn_id"])
            if kube.get(api, params["name"], params["namespace"]) is None:
                raise kube.PipelineFailed(
                    f"StreamPipeline {params['namespace']}/{params['name']} does not exist: "
                    "deploy it first (DAG streampipeline_deploy)"
                )
            patch = kube.suspend_patch(params["name"], params["namespace"], suspend)
            stored = kube.apply(api, patch, field_manager=kube.SCHEDULE_MANAGER)
            log.info(
                "%s StreamPipeline %s/%s (run at %s)",
                "suspending" if suspend else "resuming",
                params["namespace"],
                params["name"],
                when.isoformat(),
            )
            obj = kube.wait_for_phase(
                api,
                params["name"],
                params["namespace"],
                "Suspended" if suspend else "Ready",
                generation=stored["metadata"]["generation"],
                timeout=float(params["timeout_minutes"]) * 60,
                poll=float(params["poll_seconds"]),
                log=log.info,
            )
            return {"suspend": suspend, "phase": obj["status"]["phase"]}

        return failing_clearly(go)

    set_suspend()


streampipeline_schedule()
