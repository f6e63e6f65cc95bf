"""Run the API app with uvicorn in a background thread (tests, `sitroom demo`, embedding)."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Self

import uvicorn
from fastapi import FastAPI

from cloud.dev.servers import free_port


class ApiServerError(RuntimeError):
    pass


class ThreadedApiServer:
    """`with ThreadedApiServer(app) as server:` serves on `server.url` until the block ends."""

    def __init__(self, app: FastAPI, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port if port is not None else free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host=host, port=self.port, log_level="warning", access_log=False, lifespan="off"
            )
        )
        self._thread = threading.Thread(target=self.server.run, name=f"api-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> Self:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive():
                raise ApiServerError(f"API server on {self.url} exited during start-up")
            if time.monotonic() > deadline:
                self.stop()
                raise ApiServerError(f"API server on {self.url} not ready within {timeout_s:g} s")
            time.sleep(0.02)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
