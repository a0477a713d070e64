"""The REST service and dashboard beside a local run (``streampipeline run``'s default).

Kept out of runner.py: the runner only calls :func:`start_for` once Kafka and the job
config exist, and stops what it returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class LocalApi:
    url: str
    token: str
    server: Any  # streampipeline.api.server.BackgroundServer

    def stop(self) -> None:
        self.server.stop()


def start_for(
    job_config: dict[str, Any], sink: Path, printer: Callable[[str], None], port: int = 0
) -> LocalApi:
    """Serve the run's topics and sink on a free loopback port; print the URL and the
    write token (generated for this run and shown only here)."""
    from ..api.config import ApiConfig, new_token, token_from_env
    from ..api.server import BackgroundServer

    given = token_from_env()
    token = given or new_token()
    cfg = ApiConfig.from_job_config(job_config, sink=sink, token=token)
    server = BackgroundServer(cfg, port=port).start()
    printer(f"Dashboard and API: {server.url}/  (OpenAPI docs: {server.url}/docs)")
    if given:  # the user's own secret: never echoed
        printer("API write token: the one in STREAMPIPELINE_API_TOKEN")
    else:
        printer(f"API write token (for POST, shown once): {token}")
    return LocalApi(server.url, token, server)
