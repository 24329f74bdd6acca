"""The one protocol every vendor and strategy implements, and what a send returns."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

__all__ = ["AsyncCloseable", "Receipt", "Sender", "aclose_all", "merge_refused", "with_refused"]

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
