"""uvicorn around the app: in the foreground (``streampipeline api``) or in a thread
(``streampipeline run``), bound to loopback unless told otherwise."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from .app import create_app
from .config import ApiConfig

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _server(cfg: ApiConfig, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(cfg),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=5,
        limit_concurrency=64,
    )
    return uvicorn.Server(config)


def serve(cfg: ApiConfig, host: str = LOOPBACK, port: int = 8000) -> None:
    """Run until SIGINT/SIGTERM (uvicorn's own handlers)."""
    _server(cfg, host, port).run()


class BackgroundServer:
    """The service in a daemon thread; ``url`` once it listens, ``stop()`` to end it."""

    def __init__(self, cfg: ApiConfig, host: str = LOOPBACK, port: int = 0) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.server = _server(cfg, host, self.port)
        # Off the main thread uvicorn installs no signal handlers: the runner keeps Ctrl-C/SIGTERM.
        self.thread = threading.Thread(target=self.server.run, name="api-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the API server did not start on {self.url}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
