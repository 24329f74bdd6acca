"""Real aiosmtpd servers on free loopback ports, with certificates made by trustme.

``smtp_server(...)`` starts a server (in aiosmtpd's own thread and event loop) that records
every session, AUTH, envelope and message, and can be told to misbehave: refuse recipients,
answer DATA with an error, drop the connection mid-transfer, answer 421 on a reused session.
Every server is stopped when its test ends.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from gocomm_smtp.settings import SmtpSettings

from gocomm.testing.outbox import Delivery

HOST = "127.0.0.1"
USERNAME = "mailer"
PASSWORD = "pw-Zq8s3cr3t"  # must never show in errors, reprs or logs


@dataclass
class Received:
    """One message accepted by the server."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    session_id: int
    helo: str = ""

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def text(self) -> str:
        """The decoded headers and text parts, as a reader would see them."""
        msg = self.message
        parts = [f"{name}: {value}" for name, value in msg.items()]
        parts += [
            str(part.get_content()) for part in msg.walk() if part.get_content_maintype() == "text"
        ]
        return "\n".join(parts)


@dataclass
class Behaviour:
    """How the server misbehaves; the fields are read in the server's thread."""

    refuse: dict[str, str] = field(default_factory=dict)  # RCPT address -> reply
    data_replies: list[str] = field(default_factory=list)  # next DATA replies, one each
    mail_replies: list[str] = field(default_factory=list)  # next MAIL replies, one each
    drop_in_data: int = 0  # drop the connection in the next n DATA commands
    close_reused_with_421: bool = False  # MAIL on a session that already sent: 421
    data_delay: float = 0.0  # seconds the server takes to accept DATA
    command_delay: float = 0.0  # seconds the server takes to answer MAIL and each RCPT


class Recorder:
    """What the server saw; thread-safe, read from the test's loop."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sessions_made = 0
        self.active = 0
        self.max_active = 0
        self.quits = 0
        self.data_commands = 0
        self.mail_commands = 0
        self.auth: list[tuple[str, str, str]] = []  # (mechanism, login, password)
        self.protocols: weakref.WeakSet[SMTP] = weakref.WeakSet()
        self.messages: list[Received] = []

    def reset(self) -> None:
        with self.lock:
            self.sessions_made = self.quits = self.data_commands = self.mail_commands = 0
            self.max_active = self.active
            self.auth.clear()
            self.messages.clear()


class CountingSMTP(SMTP):  # type: ignore[misc]
    """aiosmtpd's SMTP protocol, counting connections as they open and close."""

    def __init__(self, handler: Any, recorder: Recorder, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.recorder = recorder
        self.session_id = 0
        self._counted = False
        recorder.protocols.add(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:  # a new connection, not the STARTTLS upgrade
            with self.recorder.lock:
                self.recorder.sessions_made += 1
                self.session_id = self.recorder.sessions_made
                self.recorder.active += 1
                self.recorder.max_active = max(self.recorder.max_active, self.recorder.active)
                self._counted = True
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._counted:
            self._counted = False
            with self.recorder.lock:
                self.recorder.active -= 1
        super().connection_lost(error)

    async def smtp_QUIT(self, arg: str) -> None:
        with self.recorder.lock:
            self.recorder.quits += 1
        await super().smtp_QUIT(arg)


class Handler:
    """aiosmtpd handler hooks: record, or misbehave as ``behaviour`` says."""

    def __init__(self, recorder: Recorder, behaviour: Behaviour) -> None:
        self.recorder = recorder
        self.behaviour = behaviour

    async def handle_MAIL(
        self,
        server: CountingSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        with self.recorder.lock:
            self.recorder.mail_commands += 1
            reply = self.behaviour.mail_replies.pop(0) if self.behaviour.mail_replies else None
        if self.behaviour.command_delay:
            await asyncio.sleep(self.behaviour.command_delay)
        reused = getattr(session, "delivered", 0) > 0
        if reply is None and self.behaviour.close_reused_with_421 and reused:
            reply = "421 4.4.2 idle too long, closing"
        if reply is not None:
            if reply.startswith("421"):  # say it, then hang up, as a server shutting down does
                asyncio.get_running_loop().call_later(0.02, server.transport.close)
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: CountingSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.behaviour.command_delay:
            await asyncio.sleep(self.behaviour.command_delay)
        reply = self.behaviour.refuse.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: CountingSMTP, session: Session, envelope: Envelope) -> str:
        with self.recorder.lock:
            self.recorder.data_commands += 1
            drop = self.behaviour.drop_in_data > 0
            if drop:
                self.behaviour.drop_in_data -= 1
            reply = self.behaviour.data_replies.pop(0) if self.behaviour.data_replies else None
        if drop:
            server.transport.close()
            return "451 dropped"  # never reaches the client
        if self.behaviour.data_delay:
            await asyncio.sleep(self.behaviour.data_delay)
        if reply is not None:
            return reply
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        received = Received(
            str(envelope.mail_from),
            list(envelope.rcpt_tos),
            content,
            server.session_id,
            str(session.host_name),
        )
        with self.recorder.lock:
            self.recorder.messages.append(received)
        session.delivered = getattr(session, "delivered", 0) + 1
        return "250 2.0.0 queued"


class SmtpTestServer:
    """A running aiosmtpd server and what it saw; also the contract suite's outbox."""

    def __init__(
        self,
        *,
        tls: str = "none",
        certs: Certs | None = None,
        auth: bool = False,
        auth_require_tls: bool = True,
        password: str = PASSWORD,
    ) -> None:
        self.recorder = Recorder()
        self.behaviour = Behaviour()
        self.port = _free_port()
        self._password = password
        kwargs: dict[str, Any] = {"auth_require_tls": auth_require_tls}
        ssl_context = None
        if tls == "starttls":
            assert certs is not None
            kwargs["tls_context"] = certs.server_context()
        elif tls == "implicit":
            assert certs is not None
            ssl_context = certs.server_context()
        if auth:
            kwargs["authenticator"] = self._authenticate
        handler = Handler(self.recorder, self.behaviour)
        recorder = self.recorder

        class _Controller(Controller):  # type: ignore[misc]
            def factory(self) -> CountingSMTP:
                return CountingSMTP(self.handler, recorder, **self.SMTP_kwargs)

        self.controller = _Controller(
            handler, hostname=HOST, port=self.port, ssl_context=ssl_context, **kwargs
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        with self.recorder.lock:
            self.recorder.auth.append((mechanism, login, password))
        ok = login == USERNAME and password == self._password
        return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535

    def start(self) -> None:
        self.controller.start()
        # The controller opens one connection of its own to check it is up; forget it.
        _wait(lambda: self.recorder.active == 0)
        self.recorder.reset()

    def stop(self) -> None:
        self.controller.stop()

    def drop_all(self) -> None:
        """Close every session from the server side, as a restarting server does."""

        def close() -> None:
            for protocol in list(self.recorder.protocols):
                if protocol.transport is not None:
                    protocol.transport.close()

        self.controller.loop.call_soon_threadsafe(close)

    # the contract suite's outbox

    async def received(self) -> list[Delivery]:
        with self.recorder.lock:
            messages = list(self.recorder.messages)
        return [
            Delivery(recipient=rcpt, text=m.text, raw=m) for m in messages for rcpt in m.rcpt_tos
        ]

    async def open_connections(self) -> int:
        return self.recorder.active

    async def connections_made(self) -> int:
        return self.recorder.sessions_made

    async def wait_until(self, condition: Callable[[Recorder], bool], within: float = 5.0) -> None:
        """Wait (generously) for the server thread to see something the client did."""
        deadline = time.monotonic() + within
        while not condition(self.recorder):
            if time.monotonic() > deadline:
                raise AssertionError(f"the server did not get there within {within}s")
            await asyncio.sleep(0.01)


class Certs:
    """A CA and a server certificate for 127.0.0.1 and localhost, made by trustme."""

    def __init__(self, directory: Path, names: tuple[str, ...] = (HOST, "localhost")) -> None:
        self.ca = trustme.CA()
        self.server_cert = self.ca.issue_cert(*names)
        self.ca_file = directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_cert.configure_cert(context)
        return context


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _wait(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the test server did not settle")
        time.sleep(0.01)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def other_certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """Certificates from a CA the client does not trust."""
    return Certs(tmp_path_factory.mktemp("other-certs"))


@pytest.fixture(scope="session")
def localhost_certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A trusted CA whose server certificate names only ``localhost``, not 127.0.0.1."""
    return Certs(tmp_path_factory.mktemp("localhost-certs"), names=("localhost",))


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., SmtpTestServer]]:
    """A factory: ``smtp_server(tls=..., certs=..., auth=...)`` starts a server for this test."""
    servers: list[SmtpTestServer] = []

    def start(**kwargs: Any) -> SmtpTestServer:
        server = SmtpTestServer(**kwargs)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def make_settings(server: SmtpTestServer, **overrides: Any) -> SmtpSettings:
    """Settings pointing at ``server``: plaintext unless ``tls`` is given, a default From."""
    values: dict[str, Any] = {
        "host": HOST,
        "port": server.port,
        "tls": "none",
        "sender": "App <app@example.com>",
        "timeout": 5,
    }
    values.update(overrides)
    return SmtpSettings(**values)
