"""The one protocol every vendor and strategy implements, and what a send returns."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar, runtime_checkable

__all__ = [
    "AsyncCloseable",
    "Receipt",
    "SendTo",
    "Sender",
    "Stage",
    "aclose_all",
    "merge_refused",
    "send_to_of",
    "with_refused",
]

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a successful send returns.

    ``vendor`` is the registered name of the vendor that sent, ``message_ids`` the vendor's ids,
    ``attempts`` the calls a retry strategy made, ``refused`` addresses the vendor refused while
    the send as a whole went through (such as an email cc). ``replayed`` is True when nothing
    was sent because an earlier send under the same idempotency key already reached every
    recipient (the receipt is that send's).
    """

    vendor: str
    message_ids: tuple[str, ...] = ()
    attempts: int = 1
    refused: tuple[str, ...] = ()
    replayed: bool = False


def merge_refused(*groups: tuple[str, ...]) -> tuple[str, ...]:
    """The recipients of every group, each once, in the order first seen."""
    return tuple(dict.fromkeys(r for group in groups for r in group))


def with_refused(
    receipt: Receipt | None, refused: tuple[str, ...], sender: object
) -> Receipt | None:
    """``receipt`` also naming ``refused`` (recipients an earlier attempt refused for good).

    A sender that returned None still gets a receipt when someone was refused, so that the
    refusal is reported.
    """
    if not refused:
        return receipt
    if receipt is None:
        return Receipt(vendor=vendor_name(sender), refused=refused)
    return Receipt(
        vendor=receipt.vendor,
        message_ids=receipt.message_ids,
        attempts=receipt.attempts,
        refused=merge_refused(refused, receipt.refused),
    )


@runtime_checkable
class Sender(Protocol[T_contra]):
    """Sends ``args`` for the business purpose ``biz`` to every recipient in ``to``.

    Failure is an exception (see :mod:`gocomm.errors`); the caller's deadline is an
    ``asyncio.timeout`` around the call.
    """

    async def send(self, biz: str, args: T_contra, *to: str) -> Receipt | None: ...


async def aclose_all(*resources: object) -> None:
    """Close every resource that has ``aclose()``, each once, even when one of them fails."""
    errors: list[Exception] = []
    for resource in resources:
        aclose = getattr(resource, "aclose", None)
        if aclose is None:
            continue
        try:
            await aclose()
        except Exception as exc:  # close the others, then report
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ExceptionGroup("several resources failed to close", errors)


class AsyncCloseable:
    """Async context manager with an idempotent ``aclose()``.

    Subclasses override :meth:`_aclose` to release what they own; it runs at most once.
    """

    _closed: bool = False

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._aclose()

    async def _aclose(self) -> None:
        return None

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def vendor_name(sender: Any) -> str:
    """A short name for a sender, for log lines: its ``name`` or ``vendor`` or its class."""
    for attr in ("name", "vendor"):
        value = getattr(sender, attr, None)
        if isinstance(value, str):
            return value
    return type(sender).__name__


#: A send with the recipients as one tuple: ``send_to(biz, args, to)``.
SendTo = Callable[[str, Any, tuple[str, ...]], Coroutine[Any, Any, "Receipt | None"]]


class Stage(AsyncCloseable, Generic[T]):
    """A strategy that wraps senders (retry, failover, a limit...).

    Its work is in :meth:`send_to`, which takes the recipients as one tuple: stages call each
    other there (see :func:`send_to_of`), so that ``to`` is not unpacked and packed again at
    every layer. :meth:`send` is the public protocol and only hands over to it: the coroutine it
    returns is ``send_to``'s, and nothing runs before it is awaited.
    """

    def send(self, biz: str, args: T, *to: str) -> Coroutine[Any, Any, Receipt | None]:
        return self.send_to(biz, args, to)

    def send_to(
        self, biz: str, args: T, to: tuple[str, ...]
    ) -> Coroutine[Any, Any, Receipt | None]:
        raise NotImplementedError


def send_to_of(sender: Sender[Any]) -> SendTo:
    """How a stage calls ``sender`` with the recipients as one tuple: ``sender.send_to`` when it
    is a :class:`Stage` that sends through it, else through ``sender.send(biz, args, *to)`` (a
    vendor, or a stage whose subclass overrides ``send``)."""
    if isinstance(sender, Stage) and type(sender).send is Stage.send:
        return sender.send_to
    return lambda biz, args, to: sender.send(biz, args, *to)
