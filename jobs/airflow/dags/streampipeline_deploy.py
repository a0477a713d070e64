"""streampipeline_deploy: apply a StreamPipeline (server-side apply) and wait until it is Ready.

The manifest comes from the param ``manifest`` (a YAML file on the worker) or from the
params name, namespace and kafka_cluster; rate_per_second, replicas and suspend override
either.  Re-running with the same params changes nothing on the cluster.  The run fails
with the pipeline's own status message when the API server rejects the spec, when the
operator reports Failed, or when Ready (Suspended, for suspend: true) is not reached in
time.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import Param, dag, task

DOC = __doc__


@dag(
    dag_id="streampipeline_deploy",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["streampipeline"],
    doc_md=DOC,
    params={
        "kubernetes_conn_id": Param(
            "kubernetes_default",
            type="string",
            description="Airflow connection (type kubernetes) of the cluster",
        ),
        "manifest": Param(
            "", type="string", description="path of a StreamPipeline YAML file on the worker (optional)"
        ),
        "name": Param("", type="string", description="metadata.name (overrides the manifest's)"),
        "namespace": Param(
            "", type="string", description="metadata.namespace (overrides the manifest's; default 'default')"
        ),
        "kafka_cluster": Param(
            "",
            type="string",
            description="spec.kafka.cluster: the Strimzi Kafka (required without a manifest)",
        ),
        "rate_per_second": Param(
            None, type=["null", "integer"], minimum=0, description="spec.generator.ratePerSecond"
        ),
        "replicas": Param(None, type=["null", "integer"], minimum=0, description="spec.generator.replicas"),
        "suspend": Param(None, type=["null", "boolean"], description="spec.suspend"),
        "timeout_minutes": Param(
            10, type="number", exclusiveMinimum=0, description="how long to wait for Ready"
        ),
        "poll_seconds": Param(5, type="number", exclusiveMinimum=0),
    },
)
def streampipeline_deploy():
    @task
    def apply_pipeline(params=None) -> dict:
        from streampipeline_airflow import kube
        from streampipeline_airflow.tasks import custom_objects, failing_clearly, log

        def go() -> dict:
            manifest = kube.desired_manifest(params)
            stored = kube.apply(custom_objects(params["kubernetes_conn_id"]), manifest)
            meta = stored["metadata"]
            log.info(
                "applied StreamPipeline %s/%s: generation %s, resourceVersion %s",
                meta["namespace"],
                meta["name"],
                meta["generation"],
                meta["resourceVersion"],
            )
            return {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "generation": meta["generation"],
                "resourceVersion": meta["resourceVersion"],
                "suspend": bool((stored.get("spec") or {}).get("suspend")),
            }

        return failing_clearly(go)

    @task
    def wait_until_ready(applied: dict, params=None) -> dict:
        from streampipeline_airflow import kube
        from streampipeline_airflow.tasks import custom_objects, failing_clearly, log

        def go() -> dict:
            obj = kube.wait_for_phase(
                custom_objects(params["kubernetes_conn_id"]),
                applied["name"],
                applied["namespace"],
                "Suspended" if applied["suspend"] else "Ready",
                generation=applied["generation"],
                timeout=float(params["timeout_minutes"]) * 60,
                poll=float(params["poll_seconds"]),
                log=log.info,
            )
            return {**applied, "phase": obj["status"]["phase"]}

        return failing_clearly(go)

    wait_until_ready(apply_pipeline())


streampipeline_deploy()
