"""The test node's image tooling without a node: docker-archive layout and image names."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from harness.images import PAUSE_IMAGE, docker_archive
from harness.node import NodeCluster, _normalise


def _layer(tmp_path: Path, files: dict[str, bytes]) -> Path:
    path = tmp_path / "layer.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_docker_archive_is_what_docker_save_writes(tmp_path: Path) -> None:
    layer = _layer(tmp_path, {"hello": b"world\n"})
    out = docker_archive(tmp_path / "img.tar", "example.local/x:1", [layer], cmd=["sh"], user="65534")
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        (entry,) = manifest
        assert entry["RepoTags"] == ["example.local/x:1"]
        config_bytes = tar.extractfile(entry["Config"]).read()
        layer_bytes = tar.extractfile(entry["Layers"][0]).read()
    config = json.loads(config_bytes)
    # Content addressed: the config's name is its digest, diff_ids are the layers' digests.
    assert entry["Config"] == f"{hashlib.sha256(config_bytes).hexdigest()}.json"
    assert config["rootfs"]["diff_ids"] == [f"sha256:{hashlib.sha256(layer_bytes).hexdigest()}"]
    assert layer_bytes == layer.read_bytes()
    assert config["config"]["Cmd"] == ["sh"] and config["config"]["User"] == "65534"
    assert config["os"] == "linux" and config["architecture"] == "amd64"
    assert not list(tmp_path.glob(".*.tmp"))  # written to a temporary name, then renamed


def test_archive_names_are_normalised_as_containerd_names_them(tmp_path: Path) -> None:
    layer = _layer(tmp_path, {"a": b""})
    out = docker_archive(tmp_path / "img.tar", "busybox:1.37", [layer])
    assert NodeCluster._archive_names(out) == ["docker.io/library/busybox:1.37"]


@pytest.mark.parametrize(
    ("ref", "name"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.37", "docker.io/library/busybox:1.37"),
        ("library/busybox:1", "docker.io/library/busybox:1"),
        ("ghcr.io/streampipeline/operator:0.1.0", "ghcr.io/streampipeline/operator:0.1.0"),
        ("localhost/x", "localhost/x:latest"),
        ("registry:5000/x", "registry:5000/x:latest"),
        ("registry:5000/x:2", "registry:5000/x:2"),
        (PAUSE_IMAGE, PAUSE_IMAGE),
    ],
)
def test_normalise(ref: str, name: str) -> None:
    assert _normalise(ref) == name
