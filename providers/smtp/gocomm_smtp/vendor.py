"""``SmtpSender``: the ``smtp`` vendor, sending :class:`~gocomm.messages.Email` over a pool.

One send is one SMTP transaction (MAIL, one RCPT per address, DATA) on a pooled connection.
Recipients are checked and the message is written before a connection is leased, so bad input
never touches the network.

A pooled connection can die while idle without the client noticing yet (a server's idle
timeout, a restart). When MAIL, the first command of a transaction, fails on a *reused*
connection because it was dropped or answered 421, nothing has been handed to the server, so
the transaction moves once to a fresh connection. A failure after that (during RCPT or DATA) is
raised as it is: a message cut off mid-transfer may have been delivered and is never resent
blindly here; the caller's retry policy decides.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Any

import aiosmtplib

from gocomm.errors import ConfigError, SendError, SendTimeout
from gocomm.mime import Envelope, build_envelope
from gocomm.sender import AsyncCloseable, Receipt
from gocomm_smtp.errors import VENDOR, TlsRequired, classify, reply_error
from gocomm_smtp.pool import Lease, PooledConnection, SmtpPool
from gocomm_smtp.settings import SmtpSettings

__all__ = ["SmtpSender"]

_SERVICE_CLOSING = 421  # the server is shutting this connection down


class _StaleConnection(Exception):
    """A reused connection turned out dead before anything of this message was accepted."""


class SmtpSender(AsyncCloseable):
    """Sends emails through an SMTP server over a pool of up to ``pool_size`` connections.

    ``local_hostname`` is the name given in EHLO; by default ``socket.getfqdn()``, looked up
    once, in a thread. ``name`` is the vendor name receipts carry.

    ``send(biz, email, *to)``: ``biz`` is ignored (SMTP has no templates); ``to`` are the
    ``To`` recipients, ``email.cc`` and ``email.bcc`` travel with every attempt and ``bcc``
    appears in no header. Returns a :class:`Receipt` with the message's Message-ID; cc/bcc
    addresses the server refused while the ``to`` addresses went through are in
    ``Receipt.refused``. Use it as an async context manager, or call :meth:`aclose`.
    """

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        logger: logging.Logger | None = None,
        name: str = VENDOR,
        local_hostname: str | None = None,
    ) -> None:
        self.settings = settings
        self.name = name
        self._log = logger or logging.getLogger("gocomm.smtp")
        self._tls_context: ssl.SSLContext | None = None
        self._local_hostname = local_hostname
        self.pool = SmtpPool(
            self._open,
            size=settings.pool_size,
            idle_timeout=settings.idle_timeout,
            max_messages=settings.max_messages,
            max_refusals=settings.max_refusals,
            logger=self._log,
        )

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"SmtpSender(host={s.host!r}, port={s.port}, tls={s.tls!r}, "
            f"username={s.username!r}, pool_size={s.pool_size})"
        )

    @property
    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    async def send(self, biz: str, args: Any, *to: str) -> Receipt:
        envelope = build_envelope(args, to, self.settings.sender)
        async with self.pool.lease() as lease:
            refused = await self._transaction(lease, envelope)
        return self._receipt(envelope, refused)

    # The SMTP transaction -------------------------------------------------------------------

    async def _transaction(
        self, lease: Lease, envelope: Envelope
    ) -> dict[str, aiosmtplib.SMTPResponse]:
        conn = await self._connection(lease)
        try:
            # One timer per transaction, moved on before each command (_next_command), gives
            # every command `timeout` seconds. aiosmtplib's own per-reply timeout is an
            # asyncio.wait_for (a future, a callback and a timer for each of the five replies
            # of a message), a tenth of the client's CPU per pooled send; so its commands get
            # timeout=None here.
            async with asyncio.timeout(None) as deadline:
                try:
                    await self._mail(conn, envelope, deadline)
                except _StaleConnection as stale:
                    self._log.info(
                        "smtp: pooled connection to %s was closed by the server (%s); reconnecting",
                        self._where,
                        stale.__cause__,
                    )
                    lease.discard()
                    deadline.reschedule(None)  # connecting has its own timeouts
                    conn = await self._connection(lease)
                    await self._mail(conn, envelope, deadline)
                refused = await self._recipients(conn, envelope, deadline)
                accepted = not all(addr in refused for addr in envelope.to)
                if accepted:
                    self._next_command(deadline)
                    await conn.smtp.data(envelope.data, timeout=None)
            if not accepted:
                await self._reset(lease, conn)
                await self._count_refusal(lease)
                raise self._all_refused(envelope, refused)
        except aiosmtplib.SMTPResponseException as exc:
            # The server said no to this message; the session itself is fine unless closed.
            await self._reset(lease, conn)
            await self._count_refusal(lease)
            raise classify(exc, f"sending to {self._where}") from exc
        except (SendError, ConfigError):
            raise
        except TimeoutError as exc:  # the deadline passed: the session state is unknown
            lease.discard()
            raise SendTimeout(
                f"smtp: {self._where} did not reply within {self.settings.timeout:g} s "
                "(the timeout setting) while sending",
                vendor=VENDOR,
            ) from exc
        except Exception as exc:
            lease.discard()  # a session in an unknown state is never reused
            raise classify(exc, f"sending to {self._where}") from exc
        except BaseException:  # cancelled mid-transaction: the session state is unknown
            lease.discard()
            raise
        if lease.done():
            await lease.retire()  # max_messages reached: QUIT now, a new one next time
        elif refused:
            await self._count_refusal(lease)
        return refused

    def _next_command(self, deadline: asyncio.Timeout) -> None:
        """Give the command about to be sent ``timeout`` seconds for its reply."""
        deadline.reschedule(asyncio.get_running_loop().time() + self.settings.timeout)

    async def _connection(self, lease: Lease) -> PooledConnection:
        try:
            return await lease.connection()
        except (SendError, ConfigError):
            raise
        except Exception as exc:
            raise classify(exc, f"connecting to {self._where}") from exc

    async def _mail(
        self, conn: PooledConnection, envelope: Envelope, deadline: asyncio.Timeout
    ) -> None:
        smtp = conn.smtp
        options = [f"SIZE={len(envelope.data)}"] if smtp.supports_extension("size") else []
        self._next_command(deadline)
        try:
            await smtp.mail(envelope.sender, options=options, timeout=None)
        except aiosmtplib.SMTPServerDisconnected as exc:
            if conn.reused:
                raise _StaleConnection from exc
            raise
        except aiosmtplib.SMTPResponseException as exc:
            if conn.reused and exc.code == _SERVICE_CLOSING:
                raise _StaleConnection from exc
            raise

    async def _recipients(
        self, conn: PooledConnection, envelope: Envelope, deadline: asyncio.Timeout
    ) -> dict[str, aiosmtplib.SMTPResponse]:
        refused: dict[str, aiosmtplib.SMTPResponse] = {}
        for addr in envelope.recipients:
            self._next_command(deadline)
            try:
                await conn.smtp.rcpt(addr, timeout=None)
            except aiosmtplib.SMTPRecipientRefused as exc:
                if exc.code == _SERVICE_CLOSING:
                    raise  # the session is over, not just this address
                refused[addr] = aiosmtplib.SMTPResponse(exc.code, exc.message)
        return refused

    async def _count_refusal(self, lease: Lease) -> None:
        """Retire a connection after ``max_refusals`` refused transactions: servers slow down,
        then drop, a client that keeps getting refusals (Postfix's smtpd_soft_error_limit)."""
        if lease.refused():
            self._log.info(
                "smtp: %d refused transactions on one connection to %s; opening a new one",
                self.settings.max_refusals,
                self._where,
            )
            await lease.retire()

    async def _reset(self, lease: Lease, conn: PooledConnection) -> None:
        """Clear the envelope with RSET so the connection can be reused; drop it if that fails."""
        if not conn.smtp.is_connected:
            lease.discard()
            return
        try:
            await conn.smtp.rset(timeout=self.settings.timeout)
        except Exception as exc:
            self._log.debug("smtp: RSET failed, dropping the connection: %s", exc)
            lease.discard()
        except BaseException:
            lease.discard()
            raise

    # Results ------------------------------------------------------------------------------------

    def _all_refused(
        self, envelope: Envelope, refused: dict[str, aiosmtplib.SMTPResponse]
    ) -> SendError:
        """Every ``to`` refused: nothing was sent. Retryable if any refusal was temporary."""
        unsent = [envelope.originals[a] for a in envelope.to]
        return self._refusal(envelope, refused, envelope.to, unsent, "refused every recipient")

    def _receipt(self, envelope: Envelope, refused: dict[str, aiosmtplib.SMTPResponse]) -> Receipt:
        refused_to = [a for a in envelope.to if a in refused]
        if refused_to:
            # Sent to the other `to` recipients: name exactly those still owed the message.
            unsent = [envelope.originals[a] for a in refused_to]
            raise self._refusal(
                envelope,
                refused,
                tuple(refused_to),
                unsent,
                f"delivered {envelope.message_id} to the other recipients but refused some",
            )
        others = [a for a in envelope.cc + envelope.bcc if a in refused]
        if others:
            self._log.warning(
                "smtp: %s refused %d cc/bcc recipient(s) of %s: %s",
                self._where,
                len(others),
                envelope.message_id,
                ", ".join(f"{a} ({refused[a].code})" for a in others),
            )
        return Receipt(
            vendor=self.name,
            message_ids=(envelope.message_id,),
            refused=tuple(envelope.originals[a] for a in others),
        )

    def _refusal(
        self,
        envelope: Envelope,
        refused: dict[str, aiosmtplib.SMTPResponse],
        addresses: tuple[str, ...],
        unsent: list[str],
        what: str,
    ) -> SendError:
        details = "; ".join(
            f"{envelope.originals[a]}: {refused[a].code} {refused[a].message}" for a in addresses
        )
        temporary = [refused[a].code for a in addresses if not 500 <= refused[a].code < 600]
        code = temporary[0] if temporary else refused[addresses[0]].code
        return reply_error(code, details, f"{self._where} {what}", unsent=unsent)

    # Connections -------------------------------------------------------------------------------

    async def _open(self) -> aiosmtplib.SMTP:
        """Open one ready connection: greeted, TLS verified (unless tls none), logged in."""
        s = self.settings
        tls_context = await self._tls() if s.tls != "none" else None
        smtp = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            timeout=s.timeout,
            local_hostname=await self._hostname(),
            use_tls=s.tls == "implicit",
            # Explicit: aiosmtplib's default (None) falls back to plaintext when STARTTLS is
            # not offered; True makes a missing STARTTLS an error.
            start_tls=s.tls == "starttls",
            tls_context=tls_context,
        )
        try:
            await smtp.connect()
            if s.tls != "none" and smtp.get_transport_info("sslcontext") is None:
                raise TlsRequired(
                    f"the connection to {self._where} is not encrypted although tls is "
                    f"{s.tls!r}; nothing was authenticated or sent"
                )
            if smtp.is_ehlo_or_helo_needed:
                await smtp.ehlo()
            if s.username is not None and s.password is not None:
                await smtp.login(s.username, s.password.get_secret_value())
        except BaseException:
            smtp.close()
            raise
        return smtp

    async def _tls(self) -> ssl.SSLContext:
        if self._tls_context is None:
            self._tls_context = await asyncio.to_thread(self._build_tls_context)
        return self._tls_context

    def _build_tls_context(self) -> ssl.SSLContext:
        # The system's trust store, certificate and host name verification always on;
        # ca_file adds a root to it (it does not replace the system store).
        context = ssl.create_default_context()
        if self.settings.ca_file is not None:
            try:
                context.load_verify_locations(cafile=str(self.settings.ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"smtp: ca_file {str(self.settings.ca_file)!r} could not be loaded as PEM "
                    f"certificates: {exc}"
                ) from exc
        return context

    async def _hostname(self) -> str:
        # socket.getfqdn() may block on DNS: once per sender, in a thread.
        if self._local_hostname is None:
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        return self._local_hostname

    async def _aclose(self) -> None:
        await self.pool.aclose()
