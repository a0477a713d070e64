"""streampipeline_daily_report: the daily batch analytics over one day of the sink's Parquet.

For the run's logical date (or the param ``date``), the day in ``timezone``: totals by
category and by city, the top customers, and the period x state x age-band roll-up,
written to ``<report_path>/date=YYYY-MM-DD/`` (default ``<sink_path>/reports/daily``).
A re-run of a date replaces that date's report as a whole.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

DOC = __doc__


@dag(
    dag_id="streampipeline_daily_report",
    # Airflow 2's interval semantics on purpose: logical date = the day being reported.
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["streampipeline"],
    doc_md=DOC,
    params={
        "sink_path": Param(
            "/data/streampipeline",
            type="string",
            minLength=1,
            description="the pipeline's sink as mounted on the worker",
        ),
        "report_path": Param(
            "", type="string", description="where the dated reports go (default <sink_path>/reports/daily)"
        ),
        "date": Param("", type="string", description="YYYY-MM-DD to report instead of the logical date"),
        "timezone": Param("UTC", type="string", description="the zone whose calendar day is reported"),
        "top_customers": Param(10, type="integer", minimum=1),
    },
)
def streampipeline_daily_report():
    @task
    def build_report(params=None, dag_run=None) -> dict:
        from streampipeline_airflow import report
        from streampipeline_airflow.tasks import log

        if params["date"]:
            day = date.fromisoformat(params["date"])
        else:
            day = (dag_run.logical_date or dag_run.run_after).astimezone(timezone.utc).date()
        summary = report.run(
            params["sink_path"],
            day,
            tz=params["timezone"],
            report_path=params["report_path"] or None,
            top=params["top_customers"],
        )
        log.info("daily report: %s", summary)
        return summary

    build_report()


streampipeline_daily_report()
