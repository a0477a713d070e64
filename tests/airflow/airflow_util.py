"""What the Airflow tests share (importable: pytest puts tests/airflow on sys.path; a
name of its own, since every test directory's conftest is a module named ``conftest``)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "jobs" / "airflow" / "dags"
VENV_SCRIPT = ROOT / "jobs" / "airflow" / "venv.sh"
DAGRUN = Path(__file__).with_name("dagrun.py")


def airflow_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    env.pop("PYTHONPATH", None)
    return env


@dataclass
class DagResult:
    state: str | None
    tasks: dict[str, str]
    xcom: dict[str, Any]
    output: str
    error: str | None

    @property
    def ok(self) -> bool:
        return self.state == "success"

    def explain(self) -> str:
        return f"state {self.state}, tasks {self.tasks}, error {self.error}\n{self.output[-6000:]}"


class Airflow:
    """The Airflow venv's CLI, and one long-lived ``dag.test()`` process."""

    def __init__(self, venv: Path, home: Path) -> None:
        self.venv, self.home = venv, home
        self.env = airflow_env(home)
        self.proc: subprocess.Popen | None = None
        self.ready: dict[str, Any] = {}

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / "airflow"), *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(self.venv / "bin" / "python"), str(DAGRUN), str(DAGS)],
            env=self.env,
            cwd=self.home,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.ready = json.loads(self._line("READY "))

    def _line(self, prefix: str) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        skipped = []
        for line in self.proc.stdout:
            if line.startswith(prefix):
                return line[len(prefix) :]
            skipped.append(line)
        raise AssertionError(f"dagrun.py exited {self.proc.wait()}:\n{''.join(skipped[-60:])}")

    def run(
        self,
        dag_id: str,
        conf: dict | None = None,
        logical_date: str | None = None,
        env: dict[str, str] | None = None,
    ) -> DagResult:
        """One DAG run with ``dag.test()``; blocks until it ends."""
        assert self.proc is not None and self.proc.stdin is not None
        request = {"dag_id": dag_id, "conf": conf or {}, "logical_date": logical_date, "env": env or {}}
        started = time.monotonic()
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        doc = json.loads(self._line("RESULT "))
        result = DagResult(doc["state"], doc["tasks"], doc["xcom"], doc["output"], doc["error"])
        print(f"[airflow] {dag_id} {conf} -> {result.state} in {time.monotonic() - started:.1f}s")
        return result

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


def kubernetes_connection(kubeconfig: Path, namespace: str) -> dict[str, str]:
    """``AIRFLOW_CONN_KUBERNETES_DEFAULT``: the connection a user makes in the UI or CLI."""
    conn = {"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig), "namespace": namespace}}
    return {"AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps(conn)}


# The real local run whose Parquet and progress the report and health tests read: its
# own topic names on the suite's broker, which the cluster's pipeline names too.
TOPICS = {"customers": "airflow-payments-customers", "transactions": "airflow-payments-transactions"}


def pipeline_manifest() -> dict:
    """The example with the tests' topic names (the deploy DAG's manifest file too)."""
    import yaml

    doc = yaml.safe_load((ROOT / "k8s" / "examples" / "pipeline.yaml").read_text())
    for role, name in TOPICS.items():
        doc["spec"]["kafka"]["topics"][role]["name"] = name
    return doc
