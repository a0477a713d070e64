"""A Docker engine of the test suite's own, and the three images built in it.

Registries cannot be reached here, so nothing may pull: the upstream bases the Dockerfiles
name (``python:…-slim``, ``maven:…``, ``apache/spark:…``) are replaced by local stand-ins
built from a debootstrap'd Debian rootfs (``tests/harness/standins/``, each with a note of
how it differs from the real image), tagged with the upstream names in this engine only.

The engine keeps its own data root, exec root, pidfile and socket under
``$STREAMPIPELINE_CACHE/docker`` so test images never mix with a user's, and runs with
``--iptables=false --bridge=none``: it touches neither the host's firewall nor another
engine's bridge, and containers get either the host's loopback (``--network host``, to
reach the test broker) or no network at all.

Every build is keyed by its inputs (a hash of the files it reads, written as the image
label ``io.streampipeline.inputs``): a warm run finds the label and builds nothing.

Typical use::

    with DockerEngine() as engine:
        images = ensure_images(engine)      # {"operator": tag, "generator": tag, "spark": tag}
        engine.docker("run", "--rm", images["generator"], "--help")
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DOCKER",
    "IMAGE_TAGS",
    "STANDINS",
    "DockerEngine",
    "DockerError",
    "ensure_broker_image",
    "ensure_images",
    "ensure_standins",
    "save_image",
]

ROOT = Path(__file__).resolve().parents[2]
STANDIN_DIR = Path(__file__).resolve().parent / "standins"
# The Debian package's client: /usr/local/bin/docker may be another client first on PATH.
DOCKER = os.environ.get("STREAMPIPELINE_DOCKER", "/usr/bin/docker")
DOCKERD = os.environ.get("STREAMPIPELINE_DOCKERD", "/usr/sbin/dockerd")
DEBIAN_SUITE = "bookworm"
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
INPUTS_LABEL = "io.streampipeline.inputs"
BASE_TAG = "streampipeline-standin/debian:bookworm"
# Packages beyond minbase every stand-in needs (the CA store, so pip and Maven trust the host's CAs).
BASE_PACKAGES = ("ca-certificates",)

# The project's images, tagged as the Makefile tags them (REGISTRY/name:IMAGE_TAG).
IMAGE_TAGS = {
    "operator": "ghcr.io/streampipeline/operator:0.1.0",
    "generator": "ghcr.io/streampipeline/generator:0.1.0",
    "spark": "ghcr.io/streampipeline/spark:0.1.0",
}


@dataclass(frozen=True)
class StandIn:
    """A local image standing in for an upstream base: built from ``standins/<directory>``."""

    upstream: str
    directory: str


STANDINS = (
    StandIn("python:3.11.14-slim", "python"),
    StandIn("maven:3.9.11-eclipse-temurin-17", "maven"),
    StandIn("apache/spark:4.1.1-python3", "spark"),
)


class DockerError(RuntimeError):
    """The engine could not be started, or a docker command failed (message has its output)."""


def cache_root() -> Path:
    return Path(os.environ.get("STREAMPIPELINE_CACHE") or Path.home() / ".cache" / "streampipeline")


def _digest(paths: Iterable[Path], extra: Sequence[str] = ()) -> str:
    """A hash of file names and contents (directories walked in order) and ``extra`` strings."""
    h = hashlib.sha256()
    for item in extra:
        h.update(item.encode() + b"\0")
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            if "__pycache__" in f.parts or f.suffix in {".pyc", ".pyo"}:
                continue
            h.update(str(f.relative_to(ROOT) if f.is_relative_to(ROOT) else f).encode() + b"\0")
            h.update(f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


class DockerEngine:
    """``dockerd`` with its own roots and socket; ``start()`` ... ``stop()``.

    Only one engine runs per cache directory (a lock file): a second ``start()`` from
    another process waits for the lock rather than sharing a daemon it did not start.
    """

    def __init__(self, root: Path | None = None, *, startup_timeout: float = 60.0) -> None:
        self.root = root or cache_root() / "docker"
        self.data_root = self.root / "data"
        self.exec_root = self.root / "exec"
        self.pidfile = self.root / "dockerd.pid"
        self.socket = self.root / "docker.sock"
        self.log_path = self.root / "dockerd.log"
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def __enter__(self) -> DockerEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> DockerEngine:
        for tool in (DOCKER, DOCKERD):
            if not os.access(tool, os.X_OK):
                raise DockerError(f"{tool} not found: install Debian's docker.io (make image-tools)")
        if os.geteuid() != 0:
            raise DockerError("dockerd needs root")
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.root / "engine.lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        self._kill_stale()
        self.socket.unlink(missing_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - owned by the child from here on
        self._proc = subprocess.Popen(
            [
                DOCKERD,
                f"--data-root={self.data_root}",
                f"--exec-root={self.exec_root}",
                f"--pidfile={self.pidfile}",
                f"--host={self.host}",
                "--iptables=false",
                "--ip-masq=false",
                "--ip-forward=false",
                "--bridge=none",
                "--storage-driver=overlay2",
                "--log-level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={
                **os.environ,
                "HTTP_PROXY": "http://127.0.0.1:9",
                "HTTPS_PROXY": "http://127.0.0.1:9",
                "NO_PROXY": "",
            },
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise DockerError(f"dockerd exited {self._proc.returncode}:\n{self._log_tail()}")
            if self.socket.exists() and self.docker("version", check=False, timeout=10).returncode == 0:
                return self
            time.sleep(0.3)
        self.stop()
        raise DockerError(f"dockerd did not answer within {self.startup_timeout}s:\n{self._log_tail()}")

    def _kill_stale(self) -> None:
        """A dockerd left by a killed test run (we hold the lock, so it is no one's)."""
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            pid = int(self.pidfile.read_text().strip())
            if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"dockerd"):
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    if not Path(f"/proc/{pid}").exists():
                        break
                    time.sleep(0.1)

    def _log_tail(self) -> str:
        try:
            return _tail(self.log_path.read_text(errors="replace"), 30)
        except FileNotFoundError:
            return "(no log)"

    def stop(self, grace: float = 20.0) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                # Containers first, so none outlives the daemon's containerd.
                ids = self.docker("ps", "-q", check=False, timeout=30).stdout.split()
                if ids:
                    self.docker("rm", "-f", *ids, check=False, timeout=60)
                self._proc.terminate()
                try:
                    self._proc.wait(grace)
                except subprocess.TimeoutExpired:
                    os.killpg(self._proc.pid, signal.SIGKILL)
                    self._proc.wait()
            self._proc = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def docker(
        self,
        *args: str,
        input: str | bytes | None = None,
        check: bool = True,
        timeout: float = 600.0,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the Debian docker client against this engine; raise DockerError on failure."""
        proc = subprocess.run(
            [DOCKER, "--host", self.host, *args],
            input=input.decode() if isinstance(input, bytes) else input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={
                **os.environ,
                "DOCKER_BUILDKIT": "1",
                "DOCKER_CONFIG": str(self.root / "client"),
                **(env or {}),
            },
        )
        if check and proc.returncode != 0:
            raise DockerError(
                f"docker {' '.join(args[:6])} ... exited {proc.returncode}:\n"
                f"{_tail(proc.stdout, 40)}\n{_tail(proc.stderr, 80)}"
            )
        return proc

    def label(self, image: str, key: str = INPUTS_LABEL) -> str | None:
        """The image's label ``key``, or None when the image is not in the store."""
        proc = self.docker("image", "inspect", image, check=False, timeout=30)
        if proc.returncode != 0:
            return None
        labels = json.loads(proc.stdout)[0]["Config"].get("Labels") or {}
        return labels.get(key)

    def build(
        self,
        tag: str,
        context: Path,
        dockerfile: Path,
        inputs: str,
        *,
        build_args: Mapping[str, str] | None = None,
        timeout: float = 1800.0,
    ) -> bool:
        """Build ``tag`` unless it exists with the same inputs; True when it was built.

        Builds run on the host's network (``--network host``: the engine has no bridge) so
        pip and Maven reach PyPI and Maven Central; no ``--pull``, so BuildKit takes the
        stand-in bases from the local store.
        """
        if self.label(tag) == inputs:
            return False
        args = ["build", "--network", "host", "--progress", "plain", "-f", str(dockerfile), "-t", tag]
        for k, v in (build_args or {}).items():
            args += ["--build-arg", f"{k}={v}"]
        self.docker(*args, str(context), timeout=timeout)
        self.relabel(tag, inputs)
        return True

    def relabel(self, tag: str, inputs: str) -> None:
        """Put the inputs label on ``tag`` with a one-line build (the Dockerfiles stay unchanged)."""
        self.docker(
            "build", "--label", f"{INPUTS_LABEL}={inputs}", "-t", tag, "-", input=f"FROM {tag}\n", timeout=120
        )


# --- stand-ins for the upstream bases ---------------------------------------------------------


def debian_mirrors() -> tuple[str, str]:
    """The host's own Debian mirror and security mirror, from its apt sources (one-line or deb822)."""
    main = os.environ.get("STREAMPIPELINE_DEBIAN_MIRROR")
    security = os.environ.get("STREAMPIPELINE_DEBIAN_SECURITY_MIRROR")
    entries: list[tuple[str, str]] = []  # (uri, suites)
    apt = Path("/etc/apt")
    for f in [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]:
        if f.is_file():
            for line in f.read_text().splitlines():
                parts = line.split("#")[0].split()
                if len(parts) >= 3 and parts[0] == "deb":
                    rest = [x for x in parts[1:] if not x.startswith("[")]
                    entries.append((rest[0], " ".join(rest[1:2])))
    for f in sorted((apt / "sources.list.d").glob("*.sources")):
        for block in f.read_text().split("\n\n"):
            fields = dict(
                (k.strip(), v.strip())
                for k, _, v in (ln.partition(":") for ln in block.splitlines() if not ln.startswith("#"))
                if v
            )
            for uri in fields.get("URIs", "").split():
                entries.append((uri, fields.get("Suites", "")))
    for uri, suites in entries:
        if main is None and DEBIAN_SUITE in suites.split() and "security" not in uri:
            main = uri
        if security is None and f"{DEBIAN_SUITE}-security" in suites.split():
            security = uri
    if main is None:
        raise DockerError(f"no Debian {DEBIAN_SUITE} mirror in /etc/apt: set STREAMPIPELINE_DEBIAN_MIRROR")
    return main.rstrip("/"), (security or main.rsplit("/", 1)[0] + "/debian-security").rstrip("/")


def _base_inputs() -> str:
    cas = sorted(HOST_CA_DIR.glob("**/*.crt")) if HOST_CA_DIR.is_dir() else []
    return _digest(cas, [DEBIAN_SUITE, *debian_mirrors(), *BASE_PACKAGES])


def _ensure_base(engine: DockerEngine) -> str:
    """A Debian rootfs (debootstrap minbase) with the host's extra CA certificates, imported."""
    inputs = _base_inputs()
    mirror, security = debian_mirrors()
    if engine.label(BASE_TAG) == inputs:
        return inputs
    if not shutil.which("debootstrap"):
        raise DockerError("debootstrap not found: install it (make image-tools)")
    work = Path(tempfile.mkdtemp(prefix="sp-rootfs-", dir=engine.root))
    try:
        rootfs = work / "rootfs"
        proc = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                DEBIAN_SUITE,
                str(rootfs),
                mirror,
            ],
            capture_output=True,
            text=True,
            timeout=1200,
        )
        if proc.returncode != 0:
            raise DockerError(f"debootstrap failed:\n{_tail(proc.stdout)}\n{_tail(proc.stderr)}")
        # The host's extra CAs (e.g. an egress proxy's) go in as the host has them, so that
        # pip and Maven inside builds trust what the host trusts.
        target = rootfs / "usr/local/share/ca-certificates"
        for crt in sorted(HOST_CA_DIR.glob("*.crt")) if HOST_CA_DIR.is_dir() else []:
            shutil.copy2(crt, target / crt.name)
        subprocess.run(["chroot", str(rootfs), "update-ca-certificates"], check=True, capture_output=True)
        (rootfs / "etc/apt/sources.list").write_text(
            f"deb {mirror} {DEBIAN_SUITE} main\ndeb {mirror} {DEBIAN_SUITE}-updates main\n"
            f"deb {security} {DEBIAN_SUITE}-security main\n"
        )
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for f in (rootfs / junk).glob("*"):
                if f.is_file():
                    f.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(
            [
                DOCKER,
                "--host",
                engine.host,
                "import",
                "--change",
                'CMD ["bash"]',
                "-",
                BASE_TAG,
            ],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            timeout=600,
        )
        tar.wait()
        if imp.returncode != 0 or tar.returncode != 0:
            raise DockerError(f"docker import failed: {imp.stderr}")
        engine.relabel(BASE_TAG, inputs)
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)
    return inputs


def host_python310() -> Path | None:
    """A CPython 3.10 built on this host (pyenv), for the Spark stand-in's Python."""
    override = os.environ.get("STREAMPIPELINE_PYTHON310_PREFIX")
    candidates = (
        [Path(override)]
        if override
        else sorted((Path.home() / ".pyenv" / "versions").glob("3.10.*"), reverse=True)
    )
    for prefix in candidates:
        if (prefix / "bin" / "python3.10").is_file() and (prefix / "lib" / "python3.10" / "os.py").is_file():
            return prefix
    return None


def _pyspark_home() -> Path:
    import pyspark

    home = Path(pyspark.__file__).parent
    if not (home / "jars").is_dir() or not (home / "python" / "lib" / "pyspark.zip").is_file():
        raise DockerError(f"{home} is not a pyspark distribution with jars/ and python/lib/")
    return home


def _spark_context(work: Path) -> tuple[Path, list[str]]:
    """The Spark stand-in's context: Dockerfile, entrypoint, Spark from pyspark, Python 3.10."""
    import pyspark

    ctx = work / "spark-context"
    shutil.copytree(STANDIN_DIR / "spark", ctx)
    home = _pyspark_home()
    for part in ("bin", "sbin", "jars", "python/lib"):
        # Hard links: the same filesystem, nothing copied (the files are only read).
        (ctx / "spark" / part).parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-al", str(home / part), str(ctx / "spark" / part)], check=True)
    (ctx / "python").mkdir()
    py = host_python310()
    keys = [f"pyspark={pyspark.__version__}"]
    if py is not None:
        subprocess.run(
            [
                "tar",
                "-C",
                str(py),
                "-c",
                "--exclude=__pycache__",
                "--exclude=_sandboxing*",
                "--exclude=test",
                "--exclude=idlelib",
                "--exclude=tkinter",
                "--exclude=ensurepip",
                "bin/python3.10",
                "lib",
            ],
            stdout=open(work / "py.tar", "wb"),  # noqa: SIM115
            check=True,
        )
        subprocess.run(["tar", "-C", str(ctx / "python"), "-xf", str(work / "py.tar")], check=True)
        keys.append(f"python={py.name}")
    return ctx, keys


def ensure_standins(engine: DockerEngine) -> dict[str, bool]:
    """Build every stand-in whose inputs changed; {upstream name: built now}."""
    base = _ensure_base(engine)
    built: dict[str, bool] = {}
    for s in STANDINS:
        context = STANDIN_DIR / s.directory
        if s.directory != "spark":
            inputs = _digest([context], [base, s.upstream])
            built[s.upstream] = engine.build(
                s.upstream, context, context / "Dockerfile", inputs, build_args={"BASE": BASE_TAG}
            )
            continue
        import pyspark

        py = host_python310()
        keys = [f"pyspark={pyspark.__version__}", f"python={py.name if py else 'debian'}"]
        inputs = _digest([context], [base, s.upstream, *keys])
        if engine.label(s.upstream) == inputs:
            built[s.upstream] = False
            continue
        work = Path(tempfile.mkdtemp(prefix="sp-spark-", dir=engine.root))
        try:
            ctx, _ = _spark_context(work)
            built[s.upstream] = engine.build(
                s.upstream, ctx, ctx / "Dockerfile", inputs, build_args={"BASE": BASE_TAG}
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return built


# --- the project's images ---------------------------------------------------------------------


def _context_inputs(name: str) -> list[Path]:
    """What the image's build reads from the repository (its Dockerfile's COPY sources)."""
    return [
        ROOT / "images" / name,
        ROOT / "pyproject.toml",
        ROOT / "README.md",
        ROOT / "requirements",
        ROOT / "operator",
        ROOT / "jobs",
        ROOT / ".dockerignore",
    ]


def ensure_images(engine: DockerEngine, names: Sequence[str] = tuple(IMAGE_TAGS)) -> dict[str, str]:
    """The stand-ins, then each project image from ``images/<name>/Dockerfile`` unchanged."""
    ensure_standins(engine)
    standin_ids = {s.upstream: engine.label(s.upstream) or "" for s in STANDINS}
    out: dict[str, str] = {}
    for name in names:
        tag = IMAGE_TAGS[name]
        inputs = _digest(
            [p for p in _context_inputs(name) if p.exists()],
            [tag, *sorted(f"{k}={v}" for k, v in standin_ids.items())],
        )
        engine.build(tag, ROOT, ROOT / "images" / name / "Dockerfile", inputs)
        out[name] = tag
    # Earlier builds of the same tags, now untagged: keep the cache's data root from growing.
    engine.docker("image", "prune", "-f", check=False, timeout=300)
    return out


def save_image(engine: DockerEngine, tag: str, cache_dir: Path | None = None) -> Path:
    """``docker save`` of ``tag`` to a tarball cached under its image id (e.g. for a test node).

    A warm run finds the tarball of the same id and writes nothing; older tarballs of the
    same tag are removed so the cache holds one per image.
    """
    image_id = engine.docker("image", "inspect", "-f", "{{.Id}}", tag, timeout=30).stdout.strip()
    stem = tag.replace("/", "_").replace(":", "_")
    directory = cache_dir or cache_root() / "image-archives"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stem}@{image_id.removeprefix('sha256:')[:16]}.tar"
    if path.is_file():
        return path
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        engine.docker("save", "-o", str(tmp), tag, timeout=900)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    for old in directory.glob(f"{stem}@*.tar"):
        if old != path:
            old.unlink(missing_ok=True)
    return path


BROKER_TAG = "streampipeline.local/kafka-broker:4.1.1"
BROKER_DIR = Path(__file__).resolve().parent / "broker"


def ensure_broker_image(engine: DockerEngine) -> str:
    """The test node's Kafka broker (``broker/``): the project's Maven Kafka jars on the JDK of
    the maven stand-in, standing in for Strimzi's broker image. Cached by its inputs."""
    from streampipeline.local.jars import kafka_jars

    ensure_standins(engine)
    base = "maven:3.9.11-eclipse-temurin-17"
    jars = kafka_jars()
    inputs = _digest([BROKER_DIR, jars], [BROKER_TAG, engine.label(base) or ""])
    if engine.label(BROKER_TAG) == inputs:
        return BROKER_TAG
    with tempfile.TemporaryDirectory(prefix="sp-broker-") as tmp:
        context = Path(tmp)
        shutil.copytree(jars, context / "libs")
        for f in BROKER_DIR.iterdir():
            shutil.copy2(f, context / f.name)
        engine.build(BROKER_TAG, context, context / "Dockerfile", inputs, build_args={"BASE": base})
    return BROKER_TAG


@contextlib.contextmanager
def running_engine() -> Iterator[DockerEngine]:
    engine = DockerEngine()
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


if __name__ == "__main__":  # python tests/harness/docker_engine.py: build everything, report times
    t0 = time.monotonic()
    with running_engine() as e:
        t1 = time.monotonic()
        built = ensure_standins(e)
        t2 = time.monotonic()
        tags = ensure_images(e)
        t3 = time.monotonic()
    print(
        json.dumps(
            {
                "engine_start_s": round(t1 - t0, 1),
                "standins_s": round(t2 - t1, 1),
                "standins_built": built,
                "images_s": round(t3 - t2, 1),
                "images": tags,
            }
        )
    )
