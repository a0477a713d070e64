"""Real Airflow for the DAG tests, in its own virtualenv, driven from the project's venv.

``airflow_venv`` builds (once, cached by the lock file's hash) the venv of
jobs/airflow/requirements.lock; ``airflow`` runs ``airflow db migrate`` on SQLite in a
temporary AIRFLOW_HOME and starts :mod:`dagrun` there, which runs DAGs with
``dag.test()``.  Nothing of Airflow is imported into this process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from airflow_util import VENV_SCRIPT, Airflow, pipeline_manifest


def _python311() -> str | None:
    for name in ("python3", "python3.13", "python3.12", "python3.11"):
        exe = shutil.which(name)
        if (
            exe
            and subprocess.run([exe, "-c", "import sys; sys.exit(sys.version_info < (3, 11))"]).returncode
            == 0
        ):
            return exe
    return None


@pytest.fixture(scope="session")
def airflow_venv() -> Path:
    python = os.environ.get("STREAMPIPELINE_AIRFLOW_PYTHON") or _python311()
    if python is None:
        pytest.skip(
            "Airflow 3.3's Kubernetes provider needs Python >= 3.11 (set STREAMPIPELINE_AIRFLOW_PYTHON)"
        )
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv, "uv is missing: it is in the dev extra (make venv)"
    proc = subprocess.run(
        ["bash", str(VENV_SCRIPT)],
        env={**os.environ, "UV": uv, "PYTHON": python},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"building the Airflow venv failed:\n{proc.stderr}"
    venv = Path(proc.stdout.strip().splitlines()[-1])
    assert (venv / "bin" / "airflow").is_file(), venv
    return venv


@pytest.fixture(scope="session")
def airflow(airflow_venv, tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-home")
    af = Airflow(airflow_venv, home)
    migrated = af.cli("db", "migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert (home / "airflow.db").is_file()
    af.start()
    try:
        yield af
    finally:
        af.stop()


@pytest.fixture(scope="session")
def real_run(kafka, tmp_path_factory):
    """A bounded ``streampipeline run`` (real broker, real Spark job): its sink directory."""
    from streampipeline.local.runner import LocalRun, RunOptions
    from streampipeline.spec import load_manifest

    doc = pipeline_manifest()
    doc["spec"]["kafka"]["bootstrapServers"] = kafka.bootstrap_servers
    doc["spec"]["generator"].update({"ratePerSecond": 0, "invalidRatio": 0.05, "customers": 300})
    doc["spec"]["processing"]["trigger"] = "1s"
    out = tmp_path_factory.mktemp("real-run") / "out"
    run = LocalRun(load_manifest(doc), RunOptions(output=out, records=4000), printer=lambda s: None)
    try:
        summary = run.run()
    finally:
        run.close()
    assert summary.complete, summary
    assert summary.rows["transactions"] > 3000
    return out
