"""The DAG files load in real Airflow 3 without import errors or deprecation warnings."""

from __future__ import annotations

import json
import subprocess

from conftest import DAGS

DAG_IDS = [
    "streampipeline_daily_report",
    "streampipeline_deploy",
    "streampipeline_health",
    "streampipeline_schedule",
]
# What Airflow 3 raises for APIs it renamed or will remove (by class name: this process
# does not import Airflow).
AIRFLOW_DEPRECATIONS = (
    "RemovedInAirflow4Warning",
    "DeprecatedImportWarning",
    "AirflowProviderDeprecationWarning",
)


def test_import_errors_empty_after_parsing(airflow):
    parsed = airflow.cli("dags", "reserialize")
    assert parsed.returncode == 0, parsed.stderr
    errors = airflow.cli("dags", "list-import-errors", "-o", "json")
    assert errors.returncode == 0, errors.stderr
    assert json.loads(errors.stdout.strip().splitlines()[-1]) == []
    listed = airflow.cli("dags", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    ids = sorted(d["dag_id"] for d in json.loads(listed.stdout.strip().splitlines()[-1]))
    assert ids == DAG_IDS


def test_no_deprecation_warnings_from_the_dag_files(airflow):
    assert sorted(airflow.ready["dags"]) == DAG_IDS
    assert airflow.ready["import_errors"] == {}
    ours = [w for w in airflow.ready["warnings"] if w["file"].startswith(str(DAGS))]
    assert ours == [], ours  # no warning of any kind is attributed to our files
    airflows = [w for w in airflow.ready["warnings"] if w["category"] in AIRFLOW_DEPRECATIONS]
    assert airflows == [], airflows


def test_dag_files_run_with_deprecations_as_errors(airflow):
    """Each DAG file executed with every deprecation warning turned into an error."""
    files = sorted(str(p) for p in DAGS.glob("streampipeline_*.py"))
    assert len(files) == 4
    code = (
        "import runpy, sys, warnings\n"
        f"sys.path.insert(0, {str(DAGS)!r})\n"
        "import airflow.sdk\n"  # Airflow's own import-time warnings are not the DAG files'
        "warnings.simplefilter('error', DeprecationWarning)\n"
        "warnings.simplefilter('error', PendingDeprecationWarning)\n"
        "warnings.simplefilter('error', FutureWarning)\n"
        f"for f in {files!r}:\n"
        "    ns = runpy.run_path(f)\n"
        "    print('ok', f)\n"
    )
    proc = subprocess.run(
        [str(airflow.venv / "bin" / "python"), "-c", code],
        env=airflow.env,
        cwd=airflow.home,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("ok ") == 4
