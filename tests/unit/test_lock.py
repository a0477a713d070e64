"""images/requirements/*.txt: the locks the images install from match pyproject.toml.

pyproject.toml's extras are the one source of the project's dependencies; ``make lock``
compiles them (uv, universal, with hashes) into one lock per image. These tests fail when
pyproject.toml changed without ``make lock``, or a lock was edited by hand.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("images_lock", ROOT / "images" / "lock.py")
lock = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lock)

LOCKS = sorted(lock.LOCKS)
REQ = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _entries(name: str) -> dict[str, list[tuple[str, list[str]]]]:
    """{package: [(version, hashes), ...]} (a universal lock may pin per Python version)."""
    text = (lock.OUT / f"{name}.txt").read_text()
    out: dict[str, list[tuple[str, list[str]]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        m = REQ.match(block)
        if m:
            hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", block)
            out.setdefault(_canon(m.group(1)), []).append((m.group(2), hashes))
    return out


@pytest.mark.parametrize("name", LOCKS)
def test_lock_is_current(name):
    path = lock.OUT / f"{name}.txt"
    assert path.is_file(), f"{path} is missing: run `make lock`"
    first = path.read_text().splitlines()[0]
    assert first == f"{lock.HEADER}{lock.inputs_digest(name)}", (
        f"{path.name} was compiled from other pyproject.toml entries: run `make lock`"
    )


@pytest.mark.parametrize("name", LOCKS)
def test_every_package_pinned_with_hashes(name):
    entries = _entries(name)
    assert entries
    for pkg, versions in entries.items():
        for version, hashes in versions:
            assert hashes, f"{name}.txt: {pkg}=={version} has no hash (pip --require-hashes would refuse it)"


@pytest.mark.parametrize("name", LOCKS)
def test_direct_pins_are_pyproject_s(name):
    reqs, excluded = lock.direct(name)
    entries = _entries(name)
    for req in reqs:
        pkg, sep, version = req.partition("==")
        pkg = _canon(re.sub(r"\[.*\]", "", pkg).split(">")[0].split("<")[0].strip())
        if pkg in {_canon(e) for e in excluded} or pkg == "streampipeline":
            continue
        assert pkg in entries, f"{name}.txt lacks {pkg} (in pyproject.toml)"
        if sep:
            assert {v for v, _ in entries[pkg]} == {version}, (
                f"{name}.txt pins {entries[pkg]}, pyproject {req}"
            )
    for pkg in excluded:
        assert _canon(pkg) not in entries, f"{name}.txt must leave out {pkg} (the image's own)"


def test_digest_follows_pyproject():
    """The staleness check can fail: a changed pin changes the digest."""
    doc = lock.pyproject()
    before = lock.inputs_digest("generator", doc)
    doc["project"]["optional-dependencies"]["generator"] = ["Faker==1.0.0"]
    assert lock.inputs_digest("generator", doc) != before


def test_make_lock_regenerates_every_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^lock: .*##", makefile, re.M), "a `make lock` target"
    assert "images/lock.py" in makefile
    assert {p.stem for p in lock.OUT.glob("*.txt")} == set(LOCKS)
