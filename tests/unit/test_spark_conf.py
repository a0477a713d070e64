"""Every Spark configuration key the project sets is one Spark knows.

Spark accepts any ``spark.*`` key and ignores the ones it does not know, so a misspelt or
removed key (``spark.sql.streaming.stopGracefullyOnShutdown`` never existed: only the
DStreams ``spark.streaming.…`` one does) silently does nothing. The reference is Spark's own
registry in a real session's JVM: every ``ConfigEntry`` Spark defines registers itself in
``ConfigEntry.knownConfigs`` when its holder object loads, so the test loads every config
holder in Spark's jars first. ``spark.hadoop.*`` keys go to Hadoop and are checked against
Hadoop's defaults instead.
"""

from __future__ import annotations

import ast
import re
import zipfile
from pathlib import Path

import pytest

from spjobs.processor.job import session_conf
from streampipeline import render
from streampipeline.settings import Settings
from streampipeline.spec import load_manifest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "k8s" / "examples" / "pipeline.yaml"
KEY = re.compile(r"^spark(\.[A-Za-z][A-Za-z0-9]*)+$")
NOT_KEYS = {"spark.yaml", "spark.py", "spark.json"}
# Hadoop keys without a default in Hadoop's *-default.xml: the Hadoop constant naming each
# (checked in the JVM to hold exactly that key).
HADOOP_CONSTANTS = {
    "mapreduce.fileoutputcommitter.marksuccessfuljobs": (
        "org.apache.hadoop.mapreduce.lib.output.FileOutputCommitter",
        "SUCCESSFUL_JOB_OUTPUT_DIR_MARKER",
    ),
}


def _literal_keys(paths: list[Path]) -> dict[str, str]:
    """Every string literal shaped like a Spark key in the project's sources -> where."""
    found: dict[str, str] = {}
    for path in paths:
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            for node in ast.walk(ast.parse(f.read_text(), str(f))):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and KEY.match(node.value)
                    and node.value not in NOT_KEYS
                ):
                    found.setdefault(node.value, f"{f.relative_to(ROOT)}:{node.lineno}")
    return found


def project_keys() -> dict[str, str]:
    keys = _literal_keys([ROOT / "operator", ROOT / "jobs", ROOT / "tests" / "conftest.py"])
    for k in session_conf(master="local[2]", jars=["x.jar"]):
        keys.setdefault(k, "spjobs.processor.job.session_conf")
    app = render.spark_application(load_manifest(EXAMPLE), Settings())
    for k in app["spec"]["sparkConf"]:
        keys.setdefault(k, "render.spark_application sparkConf")
    return keys


def test_the_scan_finds_the_keys_we_know_we_set():
    keys = project_keys()
    assert {"spark.sql.session.timeZone", "spark.ui.showConsoleProgress", "spark.jars"} <= set(keys)


@pytest.fixture(scope="module")
def known(spark):
    """Spark's registered config keys, after loading every config holder in its jars."""
    import pyspark

    jvm = spark.sparkContext._jvm
    loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
    jars = Path(pyspark.__file__).parent / "jars"
    for jar in sorted(jars.glob("spark-*.jar")):
        with zipfile.ZipFile(jar) as z:
            for name in z.namelist():
                base = name.rsplit("/", 1)[-1]
                if (
                    name.startswith("org/apache/spark/")
                    and name.endswith("$.class")
                    and ("/config/" in name or base.endswith(("Conf$.class", "Config$.class")))
                ):
                    try:
                        jvm.java.lang.Class.forName(name[: -len(".class")].replace("/", "."), True, loader)
                    except Exception:  # a holder needing a module we do not run (e.g. YARN)
                        continue
    registry = getattr(jvm.org.apache.spark.internal.config, "ConfigEntry$").__getattr__("MODULE$")
    return registry


def test_registry_is_real(known):
    """The check can fail: a key Spark 4.1 lacks is not found, keys it has are."""
    assert known.findEntry("spark.sql.session.timeZone") is not None
    assert known.findEntry("spark.ui.showConsoleProgress") is not None
    assert known.findEntry("spark.sql.streaming.stopGracefullyOnShutdown") is None


def _hadoop_knows(jvm, key: str) -> bool:
    if jvm.org.apache.hadoop.mapred.JobConf().get(key) is not None:  # core- and mapred-default.xml
        return True
    if key not in HADOOP_CONSTANTS:
        return False
    cls, field = HADOOP_CONSTANTS[key]
    return jvm.java.lang.Class.forName(cls).getField(field).get(None) == key


def test_every_spark_key_the_project_sets_is_known(spark, known):
    jvm = spark.sparkContext._jvm
    unknown = []
    for key, where in sorted(project_keys().items()):
        if key.startswith("spark.hadoop."):
            if not _hadoop_knows(jvm, key.removeprefix("spark.hadoop.")):
                unknown.append(f"{key} ({where}): not a Hadoop key (or add its constant to HADOOP_CONSTANTS)")
        elif known.findEntry(key) is None:
            unknown.append(f"{key} ({where})")
    assert not unknown, "Spark does not know these keys (they would silently do nothing):\n" + "\n".join(
        unknown
    )
