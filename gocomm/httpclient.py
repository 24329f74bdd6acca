"""The HTTP client under the HTTP vendors: one keep-alive aiohttp session, opened on first use.

Why aiohttp: at 32 sends in flight, httpx's connection pool spent about 20 times gocomm's own
code in bookkeeping per request; the same vendor code over one ``aiohttp.ClientSession`` costs
less client CPU per send than each vendor's official SDK (``bench/http_vendor.py`` prints
both, side by side). Nothing outside this module imports aiohttp: vendors see
:class:`HttpClient.post` and the small :class:`Response` it returns.

- :class:`HttpClient`: POSTs to paths under one base URL. The session is created on the first
  request, on the running event loop (so a vendor can be built with no loop running), and is
  closed by :meth:`HttpClient.aclose`. Connections are kept alive and reused, at most
  ``max_connections`` at once. ``connect_timeout`` bounds waiting for a pooled connection and
  opening one (TCP and TLS); ``read_timeout`` bounds each wait for the answer's bytes. TLS
  certificates are verified against the system's trust store.
- :class:`Response`: ``status_code``, ``headers`` (case-insensitive ``get``), ``content`` and
  ``json()``.
- :func:`transport_errors`: the client's failures as gocomm errors: a timeout is a
  :class:`~gocomm.errors.SendTimeout`, a certificate that does not verify a
  :class:`~gocomm.errors.PermanentError` (configuration, not weather), any other network or
  protocol failure a retryable :class:`~gocomm.errors.SendError`.
- :func:`host_header`: the ``Host`` the client sends for a base URL (Tencent Cloud signs it).
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gocomm.errors import PermanentError, SendError, SendTimeout

if TYPE_CHECKING:
    # aiohttp is imported when the first request is made, so that plugin registration (which
    # imports the vendors' settings models) stays light.
    import aiohttp

__all__ = ["HttpClient", "Response", "host_header", "transport_errors"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Response:
    """An answer, read in full: status, headers (``get`` ignores case) and body."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        """The body parsed as JSON; raises ``ValueError`` when it is not JSON."""
        return json.loads(self.content)


def host_header(base_url: str) -> str:
    """The ``Host`` header for ``base_url``: the host, with the port unless it is the default."""
    url = urlsplit(base_url)
    host = url.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    if url.port is not None and url.port != _DEFAULT_PORTS.get(url.scheme):
        host += f":{url.port}"
    return host


class HttpClient:
    """POSTs to paths under ``base_url`` over one keep-alive aiohttp session (see the module).

    ``ssl_context`` replaces the default TLS context (the system's trust store), e.g. to trust
    a private CA; certificates are verified either way.
    """

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int = 100,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # None: aiohttp's default, verifying against the system's trust store. Tests pass a
        # context trusting their own CA; verification is never turned off.
        self.ssl_context = ssl_context
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` ran."""
        return self._closed

    def _open(self) -> aiohttp.ClientSession:
        import aiohttp

        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self.connect_timeout,  # pool wait + TCP/TLS connect
            sock_connect=self.connect_timeout,
            sock_read=self.read_timeout,
        )
        connector = aiohttp.TCPConnector(
            limit=self.max_connections, limit_per_host=0, ssl=self.ssl_context or True
        )
        return aiohttp.ClientSession(connector=connector, timeout=timeout)

    async def post(self, path: str, *, content: bytes, headers: Mapping[str, str]) -> Response:
        """POST ``content`` to ``base_url + path`` and read the whole answer.

        Raises aiohttp's exceptions (wrap the call in :func:`transport_errors`) and
        ``RuntimeError`` after :meth:`aclose`.
        """
        if self._closed:
            raise RuntimeError("the HTTP client is closed")
        session = self._session
        if session is None:
            session = self._session = self._open()
        async with session.post(self.base_url + path, data=content, headers=headers) as answer:
            body = await answer.read()
            return Response(answer.status, answer.headers, body)

    async def aclose(self) -> None:
        """Close the session and its connections; idempotent."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()


@contextlib.contextmanager
def transport_errors(
    vendor: str, *, unsent: Iterable[str] | None = None, what: str = "request"
) -> Iterator[None]:
    """Raise the client's failures inside the block as gocomm errors naming ``vendor``.

    A timeout (connecting or reading) becomes :class:`~gocomm.errors.SendTimeout`; a server
    certificate that does not verify a :class:`~gocomm.errors.PermanentError`; any other
    ``aiohttp.ClientError`` (connection refused or reset, a malformed answer) a retryable
    :class:`~gocomm.errors.SendError`; all with ``unsent``. A timeout after the request was
    written is ambiguous (the vendor may have sent): gocomm counts it as unsent, so delivery is
    at-least-once. ``asyncio.CancelledError`` passes through untouched.
    """
    import aiohttp

    try:
        yield
    except TimeoutError as exc:  # aiohttp's connect and read timeouts are TimeoutErrors
        raise SendTimeout(
            f"{vendor}: {what} timed out ({type(exc).__name__}); retry later or raise the "
            "vendor's connect_timeout/read_timeout",
            vendor=vendor,
            code=type(exc).__name__,
            unsent=unsent,
        ) from exc
    except aiohttp.ClientConnectorCertificateError as exc:
        raise PermanentError(
            f"{vendor}: {what} refused: the server's TLS certificate does not verify "
            f"({exc.certificate_error}); check the vendor's endpoint and the system's CA "
            "certificates",
            vendor=vendor,
            code="CertificateError",
            unsent=unsent,
        ) from exc
    except aiohttp.ClientError as exc:
        raise SendError(
            f"{vendor}: {what} failed on the network ({type(exc).__name__}: {exc}); retry later",
            vendor=vendor,
            code=type(exc).__name__,
            unsent=unsent,
        ) from exc
