"""Helpers for the k8s tests (importable: pytest puts tests/k8s on sys.path)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    """Poll until ``predicate()`` is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def apply_under_relaxed_crd(cp, docs: list[dict]) -> None:
    """Store StreamPipelines whose port in ``bootstrapServers`` is out of range, as if they had
    been stored before the CRD got that rule (the API server now refuses what the model
    refuses, so this is how an invalid stored spec arises): apply a CRD without the rule, the
    objects, then the real CRD again."""
    import json

    from streampipeline.crd import crd_manifest

    relaxed = crd_manifest()
    spec = relaxed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    del spec["properties"]["kafka"]["properties"]["bootstrapServers"]["x-kubernetes-validations"]
    cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(relaxed))
    try:
        for doc in docs:
            deadline = time.monotonic() + 20  # the API server serves the replaced CRD shortly
            while cp.kubectl("apply", "-f", "-", input=json.dumps(doc), check=False).returncode != 0:
                assert time.monotonic() < deadline, "the relaxed CRD was never served"
                time.sleep(0.5)
    finally:
        cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(crd_manifest()))
