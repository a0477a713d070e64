"""Run DAGs with ``dag.test()`` inside the Airflow virtualenv, one request per stdin line.

Started by tests/airflow/conftest.py with the Airflow venv's python (never the project's):
importing Airflow once and running every test's DAG runs in this one process saves the
half minute each ``airflow`` command spends starting up on a loaded two-core machine.
Request: ``{"dag_id", "conf", "logical_date"}``; answer (one line, prefixed ``RESULT ``):
the run's state, each task's state and XCom return value, the warnings raised while
importing the DAG files, and the run's console output.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import traceback
import warnings
from datetime import datetime


def _load(dag_folder: str):
    from airflow.dag_processing.dagbag import DagBag

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = DagBag(dag_folder=dag_folder)
    seen = [
        {"category": w.category.__name__, "message": str(w.message), "file": w.filename, "line": w.lineno}
        for w in caught
    ]
    return bag, seen


@contextlib.contextmanager
def _captured():
    """Everything written to fds 1 and 2 (structlog, print, subprocesses) into a buffer."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    buf = io.StringIO()
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        try:
            yield buf
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            tmp.seek(0)
            buf.write(tmp.read().decode("utf-8", "replace"))


def _run(bag, req: dict) -> dict:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    os.environ.update(req.get("env") or {})  # e.g. AIRFLOW_CONN_KUBERNETES_DEFAULT
    # A fresh parse for every run: dag.test() merges the run's conf into the DAG object's
    # params, which would otherwise leak into the next run of the same DAG.
    dag = _load(bag.dag_folder)[0].dags[req["dag_id"]]
    logical = req.get("logical_date")
    kwargs = {"run_conf": req.get("conf") or {}}
    if logical:
        kwargs["logical_date"] = datetime.fromisoformat(logical)
    error = None
    with _captured() as out:
        try:
            dr = dag.test(**kwargs)
        except BaseException:
            dr, error = None, traceback.format_exc()
    result = {"output": out.getvalue(), "error": error, "state": None, "tasks": {}, "xcom": {}}
    if dr is not None:
        result["state"] = str(dr.state)
        with create_session() as session:
            for ti in dr.get_task_instances(session=session):
                result["tasks"][ti.task_id] = str(ti.state)
                row = session.scalars(
                    XComModel.get_many(
                        run_id=dr.run_id, key="return_value", dag_ids=dag.dag_id, task_ids=ti.task_id
                    )
                ).first()
                if row is not None:
                    result["xcom"][ti.task_id] = XComModel.deserialize_value(row)
    return result


def main() -> None:
    dag_folder = sys.argv[1]
    bag, seen = _load(dag_folder)
    print(
        "READY "
        + json.dumps({"dags": sorted(bag.dags), "import_errors": bag.import_errors, "warnings": seen}),
        flush=True,
    )
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            result = _run(bag, json.loads(line))
        except BaseException:
            result = {"state": None, "error": traceback.format_exc(), "tasks": {}, "xcom": {}, "output": ""}
        print("RESULT " + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()
