"""Fetch the JVM parts (Kafka broker, Spark's Kafka connector) from Maven Central.

Nothing is downloaded from anywhere but Maven Central, and everything lands in a
cache outside the repository keyed by version, so a second run costs nothing.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.1"
SCALA_BINARY = "2.13"
# The connector must match pyspark exactly (a unit test checks).  4.1.3 would fix SPARK-57438
# (see spjobs.processor.job) but its spark-token-provider-kafka is not served by Maven Central.
SPARK_VERSION = "4.1.1"

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.streampipeline</groupId>
  <artifactId>fetch-{name}</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
{deps}
  </dependencies>
</project>
"""
# Some poms (Spark's parent) list extra repositories that are unreachable here; send every
# request to Maven Central instead, so resolution never depends on a third-party mirror.
_SETTINGS = """<settings><mirrors><mirror><id>central-only</id><mirrorOf>*</mirrorOf>
<url>https://repo.maven.apache.org/maven2</url></mirror></mirrors></settings>
"""
_DEP = "    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>"


def cache_root() -> Path:
    """Where fetched jars and built tools live (override with STREAMPIPELINE_CACHE)."""
    return Path(os.environ.get("STREAMPIPELINE_CACHE", Path.home() / ".cache" / "streampipeline"))


def _fetch(name: str, coords: list[str], dest: Path) -> Path:
    """Resolve ``coords`` with their runtime dependencies into ``dest`` (once)."""
    marker = dest / ".complete"
    if marker.exists():
        return dest
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven ('mvn') is needed to fetch jars from Maven Central: apt-get install maven")
    deps = "\n".join(_DEP.format(g=g, a=a, v=v) for g, a, v in (c.split(":") for c in coords))
    with tempfile.TemporaryDirectory() as tmp:
        pom = Path(tmp) / "pom.xml"
        pom.write_text(_POM.format(name=name, deps=deps))
        settings = Path(tmp) / "settings.xml"
        settings.write_text(_SETTINGS)
        staging = dest.with_name(dest.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        log.info("fetching %s from Maven Central into %s", name, dest)
        cmd = [
            "mvn",
            "-q",
            "-B",
            "-U",
            "-s",
            str(settings),
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(
                f"could not fetch {', '.join(coords)} from Maven Central:\n"
                f"{proc.stdout[-3000:]}{proc.stderr[-2000:]}"
            )
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)
    marker.write_text("\n".join(coords) + "\n")
    return dest


def kafka_jars(version: str = KAFKA_VERSION) -> Path:
    """The broker (kafka.Kafka, kafka.tools.StorageTool) and the perf tools, with log4j2."""
    return _fetch(
        f"kafka-{version}",
        [
            f"org.apache.kafka:kafka_{SCALA_BINARY}:{version}",
            f"org.apache.kafka:kafka-tools:{version}",
            "org.apache.logging.log4j:log4j-core:2.24.3",
            "org.apache.logging.log4j:log4j-slf4j2-impl:2.24.3",
        ],
        cache_root() / "jars" / f"kafka-{version}",
    )


def spark_kafka_jars(spark_version: str = SPARK_VERSION) -> list[Path]:
    """Spark's Kafka source/sink and what it needs beyond what pyspark already ships."""
    dest = _fetch(
        f"spark-sql-kafka-{spark_version}",
        [f"org.apache.spark:spark-sql-kafka-0-10_{SCALA_BINARY}:{spark_version}"],
        cache_root() / "jars" / f"spark-sql-kafka-{spark_version}",
    )
    shipped = _pyspark_jar_names()
    return sorted(p for p in dest.glob("*.jar") if _artifact(p.name) not in shipped)


def _artifact(jar_name: str) -> str:
    """'commons-pool2-2.12.0.jar' -> 'commons-pool2' (drop the version: the first '-N.')."""
    m = re.match(r"^(.+?)-\d+\..*\.jar$", jar_name)
    return m.group(1) if m else jar_name.removesuffix(".jar")


def _pyspark_jar_names() -> set[str]:
    try:
        import pyspark
    except ImportError:  # the broker alone does not need pyspark
        return set()
    jars = Path(pyspark.__file__).parent / "jars"
    return {_artifact(p.name) for p in jars.glob("*.jar")}


def main() -> None:
    """``python -m streampipeline.local.jars``: fetch everything once, print where it is."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(f"kafka broker jars: {kafka_jars()}")
    print("spark kafka connector: " + ", ".join(p.name for p in spark_kafka_jars()))


if __name__ == "__main__":
    main()
