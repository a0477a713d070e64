"""Helpers shared by the StreamPipeline DAGs (this folder goes into Airflow's dags folder).

Airflow no longer starts the pipeline's processes: the operator does.  The DAGs drive the
``StreamPipeline`` resource (:mod:`.kube`), judge its health (:mod:`.health`) and report
on the Parquet it produces (:mod:`.report`).  The modules import Airflow nowhere, so
they are plain functions that the DAG files wrap in tasks.
"""
