"""What the DAG files' tasks share: the Kubernetes client from an Airflow connection, and
turning the helpers' errors into task failures that are not retried."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from .kube import PipelineFailed

log = logging.getLogger("streampipeline.airflow")
T = TypeVar("T")


def custom_objects(conn_id: str) -> Any:
    """``CustomObjectsApi`` for the cluster of the Airflow connection ``conn_id`` (type
    ``kubernetes``: a kubeconfig path or content, or in-cluster)."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    return KubernetesHook(conn_id=conn_id).custom_object_client


def failing_clearly(fn: Callable[[], T]) -> T:
    """Run ``fn``; a :class:`PipelineFailed` fails the task at once with its message (a
    retry would not change a rejected spec or a failed pipeline)."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        return fn()
    except PipelineFailed as exc:
        log.error("%s", exc)
        raise AirflowFailException(str(exc)) from None
