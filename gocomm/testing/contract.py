"""The vendor contract suite: the behaviour every gocomm vendor owes its callers.

A vendor package (gocomm's own or a third party's) runs it against its own vendor by
subclassing :class:`VendorContract` in a test module and providing two fixtures:

``outbox``
    An observer of the *other side*: the fake server, the directory, the captured stream.
    It has ``async def received() -> Sequence[Delivery]``, one :class:`Delivery` per recipient
    that a message reached. It should also count connections, ``async def open_connections()
    -> int`` (open right now) and ``async def connections_made() -> int`` (ever accepted): the
    suite then catches a new client per send and an ``aclose()`` that leaves connections open;
    without them it warns (:class:`ConnectionsNotCounted`) that it could not. An outbox whose
    ``server`` is a :class:`~gocomm.testing.httpserver.LocalHttpServer` gets both by mixing in
    :class:`~gocomm.testing.httpserver.ServerConnections`.
``vendor``
    The vendor under test, opened, pointed at the outbox, and closed when the test ends.

and two class attributes, ``channel`` (``"email"`` or ``"sms"``) and ``vendor_name`` (the
registered name the receipts and errors must carry). A vendor whose fake server can be told
to fail also mixes in :class:`FailureContract` and implements ``make_failure``.

Example (an SMS vendor with a local HTTP fake)::

    import pytest
    import pytest_asyncio

    from gocomm.testing.contract import Delivery, FailureContract, VendorContract


    class TestAcmeVendor(VendorContract, FailureContract):
        channel = "sms"
        vendor_name = "acme"
        secret_values = ("s3cret-key",)  # must never show in errors, reprs or logs

        @pytest_asyncio.fixture
        async def outbox(self):
            async with FakeAcmeServer() as server:  # server.received() -> list[Delivery]
                yield server

        @pytest_asyncio.fixture
        async def vendor(self, outbox):
            async with AcmeVendor(endpoint=outbox.url, api_key="s3cret-key") as vendor:
                yield vendor

        def message(self, marker):  # (biz, args) whose delivery text contains `marker`
            return "login", {"code": marker}

        async def make_failure(self, outbox, kind):  # "retryable" or "permanent"
            outbox.fail_next(status=503 if kind == "retryable" else 400)

Every async test is marked ``@pytest.mark.asyncio``, so the suite runs under pytest-asyncio in
strict and in auto mode (in strict mode, declare async fixtures with ``pytest_asyncio.fixture``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pytest

from gocomm.channels import Channel
from gocomm.errors import InvalidMessage, InvalidRecipient, PermanentError, SendError, is_retryable
from gocomm.messages import Email
from gocomm.recipients import validate_email, validate_phone
from gocomm.sender import Receipt
from gocomm.testing.outbox import Delivery, Outbox, mime_text

__all__ = [
    "ConnectionsNotCounted",
    "Delivery",
    "FailureContract",
    "FailureKind",
    "Outbox",
    "VendorContract",
    "mime_text",
]

FailureKind = Literal["retryable", "permanent"]


class ConnectionsNotCounted(UserWarning):
    """The outbox cannot count connections, so the suite could not check how the vendor uses
    them (a new client per send, connections left open after ``aclose()``)."""


def _marker() -> str:
    return f"mk{uuid.uuid4().hex[:12]}"


async def _optional_count(outbox: object, method: str) -> int | None:
    counter = getattr(outbox, method, None)
    if counter is None:
        return None
    return int(await counter())


class VendorContract:
    """The contract tests; subclass it as ``Test...`` and provide the fixtures above.

    Everything below ``# hooks`` may be overridden: the messages sent, the recipients used,
    the bad recipients tried, how many concurrent sends to make and how long connections may
    take to close on the server side.
    """

    channel: ClassVar[Channel]
    vendor_name: ClassVar[str]
    #: Strings (passwords, API keys) that must never appear in errors, reprs or log records.
    secret_values: ClassVar[tuple[str, ...]] = ()
    #: Sends made at once by the concurrency test.
    concurrent_sends: ClassVar[int] = 20
    #: Event loop steps after which the cancellation test cancels a send, one send each.
    cancel_points: ClassVar[tuple[int, ...]] = (0, 1, 2, 3, 5, 8, 13, 21)
    #: Seconds the server side may take to see connections closed after ``aclose()``.
    close_timeout: ClassVar[float] = 5.0
    #: Sends made one after another by the connection reuse test, and the most connections
    #: they may open in all (a vendor reusing its client opens one).
    sequential_sends: ClassVar[int] = 10
    max_sequential_connections: ClassVar[int] = 2
    #: False for a vendor that holds no connection at all (a file, a console): the connection
    #: checks then neither run nor warn.
    holds_connections: ClassVar[bool] = True

    # fixtures a subclass must override

    if not TYPE_CHECKING:  # hidden from type checkers, so overrides may take any signature

        @pytest.fixture
        def outbox(self) -> Outbox:
            raise NotImplementedError(
                f"{type(self).__name__} must define an `outbox` fixture: an object with "
                "`async def received() -> Sequence[Delivery]` observing what arrived"
            )

        @pytest.fixture
        def vendor(self) -> Any:
            raise NotImplementedError(
                f"{type(self).__name__} must define a `vendor` fixture yielding the opened "
                "vendor, pointed at the outbox"
            )

    # hooks

    def message(self, marker: str) -> tuple[str, Any]:
        """``(biz, args)`` of a message whose delivered text contains ``marker``."""
        if self.channel == "email":
            return "contract", Email(
                subject=f"contract {marker}", text=f"Hello from the contract suite: {marker}"
            )
        return "contract", {"code": marker}

    def recipients(self, count: int) -> list[str]:
        """``count`` distinct valid recipients for this channel."""
        if self.channel == "email":
            return [f"user{i}@example.com" for i in range(count)]
        return [f"+1555010{i:04d}" for i in range(count)]

    def bad_sends(self) -> list[tuple[str, str, Any, tuple[str, ...]]]:
        """``(label, biz, args, to)`` sends that must be refused before any network call.

        Each names a value that must appear (as written or as its repr) in the error, except
        the send to nobody.
        """
        biz, args = self.message(_marker())
        if self.channel == "email":
            good = self.recipients(1)[0]
            bad_email = [
                ("malformed address", biz, args, ("not-an-address",)),
                ("CR/LF in address", biz, args, ("a@example.com\r\nBcc: x@example.com",)),
                ("empty address", biz, args, ("",)),
                ("one bad among good", biz, args, (good, "bad@@example.com")),
                ("no recipients", biz, args, ()),
            ]
            if isinstance(args, Email):
                broken = ("broken@",)
                for field, bad_args in (
                    ("cc", dataclasses.replace(args, cc=broken)),
                    ("bcc", dataclasses.replace(args, bcc=broken)),
                    ("reply_to", dataclasses.replace(args, reply_to=broken)),
                ):
                    bad_email.append((f"bad {field} address", biz, bad_args, (good,)))
                bad_email.append(
                    ("bad sender", biz, dataclasses.replace(args, sender="no-at-sign"), (good,))
                )
            return bad_email
        good = self.recipients(1)[0]
        return [
            ("not E.164", biz, args, ("12345",)),
            ("letters", biz, args, ("+1555abc0100",)),
            ("CR/LF in number", biz, args, ("+15550100\r\n+15550101",)),
            ("empty number", biz, args, ("",)),
            ("one bad among good", biz, args, (good, "555")),
            ("no recipients", biz, args, ()),
        ]

    async def open_connections(self, outbox: Any) -> int | None:
        """Connections the server side holds open now; None when the outbox cannot tell."""
        return await _optional_count(outbox, "open_connections")

    async def connections_made(self, outbox: Any) -> int | None:
        """Connections the server side ever accepted; None when the outbox cannot tell."""
        return await _optional_count(outbox, "connections_made")

    # helpers

    async def _arrived(self, outbox: Any, marker: str) -> list[Delivery]:
        return [d for d in await outbox.received() if marker in d.text]

    def _uncounted(self, check: str) -> None:
        if self.holds_connections:
            warnings.warn(
                f"{type(self).__name__}: the outbox cannot count connections, so {check} was "
                "not checked; give it `async def open_connections()` and `async def "
                "connections_made()` (an outbox whose `server` is a LocalHttpServer: mix in "
                "gocomm.testing.httpserver.ServerConnections), or set holds_connections = False",
                ConnectionsNotCounted,
                stacklevel=2,
            )

    def _assert_no_secret(self, what: str, text: str) -> None:
        for secret in self.secret_values:
            assert secret not in text, f"a secret value appears in {what}: {text[:200]!r}"

    # the contract

    @pytest.mark.asyncio
    async def test_send_arrives_once_per_recipient(self, vendor: Any, outbox: Any) -> None:
        marker = _marker()
        biz, args = self.message(marker)
        to = self.recipients(3)
        await vendor.send(biz, args, *to)
        arrived = await self._arrived(outbox, marker)
        got = sorted(d.recipient for d in arrived)
        assert got == sorted(to), f"expected one delivery to each of {to}, got {got}"

    @pytest.mark.asyncio
    async def test_receipt_names_the_vendor(self, vendor: Any, outbox: Any) -> None:
        biz, args = self.message(_marker())
        receipt = await vendor.send(biz, args, *self.recipients(1))
        assert isinstance(receipt, Receipt), f"send must return a Receipt, got {receipt!r}"
        assert receipt.vendor == self.vendor_name, (
            f"receipt names vendor {receipt.vendor!r}, expected {self.vendor_name!r}"
        )
        assert receipt.message_ids, "the receipt carries no message id"
        assert all(isinstance(i, str) and i for i in receipt.message_ids), receipt.message_ids
        again = await vendor.send(biz, args, *self.recipients(1))
        assert isinstance(again, Receipt), f"send must return a Receipt, got {again!r}"
        assert not set(again.message_ids) & set(receipt.message_ids), (
            f"two sends share a message id: {receipt.message_ids} and {again.message_ids}"
        )
        self._assert_no_secret("repr(vendor)", repr(vendor))
        self._assert_no_secret("str(vendor)", str(vendor))

    @pytest.mark.asyncio
    async def test_non_ascii_content_arrives_intact(self, vendor: Any, outbox: Any) -> None:
        # The marker itself carries the non-ASCII text, so every message() override covers it;
        # an outbox must decode what it observes (MIME: see mime_text(); JSON escapes).
        marker = f"{_marker()}-Grüße-你好-🙂"
        biz, args = self.message(marker)
        to = self.recipients(2)
        await vendor.send(biz, args, *to)
        arrived = await self._arrived(outbox, marker)
        got = sorted(d.recipient for d in arrived)
        assert got == sorted(to), f"the non-ASCII marker reached {got}, expected {to}"

    @pytest.mark.asyncio
    async def test_concurrent_sends_each_arrive_once(self, vendor: Any, outbox: Any) -> None:
        markers = [_marker() for _ in range(self.concurrent_sends)]
        recipients = self.recipients(len(markers))
        async with asyncio.TaskGroup() as group:
            for marker, recipient in zip(markers, recipients, strict=True):
                biz, args = self.message(marker)
                group.create_task(vendor.send(biz, args, recipient))
        received = await outbox.received()
        for marker, recipient in zip(markers, recipients, strict=True):
            hits = [d.recipient for d in received if marker in d.text]
            assert hits == [recipient], f"message {marker} reached {hits}, expected [{recipient}]"

    @pytest.mark.asyncio
    async def test_cancelled_send_propagates_and_vendor_recovers(
        self, vendor: Any, outbox: Any
    ) -> None:
        # Cancel at several points of a send (before it starts, mid-flight, ...): each must end
        # cancelled or sent, never with an error in place of the CancelledError, and the
        # vendor must go on sending (a pool drops the connection it was using).
        to = self.recipients(1)
        for steps in self.cancel_points:
            biz, args = self.message(_marker())
            task = asyncio.create_task(vendor.send(biz, args, *to))
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.wait([task])
            assert task.cancelled() or task.exception() is None, (
                f"cancelled after {steps} loop steps, the send raised {task.exception()!r} "
                "instead of letting CancelledError through"
            )
        marker = _marker()
        biz, args = self.message(marker)
        await vendor.send(biz, args, *to)
        arrived = await self._arrived(outbox, marker)
        assert [d.recipient for d in arrived] == to, "the vendor did not recover"

    @pytest.mark.asyncio
    async def test_bad_recipients_refused_before_network(
        self, vendor: Any, outbox: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        before = await self.connections_made(outbox)
        for label, biz, args, to in self.bad_sends():
            try:
                await vendor.send(biz, args, *to)
            except (InvalidRecipient, InvalidMessage) as exc:
                error = str(exc)
            except Exception as exc:
                raise AssertionError(
                    f"{label}: expected InvalidRecipient or InvalidMessage, got {exc!r}"
                ) from exc
            else:
                raise AssertionError(f"{label}: send to {to!r} was accepted; it must be refused")
            bad = _bad_values(self.channel, args, to)
            if bad:
                assert any(v in error or repr(v) in error for v in bad), (
                    f"{label}: the error {error!r} does not name the bad value"
                )
            self._assert_no_secret(f"the {label} error", error)
        assert list(await outbox.received()) == [], "a refused send reached the other side"
        after = await self.connections_made(outbox)
        assert before == after, f"refused sends opened {after or 0} - {before or 0} connections"
        self._assert_no_secret("the log", caplog.text)

    @pytest.mark.asyncio
    async def test_sequential_sends_reuse_connections(self, vendor: Any, outbox: Any) -> None:
        # One client per vendor, reused: a new client (a new connection) per send is slow and
        # exhausts sockets under load, and no other test notices it.
        before = await self.connections_made(outbox)
        markers = [_marker() for _ in range(self.sequential_sends)]
        recipient = self.recipients(1)
        for marker in markers:
            biz, args = self.message(marker)
            await vendor.send(biz, args, *recipient)
        received = await outbox.received()
        assert all(any(m in d.text for d in received) for m in markers), "a send did not arrive"
        after = await self.connections_made(outbox)
        if before is None or after is None:
            self._uncounted("connection reuse across sends")
            return
        assert after - before <= self.max_sequential_connections, (
            f"{self.sequential_sends} sends one after another opened {after - before} "
            f"connections (at most {self.max_sequential_connections} expected): does the "
            "vendor make a new client per send instead of reusing one?"
        )

    @pytest.mark.asyncio
    async def test_aclose_is_idempotent_and_releases_connections(
        self, vendor: Any, outbox: Any
    ) -> None:
        assert callable(getattr(vendor, "__aenter__", None)), "a vendor is an async context manager"
        assert callable(getattr(vendor, "__aexit__", None)), "a vendor is an async context manager"
        biz, args = self.message(_marker())
        await vendor.send(biz, args, *self.recipients(2))
        opened = await self.open_connections(outbox)
        await vendor.aclose()
        await vendor.aclose()  # idempotent: a second close neither fails nor blocks
        if opened is None:
            self._uncounted("that aclose() closes the vendor's connections")
            return
        await _eventually(
            lambda: self.open_connections(outbox),
            lambda n: n == 0,
            self.close_timeout,
            "connections still open on the server side after aclose(): does aclose() close "
            "the vendor's client?",
        )


class FailureContract:
    """Error classification, for vendors whose fake server can be told to fail.

    Mix it into a :class:`VendorContract` subclass and implement :meth:`make_failure`.
    """

    #: The failure kinds the outbox can produce; narrow it if one cannot be produced.
    failure_kinds: ClassVar[tuple[FailureKind, ...]] = ("retryable", "permanent")

    async def make_failure(self, outbox: Any, kind: FailureKind) -> None:
        """Arrange for the next send to fail, once: ``"retryable"`` as a server error or
        throttling (an SMTP 4xx, an HTTP 503 or 429, a throttling code), ``"permanent"`` as a
        rejection retrying cannot fix (an SMTP 5xx, an invalid template or credential)."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_failure()")

    @pytest.mark.asyncio
    @pytest.mark.parametrize("kind", ["retryable", "permanent"])
    async def test_failure_is_classified(
        self, vendor: Any, outbox: Any, kind: FailureKind, caplog: pytest.LogCaptureFixture
    ) -> None:
        contract = _contract(self)
        if kind not in self.failure_kinds:
            # The subclass narrowed failure_kinds; prove the other kinds instead of skipping.
            kind = self.failure_kinds[0]
        caplog.set_level(logging.DEBUG)
        await self.make_failure(outbox, kind)
        marker = _marker()
        biz, args = contract.message(marker)
        to = tuple(contract.recipients(1))
        with pytest.raises(SendError) as caught:
            await vendor.send(biz, args, *to)
        error = caught.value
        if kind == "permanent":
            assert isinstance(error, PermanentError), f"expected a PermanentError, got {error!r}"
        else:
            assert not isinstance(error, PermanentError), f"{error!r} should be retryable"
            assert is_retryable(error), f"{error!r} should be retryable"
        assert error.vendor == contract.vendor_name, (
            f"the error names vendor {error.vendor!r}, expected {contract.vendor_name!r}"
        )
        assert error.unsent is None or set(error.unsent) <= set(to), error.unsent
        for what, text in (("str(error)", str(error)), ("repr(error)", repr(error))):
            contract._assert_no_secret(what, text)
        contract._assert_no_secret("the log", caplog.text)
        # The failure was one-off: the vendor recovers and the next send goes through.
        marker = _marker()
        biz, args = contract.message(marker)
        await vendor.send(biz, args, *to)
        arrived = await contract._arrived(outbox, marker)
        assert [d.recipient for d in arrived] == list(to), "the vendor did not recover"


def _contract(test: object) -> VendorContract:
    if not isinstance(test, VendorContract):
        raise TypeError(f"{type(test).__name__} mixes in FailureContract without VendorContract")
    return test


def _invalid(check: Callable[[str], str], value: str) -> bool:
    try:
        check(value)
    except InvalidRecipient:
        return True
    return False


def _bad_values(channel: Channel, args: Any, to: Sequence[str]) -> list[str]:
    """The values a refusal should name: the invalid recipients and Email addresses."""
    check = validate_email if channel == "email" else validate_phone
    values = [r for r in to if r and _invalid(check, r)]
    if isinstance(args, Email):
        extra = (*args.cc, *args.bcc, *args.reply_to, *(a for a in [args.sender] if a))
        values += [a for a in extra if _invalid(validate_email, a)]
    return values


async def _eventually(
    probe: Callable[[], Awaitable[int | None]],
    done: Callable[[int | None], bool],
    within: float,
    failure: str,
) -> None:
    """Poll ``probe`` until ``done`` holds: the server sees a close some time after the client."""
    deadline = time.monotonic() + within
    value = await probe()
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"{failure} (after {within}s: {value})")
        await asyncio.sleep(0.01)
        value = await probe()
