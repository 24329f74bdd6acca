"""Twilio body templates: text with ``{name}`` fields filled from ``args``.

Twilio sends a body, not a template id, so the ``twilio`` vendor's ``templates`` map each logical
``biz`` to a text such as ``"Your code is {code}"``. The text is parsed once with
:class:`string.Formatter` and only plain names are allowed as fields: no positional fields
(``{}``, ``{0}``), no attribute or index access (``{a.b}``, ``{a[0]}``), no conversions
(``{a!r}``) and no format specs (``{a:>8}``). Rendering then only concatenates the literal text
and the ``args`` values, so a template can never reach into Python objects the way
``str.format`` would. ``{{`` and ``}}`` stand for literal braces.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass

from gocomm.errors import InvalidMessage

__all__ = ["MAX_BODY_CHARS", "BodyTemplate"]

#: Twilio refuses a body longer than this (error 21617); checked before sending.
MAX_BODY_CHARS = 1600

_FORMATTER = string.Formatter()


@dataclass(frozen=True, slots=True)
class BodyTemplate:
    """A parsed body text: ``parts`` alternate literal text and field names (None: no field)."""

    text: str
    parts: tuple[tuple[str, str | None], ...]

    @classmethod
    def parse(cls, text: str) -> BodyTemplate:
        """Parse ``text``; raises ValueError naming the offending field and how to write it."""
        try:
            parsed = list(_FORMATTER.parse(text))
        except ValueError as exc:
            raise ValueError(f"{exc}; write a literal brace as {{{{ or }}}}") from None
        parts: list[tuple[str, str | None]] = []
        for literal, name, spec, conversion in parsed:
            if name is None:
                parts.append((literal, None))
                continue
            shown = (
                "{"
                + name
                + (f"!{conversion}" if conversion else "")
                + (f":{spec}" if spec else "")
                + "}"
            )
            if not name.isidentifier():
                raise ValueError(
                    f"field {shown} is not a plain name; write fields as {{name}} with a name "
                    "from args (no positions, attributes or indexes)"
                )
            if conversion or spec:
                raise ValueError(
                    f"field {shown} has a conversion or format spec; write it as {{{name}}}"
                )
            parts.append((literal, name))
        if not any(literal or name for literal, name in parts):
            raise ValueError("the body text is empty")
        return cls(text, tuple(parts))

    @property
    def fields(self) -> tuple[str, ...]:
        """The field names, in order of first use."""
        return tuple(dict.fromkeys(name for _, name in self.parts if name is not None))

    def render(self, args: Mapping[str, str], *, biz: str) -> str:
        """The body for ``args``; raises :class:`~gocomm.errors.InvalidMessage` naming every
        field missing from ``args``, or for a body Twilio would refuse (empty, too long).

        Extra ``args`` are ignored, so one ``args`` serves every vendor of a failover list.
        """
        missing = [name for name in self.fields if name not in args]
        if missing:
            raise InvalidMessage(
                f"twilio: template for biz {biz!r} needs field(s) "
                f"{', '.join(map(repr, missing))} missing from args (given: "
                f"{', '.join(map(repr, args)) or 'none'}); pass them in args",
                vendor="twilio",
            )
        body = "".join(literal + (args[name] if name else "") for literal, name in self.parts)
        if not body.strip():
            raise InvalidMessage(
                f"twilio: template for biz {biz!r} renders an empty body; Twilio needs text",
                vendor="twilio",
            )
        if len(body) > MAX_BODY_CHARS:
            raise InvalidMessage(
                f"twilio: the body for biz {biz!r} has {len(body)} characters; Twilio takes at "
                f"most {MAX_BODY_CHARS}: shorten the template or its args",
                vendor="twilio",
            )
        return body
