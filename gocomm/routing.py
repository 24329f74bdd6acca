"""Routing by destination, and spreading sends over vendors by weight.

* :class:`RoutingSender` sends each recipient through the :class:`Route` with the longest
  matching E.164 prefix (``"+86"``, ``"+1"``, ``"+44"``...), else through ``default``; a send
  with recipients of several routes is split, sent concurrently and combined.
* :class:`WeightedFailoverSender` picks the first vendor of each send by smooth weighted round
  robin (nginx's: the spread is exact over any ``sum(weights)`` consecutive sends, and the
  vendors interleave), then fails over in ring order like :class:`~gocomm.failover.FailoverSender`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from gocomm.errors import (
    AllSendersFailed,
    ConfigError,
    InvalidRecipient,
    is_retryable,
    narrow_unsent,
    refused_of,
    unsent_of,
)
from gocomm.failover import FailoverSender
from gocomm.sender import AsyncCloseable, Receipt, Sender, aclose_all, merge_refused, vendor_name

__all__ = ["Route", "RoutingSender", "WeightedFailoverSender"]

T = TypeVar("T")

_PREFIX = re.compile(r"\+[0-9]+")


def check_prefix(prefix: object, where: str = "prefix") -> str:
    """``prefix`` if it is ``+`` and digits (an E.164 country or area prefix)."""
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise ConfigError(
            f"{where} must be '+' followed by digits (an E.164 prefix such as '+86'), "
            f"got {prefix!r}"
        )
    return prefix


@dataclass(frozen=True)
class Route(Generic[T]):
    """The recipients whose number starts with one of ``prefixes`` go through ``sender``."""

    prefixes: tuple[str, ...]
    sender: Sender[T]

    def __post_init__(self) -> None:
        prefixes: object = self.prefixes
        if isinstance(prefixes, str) or not isinstance(prefixes, Sequence):
            raise ConfigError(f"Route prefixes must be a sequence of strings, got {prefixes!r}")
        if not prefixes:
            raise ConfigError("a Route needs at least one prefix, e.g. ('+86',)")
        for index, prefix in enumerate(prefixes):
            check_prefix(prefix, f"prefixes[{index}]")
        object.__setattr__(self, "prefixes", tuple(prefixes))
        if not callable(getattr(self.sender, "send", None)):
            raise ConfigError(f"a Route's sender needs an async send(), got {self.sender!r}")


class RoutingSender(AsyncCloseable, Generic[T]):
    """Sends each recipient through the route of its longest matching prefix, else ``default``.

    A recipient no route and no default takes is an :class:`~gocomm.errors.InvalidRecipient`
    naming it, raised before anything is sent. Recipients of several routes are sent
    concurrently, one call per route. All succeed: one receipt (vendors joined by ``+``, every
    message id, every refused recipient). Some fail: the one error (or an
    :class:`~gocomm.errors.AllSendersFailed` of several) whose ``unsent`` is the union of what
    the failed routes still owe and whose ``refused`` is the union of every route's refused,
    the routes that succeeded included. Closing it closes every route's sender and ``default``.
    """

    def __init__(
        self,
        routes: Sequence[Route[T]],
        *,
        default: Sender[T] | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        checked: object = routes
        if isinstance(checked, str) or not isinstance(checked, Sequence):
            raise ConfigError(f"RoutingSender takes a sequence of Route, got {routes!r}")
        self.routes: tuple[Route[T], ...] = tuple(routes)
        if not self.routes and default is None:
            raise ConfigError("RoutingSender needs at least one route or a default")
        if default is not None and not callable(getattr(default, "send", None)):
            raise ConfigError(f"RoutingSender's default needs an async send(), got {default!r}")
        self.default = default
        self._logger = logger if logger is not None else logging.getLogger("gocomm.routing")
        self._by_prefix: dict[str, int] = {}
        for index, route in enumerate(self.routes):
            if not isinstance(route, Route):
                raise ConfigError(f"routes[{index}] must be a Route, got {route!r}")
            for prefix in route.prefixes:
                other = self._by_prefix.setdefault(prefix, index)
                if other != index:
                    raise ConfigError(
                        f"routes[{index}].prefixes: {prefix!r} is already the prefix of "
                        f"routes[{other}]; each prefix may belong to one route only"
                    )
        self._lengths = sorted({len(p) for p in self._by_prefix}, reverse=True)

    def __repr__(self) -> str:
        routes = ", ".join(f"{'/'.join(r.prefixes)}: {r.sender!r}" for r in self.routes)
        return f"RoutingSender([{routes}], default={self.default!r})"

    def route_of(self, recipient: str) -> Sender[T]:
        """The sender ``recipient`` goes through; :class:`InvalidRecipient` when none."""
        by_prefix = self._by_prefix
        for length in self._lengths:
            index = by_prefix.get(recipient[:length])
            if index is not None:
                return self.routes[index].sender
        if self.default is None:
            known = ", ".join(sorted(by_prefix))
            raise InvalidRecipient(
                f"no route for {recipient!r}: it matches none of the prefixes {known} and "
                "there is no default route; add a route for it or default vendors"
            )
        return self.default

    async def send(self, biz: str, args: T, *to: str) -> Receipt | None:
        groups: dict[int, tuple[Sender[T], list[str]]] = {}
        for recipient in to:
            sender = self.route_of(recipient)
            group = groups.get(id(sender))
            if group is None:
                groups[id(sender)] = (sender, [recipient])
            else:
                group[1].append(recipient)
        if len(groups) <= 1:
            sender = next(iter(groups.values()))[0] if groups else self._any()
            return await sender.send(biz, args, *to)
        parts = [(sender, tuple(group)) for sender, group in groups.values()]
        outcomes = await asyncio.gather(
            *(sender.send(biz, args, *group) for sender, group in parts), return_exceptions=True
        )
        return self._combine(to, parts, outcomes)

    def _any(self) -> Sender[T]:
        return self.default if self.default is not None else self.routes[0].sender

    def _combine(
        self,
        to: tuple[str, ...],
        parts: list[tuple[Sender[T], tuple[str, ...]]],
        outcomes: list[Receipt | BaseException | None],
    ) -> Receipt | None:
        receipts: list[Receipt] = []
        errors: list[tuple[Exception, tuple[str, ...]]] = []
        refused: tuple[str, ...] = ()
        for (sender, group), outcome in zip(parts, outcomes, strict=True):
            if isinstance(outcome, Exception):
                errors.append((outcome, group))
                refused = merge_refused(refused, refused_of(outcome))
            elif isinstance(outcome, BaseException):
                raise outcome  # a route cancelled on its own: cancellation always propagates
            elif outcome is not None:
                receipts.append(outcome)
                refused = merge_refused(refused, outcome.refused)
            else:
                receipts.append(Receipt(vendor=vendor_name(sender)))
        if not errors:
            return Receipt(
                vendor="+".join(dict.fromkeys(r.vendor for r in receipts)),
                message_ids=tuple(m for r in receipts for m in r.message_ids),
                attempts=max(r.attempts for r in receipts),
                refused=refused,
            )
        owing = {r for error, group in errors for r in unsent_of(error, group)}
        owed = tuple(r for r in to if r in owing)
        if len(errors) == 1:
            error = errors[0][0]
            narrow_unsent(error, owed, to, refused)  # owed != to: some routes succeeded
            raise error
        self._logger.warning(
            "%d of %d routes failed: %s",
            len(errors),
            len(parts),
            "; ".join(f"{type(e).__name__}: {e}" for e, _ in errors),
        )
        retryable = any(is_retryable(error) for error, _ in errors)
        raise AllSendersFailed(
            f"{len(errors)} of {len(parts)} routes failed"
            + ("; the retryable ones may be sent again" if retryable else ""),
            [error for error, _ in errors],
            unsent=owed,
            refused=refused,
        )

    async def _aclose(self) -> None:
        await aclose_all(*(route.sender for route in self.routes), self.default)


def _check_weights(weights: object, count: int) -> tuple[float, ...]:
    if isinstance(weights, str) or not isinstance(weights, Sequence):
        raise ConfigError(f"weights must be a sequence of numbers, got {weights!r}")
    if len(weights) != count:
        raise ConfigError(
            f"weights has {len(weights)} numbers for {count} vendors; give one weight per vendor"
        )
    for index, weight in enumerate(weights):
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not 0 < weight < float("inf")
        ):
            raise ConfigError(f"weights[{index}] must be a positive number, got {weight!r}")
    return tuple(float(weight) for weight in weights)


class WeightedFailoverSender(FailoverSender[T]):
    """Starts each send at a vendor picked by smooth weighted round robin over ``weights``
    (one positive number per vendor), then fails over in ring order from there.

    Over ``sum(weights)`` consecutive sends (integer weights) each vendor starts exactly its
    weight's share, interleaved rather than in runs. Safe under concurrent asyncio tasks: the
    pick happens between two awaits.
    """

    def __init__(
        self,
        senders: Sequence[Sender[Any]],
        weights: Sequence[float],
        *,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(senders, logger=logger)
        self.weights: tuple[float, ...] = _check_weights(weights, len(self.senders))
        self._total = sum(self.weights)
        self._current = [0.0] * len(self.weights)

    def pick(self) -> int:
        """The index of the vendor the next send starts with."""
        current = self._current
        best = 0
        for index, weight in enumerate(self.weights):
            current[index] += weight
            if current[index] > current[best]:
                best = index
        current[best] -= self._total
        return best

    async def send_to(self, biz: str, args: T, to: tuple[str, ...]) -> Receipt | None:
        start = self.pick()
        try:
            return await self.senders[start].send(biz, args, *to)
        except Exception as exc:
            first_error = exc
        return await self._fail_over(biz, args, to, start, first_error)

    def __repr__(self) -> str:
        return f"WeightedFailoverSender({list(self.senders)!r}, weights={list(self.weights)!r})"
