"""The DAG files load in real Airflow 3 without import errors or deprecation warnings."""

from __future__ import annotations

import json
import subprocess

from airflow_util import DAGS

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


CHECK_WARNINGS = """
import json, runpy, sys, warnings
import airflow.sdk, airflow.settings  # Airflow's own import-time warnings are not the files'
sys.path.insert(0, sys.argv[1])
out = {}
for f in sys.argv[2:]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runpy.run_path(f)
    out[f] = [
        w.category.__name__ for w in caught
        if issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning))
    ]
print("WARNINGS " + json.dumps(out))
"""


def _deprecations(airflow, files: list[str]) -> dict[str, list[str]]:
    proc = subprocess.run(
        [str(airflow.venv / "bin" / "python"), "-c", CHECK_WARNINGS, str(DAGS), *files],
        env=airflow.env,
        cwd=airflow.home,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("WARNINGS "))
    return json.loads(line.removeprefix("WARNINGS "))


def test_dag_files_raise_no_deprecation_warning_when_executed(airflow, tmp_path):
    """Each DAG file executed with every warning recorded; a file written against Airflow 2's
    API, executed the same way, proves the check sees Airflow 3's deprecations."""
    files = sorted(str(p) for p in DAGS.glob("streampipeline_*.py"))
    assert len(files) == 4
    old_style = tmp_path / "airflow2_style.py"
    old_style.write_text(
        "from datetime import datetime\n"
        "from airflow.decorators import dag, task\n"
        "@dag(schedule=None, start_date=datetime(2026, 1, 1))\n"
        "def old():\n"
        "    @task\n"
        "    def t(): pass\n"
        "    t()\n"
        "old()\n"
    )
    found = _deprecations(airflow, [*files, str(old_style)])
    assert found.pop(str(old_style)), "the check must flag airflow.decorators (deprecated in Airflow 3)"
    assert found == {f: [] for f in files}
