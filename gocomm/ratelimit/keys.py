"""Rate limit keys from templates: ``"sms:{to}"`` (one key per recipient) or ``"{biz}"``."""

from __future__ import annotations

import string
from typing import Any

__all__ = ["KEY_FIELDS", "KeyTemplate", "check_key_template", "key_function"]

#: The fields a key template may use.
KEY_FIELDS = ("to", "biz")


def check_key_template(template: str) -> str:
    """``template`` if it uses ``{to}`` and ``{biz}`` and nothing else; else ``ValueError``."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        raise ValueError("is not a valid template (an unmatched brace?)") from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in KEY_FIELDS or spec or conversion:
            raise ValueError("may use only the fields {to} and {biz}, without format specs")
    return template




class KeyTemplate:
    """A rate limit key callable ``(biz, args, to)`` from a template with ``{to}`` and ``{biz}``.

    With ``{to}`` it gives one key per recipient (a recipient named twice spends one unit of
    quota); without, one key per send.
    """

    def __init__(self, template: str) -> None:
        self.template = check_key_template(template)
        self.per_recipient = "{to}" in template

    def __call__(self, biz: str, args: Any, to: tuple[str, ...]) -> str | list[str]:
        if not self.per_recipient:
            return self.template.format_map({"biz": biz})
        return [self.template.format_map({"biz": biz, "to": r}) for r in dict.fromkeys(to)]

    def __repr__(self) -> str:
        return f"KeyTemplate({self.template!r})"


def key_function(template: str) -> KeyTemplate:
    """The rate limit key callable for ``template`` (see :class:`KeyTemplate`)."""
    return KeyTemplate(template)
