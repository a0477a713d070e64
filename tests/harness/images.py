"""Container images for the test node, made without a Docker engine or a registry.

No registry can be reached here, so every image a node pod runs is built locally and
written as a *docker-archive* tarball (the ``docker save`` format: ``manifest.json``, an
image config, one ``layer.tar`` per layer), which ``ctr images import`` loads into the
node's containerd (see :meth:`harness.node.Node.import_image`). The same function takes an
archive from ``docker save`` of an engine-built image.

Two images are built here and cached under ``$STREAMPIPELINE_CACHE/node-images`` keyed by
their inputs:

- :func:`pause_archive` — the pod sandbox image: the static C program
  ``k8s/pause/pause.c`` alone in a FROM-scratch image (stands in for registry.k8s.io/pause).
- :func:`debian_archive` — a Debian bookworm ``minbase`` root filesystem from debootstrap
  plus ``busybox`` (``nslookup``, ``httpd`` and ``nc`` on ``PATH``) and GNU ``wget`` (test pods,
  and the chart's ``helm test`` pod, which runs ``wget -q -O- -T 5``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = [
    "DEBIAN_IMAGE",
    "PAUSE_IMAGE",
    "cache_dir",
    "debian_archive",
    "docker_archive",
    "pause_archive",
]

HARNESS_DIR = Path(__file__).resolve().parent
PAUSE_SOURCE = HARNESS_DIR / "k8s" / "pause" / "pause.c"

# Fully qualified names, so that containerd's CRI and ctr agree on them (an unqualified
# name is normalised to docker.io/library/...) and nobody mistakes them for upstream images.
PAUSE_IMAGE = "streampipeline.local/pause:1"
DEBIAN_SUITE = "bookworm"
# GNU wget as `wget`: the chart's `helm test` pod runs `wget -q -O- -T 5`, and Debian's busybox
# 1.35 wget crashes on -T.
DEBIAN_PACKAGES = ("busybox", "wget")
DEBIAN_IMAGE = f"streampipeline.local/debian:{DEBIAN_SUITE}-minbase"
# Bump when the recipe below changes in a way the cache key does not capture.
DEBIAN_RECIPE = "3"
# busybox applets linked into /usr/local/bin (no others: they would shadow coreutils).
BUSYBOX_APPLETS = ("nslookup", "httpd", "nc")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def cache_dir() -> Path:
    """``$STREAMPIPELINE_CACHE/node-images`` (default ``~/.cache/streampipeline``)."""
    root = Path(os.environ.get("STREAMPIPELINE_CACHE") or Path.home() / ".cache" / "streampipeline")
    path = root.expanduser() / "node-images"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise builds of one cache entry across processes (pytest-xdist, two checkouts)."""
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def docker_archive(
    out: Path,
    ref: str,
    layers: Sequence[Path],
    *,
    cmd: Sequence[str] = (),
    entrypoint: Sequence[str] = (),
    env: Sequence[str] = (PATH_ENV,),
    user: str = "",
) -> Path:
    """Write a docker-archive tarball of ``layers`` (uncompressed layer tars) tagged ``ref``.

    Written to a temporary name and renamed, so a cached archive is always complete.
    """
    diff_ids = [_sha256_file(layer) for layer in layers]
    config: dict = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": list(env)},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in diff_ids]},
        "history": [{"created_by": "tests/harness/images.py"} for _ in layers],
    }
    if cmd:
        config["config"]["Cmd"] = list(cmd)
    if entrypoint:
        config["config"]["Entrypoint"] = list(entrypoint)
    if user:
        config["config"]["User"] = user
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = f"{hashlib.sha256(config_bytes).hexdigest()}.json"
    layer_names = [f"{d}/layer.tar" for d in diff_ids]
    manifest = [{"Config": config_name, "RepoTags": [ref], "Layers": layer_names}]

    def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))

    tmp = out.with_name(f".{out.name}.tmp")
    with tarfile.open(tmp, "w") as tar:
        add_bytes(tar, config_name, config_bytes)
        for layer, name in zip(layers, layer_names, strict=True):
            tar.add(layer, arcname=name)
        add_bytes(tar, "manifest.json", json.dumps(manifest).encode())
    tmp.replace(out)
    return out


def pause_archive() -> Path:
    """The sandbox image: ``pause.c`` compiled statically, alone in a FROM-scratch image."""
    source = PAUSE_SOURCE.read_bytes()
    key = hashlib.sha256(source + PAUSE_IMAGE.encode()).hexdigest()[:12]
    out = cache_dir() / f"pause-{key}.tar"
    if out.is_file():
        return out
    with _locked(out), tempfile.TemporaryDirectory(prefix="sp-pause-") as tmp:
        if out.is_file():
            return out
        binary = Path(tmp) / "pause"
        proc = subprocess.run(
            ["cc", "-static", "-Os", "-s", "-o", str(binary), str(PAUSE_SOURCE)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"compiling {PAUSE_SOURCE} failed (needs gcc and libc6-dev):\n{proc.stderr}")
        layer = Path(tmp) / "layer.tar"
        with tarfile.open(layer, "w") as tar:
            info = tar.gettarinfo(binary, arcname="pause")
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o755
            with binary.open("rb") as f:
                tar.addfile(info, f)
        return docker_archive(out, PAUSE_IMAGE, [layer], entrypoint=["/pause"], user="65535:65535")


def debian_archive(mirror: str | None = None) -> Path:
    """A Debian ``minbase`` image (debootstrap, about a minute cold), cached by its recipe.

    ``mirror`` defaults to ``$STREAMPIPELINE_DEBIAN_MIRROR`` or deb.debian.org.
    """
    mirror = mirror or os.environ.get("STREAMPIPELINE_DEBIAN_MIRROR") or DEFAULT_MIRROR
    recipe = f"{DEBIAN_SUITE} minbase {DEBIAN_PACKAGES} {BUSYBOX_APPLETS} {DEBIAN_IMAGE} r{DEBIAN_RECIPE}"
    key = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    out = cache_dir() / f"debian-{DEBIAN_SUITE}-minbase-{key}.tar"
    if out.is_file():
        return out
    if not shutil.which("debootstrap"):
        raise RuntimeError("debootstrap is not installed (apt-get install debootstrap)")
    with _locked(out), tempfile.TemporaryDirectory(prefix="sp-debian-", dir=cache_dir()) as tmp:
        if out.is_file():
            return out
        rootfs = Path(tmp) / "rootfs"
        proc = subprocess.run(
            [
                "nice", "-n", "10", "debootstrap", "--variant=minbase",
                f"--include={','.join(DEBIAN_PACKAGES)}", DEBIAN_SUITE, str(rootfs), mirror,
            ],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            log = rootfs / "debootstrap" / "debootstrap.log"
            detail = log.read_text(errors="replace")[-3000:] if log.is_file() else proc.stderr
            raise RuntimeError(f"debootstrap {DEBIAN_SUITE} from {mirror} failed:\n{detail}")
        # Nothing of the build host's or the download's: no package files, no apt lists.
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / sub).glob("*"):
                if entry.is_file():
                    entry.unlink()
        for applet in BUSYBOX_APPLETS:
            (rootfs / "usr" / "local" / "bin" / applet).symlink_to("/bin/busybox")
        layer = Path(tmp) / "layer.tar"
        subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(layer), "."], check=True)
        return docker_archive(out, DEBIAN_IMAGE, [layer], cmd=["bash"])
