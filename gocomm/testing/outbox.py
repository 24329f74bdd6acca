"""What a vendor's fake sees: one :class:`Delivery` per recipient reached, and the
:class:`Outbox` protocol the contract suite observes a fake through.

No pytest here: vendor packages' fake servers import this, and ``gocomm fake`` runs them outside
any test.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["CountsConnections", "Delivery", "Outbox", "mime_text"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """What reached one recipient on the other side.

    ``recipient`` is the address or E.164 number as the caller wrote it (an outbox that sees a
    vendor-specific form, such as a number without ``+``, maps it back). ``text`` is a text
    fingerprint of the content that arrived: the message as received, the template parameters,
    whatever carries the caller's content; the suite looks for its marker in it. ``raw`` is
    anything the outbox wants to keep for debugging.
    """

    recipient: str
    text: str
    raw: Any = None


def mime_text(data: bytes) -> str:
    """The decoded text of a raw RFC 5322 message, for outboxes that see wire bytes (an SMTP
    server): the subject and every text part, with encoded words and transfer encodings
    (base64, quoted-printable) undone, so the suite's markers can be found in it."""
    message = email.parser.BytesParser(policy=email.policy.default).parsebytes(data)
    texts = [str(message.get("Subject", ""))]
    for part in message.walk():
        if part.get_content_maintype() == "text" and not part.is_attachment():
            assert isinstance(part, email.message.EmailMessage)
            texts.append(str(part.get_content()))
    return "\n".join(texts)


class Outbox(Protocol):
    """The observer a contract subclass provides as its ``outbox`` fixture.

    Only :meth:`received` is required. Outboxes of vendors that hold connections should also
    count them (:class:`CountsConnections`): the suite then proves that sends reuse connections
    (a new client per send is caught), that ``aclose()`` releases every one, and that a refused
    recipient never opened one; without the counts it warns that it could not.
    """

    async def received(self) -> Sequence[Delivery]: ...


class CountsConnections(Protocol):
    """An outbox that counts the connections its server side accepted.

    Counted at the server, so that it holds whatever HTTP or SMTP client the vendor uses.
    :class:`gocomm.testing.httpserver.ServerConnections` implements it for an outbox whose
    ``server`` is a :class:`~gocomm.testing.httpserver.LocalHttpServer`.
    """

    async def open_connections(self) -> int:
        """Connections open right now."""
        ...

    async def connections_made(self) -> int:
        """Connections ever accepted."""
        ...
