"""Write the Subject and address headers so that they decode back exactly (SMTP and raw MIME).

On Python 3.11 and 3.12 the standard library's header folder drops the space between an
encoded word and the ASCII word after it when a line folds there ("naïve café" decodes as
"naïvecafé"; fixed in 3.13). So text that needs encoding is written here, not by the folder:
the whole text goes into RFC 2047 encoded words (UTF-8, base64), split between characters.
Whitespace between two encoded words is ignored by every decoder, so the words can be folded
anywhere and every space, being inside a word, survives. Plain ASCII text is kept readable
and folded only at a space (unfolding gives that space back).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from email.headerregistry import Address

from gocomm.errors import InvalidMessage

__all__ = ["address_header", "text_header"]

LINE_LENGTH = 78  # RFC 5322's recommended line limit (the policy's max_line_length)
_WORD_BYTES = 45  # 60 base64 characters: '=?utf-8?b?' + 60 + '?=' = 72 <= 75 (RFC 2047)
_WORD_OVERHEAD = len("=?utf-8?b??=")
_FOLD = "\r\n "
#: The longest non-ASCII display name, in UTF-8 bytes (its encoded word stays within a line).
MAX_NAME_BYTES = 600
_LONGEST_PLAIN_WORD = 900  # a longer ASCII word is encoded (and split) to stay within 998


def _encoded_words(text: str, first_room: int) -> list[str]:
    """``text`` as encoded words of at most ``_WORD_BYTES`` UTF-8 bytes, whole characters each;
    the first one fits in ``first_room`` characters (what is left of the header's first line)."""
    words: list[str] = []
    chunk = bytearray()
    # At least 4 bytes (any one character), even if that overflows a very long header name.
    limit = max(4, min(_WORD_BYTES, (first_room - _WORD_OVERHEAD) // 4 * 3))
    for char in text:
        data = char.encode("utf-8")
        if len(chunk) + len(data) > limit:
            limit = _WORD_BYTES
            words.append(_encoded_word(bytes(chunk)))
            chunk.clear()
        chunk += data
    if chunk:
        words.append(_encoded_word(bytes(chunk)))
    return words


def _encoded_word(data: bytes) -> str:
    return f"=?utf-8?b?{base64.b64encode(data).decode('ascii')}?="


def _plain(text: str) -> bool:
    """Whether ``text`` can be written as it is: printable ASCII, nothing a reader would decode
    or unfold differently (no '=?', no leading, trailing or repeated whitespace)."""
    return (
        all(" " <= c <= "~" for c in text)
        and "=?" not in text
        and text == text.strip()
        and "  " not in text
    )


def _fold(name: str, tokens: Sequence[str], separators: Sequence[str]) -> str:
    """``name: tokens`` with each token after the first preceded by its separator (a space, or
    ``,`` + space), breaking a line before a token rather than exceeding the line length."""
    lines: list[str] = []
    line = f"{name}:"
    for i, token in enumerate(tokens):
        sep = separators[i - 1] if i else ""
        glue = sep.rstrip(" ")  # a comma stays on the line it ends
        if i and len(line) + len(sep) + len(token) + 1 > LINE_LENGTH:
            lines.append(line + glue)
            line = token
        else:
            line = f"{line}{sep if i else ' '}{token}"
    lines.append(line)
    return _FOLD.join(lines)[len(name) + 2 :]


def text_header(name: str, text: str) -> str:
    """The folded value of an unstructured header (Subject) holding ``text``, exactly.

    Plain ASCII folds at spaces only; a word longer than a line (a URL) stays whole, within
    the 998-octet limit, so a reader sees it as it was given.
    """
    if _plain(text) and all(len(w) <= _LONGEST_PLAIN_WORD for w in text.split(" ")):
        words = text.split(" ")
        return _fold(name, words, [" "] * len(words))
    if not text:
        return ""
    words = _encoded_words(text, LINE_LENGTH - len(name) - 2)
    return _fold(name, words, [" "] * len(words))


def address_header(name: str, addresses: Iterable[Address]) -> str:
    """The folded value of an address header (From, To, Cc, Reply-To).

    A plain ASCII display name is written by ``Address``, which quotes it where needed. Any
    other becomes ONE encoded word, even past RFC 2047's 75 characters: in a phrase, Python's
    parser keeps the space between two encoded words that RFC 2047 says to drop, so a name
    split into several words would decode differently in different readers. Lines fold only
    between an address's name and ``<address>`` and after commas.
    """
    tokens: list[str] = []
    separators: list[str] = []
    for address in addresses:
        bare = f"{address.username}@{address.domain}"
        name_text = address.display_name
        if not name_text:
            parts = [bare]
        elif _plain(name_text):
            parts = [str(address)]
        else:
            data = name_text.encode("utf-8")
            if len(data) > MAX_NAME_BYTES:  # one encoded word must fit in a 998-octet line
                raise InvalidMessage(
                    f"{name}: the display name of {bare} is {len(data)} bytes in UTF-8; "
                    f"shorten it to at most {MAX_NAME_BYTES}"
                )
            parts = [_encoded_word(data), f"<{bare}>"]
        if tokens:
            separators.append(", ")
        separators.extend(" " for _ in parts[1:])
        tokens.extend(parts)
    return _fold(name, tokens, separators)
