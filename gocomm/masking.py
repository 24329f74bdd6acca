"""How secrets are shown: masked, wherever a value may reach a log, an error or ``gocomm config``.

A secret field (pydantic's ``SecretStr``) shows as :data:`MASK`; a URL shows with its password
masked (:class:`SecretUrl`, :func:`mask_url`), and so does any string that looks like a URL,
since a third-party vendor's plain ``str`` setting may carry one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, SecretStr

__all__ = ["MASK", "SecretUrl", "mask_url", "mask_value", "unparsed_userinfo"]

MASK = "**********"


class SecretUrl(SecretStr):
    """A URL that may carry a password: shown with the password masked, never in full."""

    def _display(self) -> str:
        return mask_url(self.get_secret_value())


#: Query parameters whose value is a secret: redis-py reads any query parameter as a client
#: option, so ``redis://host/0?password=...`` authenticates as well as ``redis://:...@host``.
_SECRET_QUERY = re.compile(r"pass|secret|token|auth", re.IGNORECASE)


def unparsed_userinfo(url: str) -> bool:
    """Whether ``url`` has an ``@`` after ``://`` that its address part does not hold: a user
    or password with ``/``, ``?`` or ``#`` in it, which ends the address part early (then the
    password reads as a path, a query or a fragment, and its start as a port)."""
    _, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return False
    try:
        return "@" not in urlsplit(url).netloc
    except ValueError:
        return True


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``MASK``: in the netloc (``redis://:****@host``)
    and in the query (``?password=****``). The rest is kept as written (``[::1]`` included).

    Userinfo that does not parse as a whole (``redis://:pa/ss@host``) is masked up to the last
    ``@``: what could not be parsed is never shown."""
    if unparsed_userinfo(url):
        scheme, _, rest = url.partition("://")
        return mask_url(f"{scheme}://{MASK}@{rest.rpartition('@')[2]}")
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL after all ("http://[oops"): nothing in it to find
        return url
    netloc = parts.netloc
    if password is not None:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:{MASK}@{host}"
    query = "&".join(
        f"{name}={MASK}" if equals and _SECRET_QUERY.search(name) else f"{name}{equals}{value}"
        for name, equals, value in (item.partition("=") for item in parts.query.split("&"))
    )
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # nothing masked: keep the text exactly as written
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def mask_value(value: Any) -> Any:
    """``value`` as plain data (mappings, lists, scalars) with every secret in it masked."""
    if isinstance(value, SecretUrl):
        return value._display()
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, Mapping):
        return {key: mask_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(item) for item in value]
    if isinstance(value, BaseModel):
        return mask_value(value.model_dump())
    if isinstance(value, str):
        # Any URL may carry a password, a third-party vendor's plain `str` or `AnyUrl` too.
        return mask_url(value) if "://" in value else value
    if value is None or isinstance(value, int | float | bool):
        return value
    return mask_value(str(value))  # a path, a date, a URL object: as text, that YAML and JSON carry
