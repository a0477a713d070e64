"""The StreamPipeline operator: kopf handlers (:mod:`.handlers`), status derivation
(:mod:`.status`), metrics (:mod:`.metrics`) and :func:`run_operator` for the CLI."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

__all__ = ["run_operator"]


class _QuietStatusEvents(logging.Filter):
    """Drop kopf's "Handler '_child_event' succeeded." lines: one per child change is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Handler '_") and message.endswith("_event' succeeded."))


def run_operator(
    *,
    namespaces: Sequence[str] | None = None,
    all_namespaces: bool = False,
    metrics_port: int = 8080,
    liveness: str | None = "http://0.0.0.0:8081/healthz",
    peering: str | None = None,
    verbose: bool = False,
) -> int:
    """Run kopf until interrupted (``streampipeline operator``).

    Namespaces: ``--all-namespaces``, else ``--namespace``, else ``$STREAMPIPELINE_NAMESPACES``,
    else cluster-wide.  Standalone (no peering) unless ``peering`` names a peering object.
    """
    import kopf

    from ..settings import Settings
    from . import handlers, metrics
    from .kube import ConfigError, load_api_client

    assert handlers  # imported for its side effect: registering the kopf handlers

    # Fail at once, saying what is missing: kopf itself would retry its login every 60 s
    # forever, with /healthz not served, so a misconfigured pod would never be restarted.
    try:
        load_api_client()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    if all_namespaces:
        watched: tuple[str, ...] = ()
    elif namespaces:
        watched = tuple(namespaces)
    else:
        watched = settings.namespaces
    logging.getLogger().handlers[:] = []
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.JSON)
    if not verbose:
        logging.getLogger("kopf.objects").addFilter(_QuietStatusEvents())
    if metrics_port:
        metrics.serve(metrics_port)
    kopf.run(
        standalone=peering is None,
        peering_name=peering,
        clusterwide=not watched,
        namespaces=watched,
        liveness_endpoint=liveness or None,
    )
    return 0
