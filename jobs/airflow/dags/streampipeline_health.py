"""streampipeline_health: every 5 minutes, fail when a pipeline crosses a threshold.

Reads the StreamPipeline's status (phase, conditions) and, when the params say where,
the processor's progress in the sink (records read, quarantined by reason) and the
Kafka topics' end offsets (lag).  Fails, naming each crossed threshold and the figures,
when the pipeline is Failed, has not been Ready for max_not_ready_minutes, is more than
max_lag records behind, or quarantines more than max_quarantine_share of what it reads.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import Param, dag, task

DOC = __doc__


@dag(
    dag_id="streampipeline_health",
    schedule="*/5 * * * *",
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["streampipeline"],
    doc_md=DOC,
    params={
        "kubernetes_conn_id": Param("kubernetes_default", type="string"),
        "name": Param("payments", type="string", minLength=1),
        "namespace": Param("streampipeline", type="string", minLength=1),
        "max_not_ready_minutes": Param(
            10, type="number", minimum=0, description="fail once Ready has been False this long"
        ),
        "sink_path": Param(
            "",
            type="string",
            description="the pipeline's sink as mounted on the worker (enables the progress checks)",
        ),
        "bootstrap_servers": Param(
            "", type="string", description="Kafka bootstrap address (enables the lag check; needs sink_path)"
        ),
        "max_lag": Param(
            100000, type=["null", "integer"], minimum=0, description="records behind the topics' end offsets"
        ),
        "max_quarantine_share": Param(
            0.05, type=["null", "number"], minimum=0, maximum=1, description="quarantined / records read"
        ),
    },
)
def streampipeline_health():
    @task
    def check_health(params=None) -> dict:
        from streampipeline_airflow import health, kube
        from streampipeline_airflow.tasks import custom_objects, failing_clearly, log

        def go() -> dict:
            name, namespace = params["name"], params["namespace"]
            obj = kube.get(custom_objects(params["kubernetes_conn_id"]), name, namespace)
            if obj is None:
                raise kube.PipelineFailed(f"StreamPipeline {namespace}/{name} does not exist")
            progress = health.read_progress(params["sink_path"]) if params["sink_path"] else None
            ends = None
            if progress is not None and params["bootstrap_servers"]:
                ends = health.end_offsets(params["bootstrap_servers"], health.kafka_topics(obj))
            thresholds = health.Thresholds(
                max_not_ready_minutes=float(params["max_not_ready_minutes"]),
                max_lag=params["max_lag"],
                max_quarantine_share=params["max_quarantine_share"],
            )
            result = health.evaluate(obj, thresholds, progress=progress, ends=ends)
            for note in result.notes:
                log.info("%s", note)
            log.info("figures: %s", result.figures)
            if not result.ok:
                raise kube.PipelineFailed("unhealthy: " + " | ".join(result.problems))
            return result.figures

        return failing_clearly(go)

    check_health()


streampipeline_health()
