"""A tiny real HTTP/1.1 server on loopback, for testing HTTP vendors against their wire format.

It speaks just enough HTTP/1.1 for a vendor client: requests with a ``Content-Length`` body,
keep-alive (connections stay open until the client closes them or sends ``Connection: close``),
and answers built by an async handler you supply. It counts the connections it accepted, so a
test can observe that a vendor reuses one client::

    async def handler(request: HttpRequest) -> HttpResponse:
        return HttpResponse.json({"Code": "OK"})

    async with LocalHttpServer(handler) as server:
        vendor = SomeVendor(endpoint=server.url)
        ...
        assert server.connections == 1

A vendor package's fake server subclasses :class:`FakeVendorServer`: it implements ``handle``
and records a :class:`~gocomm.testing.outbox.Delivery` per recipient reached, and so is the
contract suite's ``Outbox`` with nothing more to write, connection counts included. A fake of
your own that keeps its :class:`LocalHttpServer` as ``server`` gets the counts by mixing in
:class:`ServerConnections`.

No dependency beyond asyncio (no pytest: ``gocomm fake`` runs these servers outside tests);
the server runs on the caller's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from gocomm.testing.outbox import Delivery

__all__ = [
    "FakeVendorServer",
    "HttpRequest",
    "HttpResponse",
    "LocalHttpServer",
    "ServerConnections",
]

_LOG = logging.getLogger("gocomm.fake")

_MAX_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class HttpRequest:
    """One request as received: method, target, headers (names lower-cased), raw body."""

    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes
    connection_id: int

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.target).query, keep_blank_values=True))

    def form(self) -> dict[str, str]:
        """The body as ``application/x-www-form-urlencoded`` fields."""
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class HttpResponse:
    """An answer: status, headers, body."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(
        cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> HttpResponse:
        return cls(
            status,
            json.dumps(data).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class LocalHttpServer:
    """An HTTP/1.1 server on ``127.0.0.1`` (``port``, by default a free one) answering with
    ``handler``.

    ``url`` is its base URL; ``connections`` counts accepted connections; ``requests`` records
    every request; ``open_connections`` those open now. Use it as an async context manager (or
    ``start()`` / ``aclose()``). With ``ssl`` (a server context, e.g. from ``trustme``) it
    serves HTTPS.
    """

    def __init__(
        self, handler: Handler, *, ssl: ssl.SSLContext | None = None, port: int = 0
    ) -> None:
        self.handler = handler
        self.ssl = ssl
        self.connections = 0
        self.requests: list[HttpRequest] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = port

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        """Connections open right now (a closed client's connections leave this count)."""
        return len(self._writers)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, ssl=self.ssl
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The server owns each connection's task (a coroutine callback would be owned by
        # asyncio's stream protocol, which reports a cancelled one as an error on close).
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.connections += 1
        connection_id = self.connections
        try:
            while True:
                request = await self._read_request(reader, connection_id)
                if request is None:
                    break
                self.requests.append(request)
                response = await self.handler(request)
                keep_alive = request.headers.get("connection", "").lower() != "close"
                writer.write(self._encode(response, keep_alive))
                await writer.drain()
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client went away mid-request (or refused our certificate)
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader, connection_id: int) -> HttpRequest | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise
            return None  # clean close between requests
        except asyncio.LimitOverrunError:
            return None
        if len(head) > _MAX_HEADER_BYTES:
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await reader.readexactly(length) if length else b""
        return HttpRequest(method, target, headers, body, connection_id)

    @staticmethod
    def _encode(response: HttpResponse, keep_alive: bool) -> bytes:
        reason = HTTPStatus(response.status).phrase
        headers = {
            "Content-Length": str(len(response.body)),
            "Connection": "keep-alive" if keep_alive else "close",
            **response.headers,
        }
        head = f"HTTP/1.1 {response.status} {reason}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        )
        return head.encode("latin-1") + b"\r\n" + response.body


class ServerConnections:
    """Gives an outbox whose ``server`` is a :class:`LocalHttpServer` the connection counts the
    contract suite checks (:class:`~gocomm.testing.outbox.CountsConnections`)."""

    server: LocalHttpServer | None

    async def open_connections(self) -> int:
        """Connections the server holds open right now."""
        return self._counting_server().open_connections

    async def connections_made(self) -> int:
        """Connections the server ever accepted."""
        return self._counting_server().connections

    def _counting_server(self) -> LocalHttpServer:
        if self.server is None:
            raise RuntimeError(f"{type(self).__name__} is not serving: start its server first")
        return self.server


@dataclass
class FakeVendorServer(ServerConnections):
    """Base of a vendor's fake HTTP server: the vendor's side of the wire, in tests and under
    ``gocomm fake``.

    A subclass (a dataclass) implements :meth:`handle` and appends one ``Delivery`` per
    recipient a message reached to ``deliveries``; it offers ``settings(**overrides)``, the
    vendor settings that reach it. ``async with fake.serving():`` runs it on a
    :class:`LocalHttpServer` (``server`` while it runs). It is the contract suite's ``Outbox``:
    ``received``, ``open_connections`` and ``connections_made`` come from here. Each request is
    logged on ``gocomm.fake`` (INFO): what it delivered, or the answer that refused it.
    """

    deliveries: list[Delivery] = field(default_factory=list)
    server: LocalHttpServer | None = None

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one request (the subclass's vendor API)."""
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def serving(self, port: int = 0) -> AsyncIterator[Self]:
        """Serve :meth:`handle` on a loopback server (``port``, default a free one) while the
        block runs."""
        async with LocalHttpServer(self._handle_and_log, port=port) as server:
            self.server = server
            yield self

    async def _handle_and_log(self, request: HttpRequest) -> HttpResponse:
        before = len(self.deliveries)
        response = await self.handle(request)
        delivered = self.deliveries[before:]
        name = type(self).__name__
        for delivery in delivered:
            _LOG.info("%s delivered to %s: %s", name, delivery.recipient, delivery.text)
        if not delivered:
            answer = response.body[:300].decode("utf-8", "replace")
            _LOG.info(
                "%s %s %s answered %d, nothing delivered: %s",
                name, request.method, request.path, response.status, answer,
            )  # fmt: skip
        return response

    @property
    def url(self) -> str:
        """The base URL to point the vendor's ``endpoint`` at."""
        return self._running().url

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        return self._running().connections

    async def received(self) -> list[Delivery]:
        return list(self.deliveries)

    def _running(self) -> LocalHttpServer:
        if self.server is None:
            raise RuntimeError("the fake server is not serving: use `async with fake.serving()`")
        return self.server
