"""Card numbers (PANs) are refused wherever they appear in a request, and never echoed.

kakin takes a card number in one place only: the test-mode ``card_number`` field of
``POST /v1/customers`` (a Stripe test card, sent to Stripe and never stored). Anywhere
else (a name, a reason, metadata, usage properties, a path or a query) a number that
looks like a card is refused before any endpoint sees it, so it reaches no table, no
idempotency record, no workflow payload and no log line. The refusal names the field,
never the value.

"Looks like a card": a maximal run of 13 to 19 digits, single spaces or dashes allowed
between them, that passes the Luhn check and stands on its own (not glued to a letter
or an underscore: ``cus_3f9c1234567890123`` is an id, not a card). Integers in JSON
count as runs too. Identifier fields (``id``, ``*_id``, ``starting_after``) are not
scanned: about one random id in a thousand holds a Luhn-valid run, and clients'
event ids are often 13-digit epoch milliseconds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

MIN_DIGITS = 13
MAX_DIGITS = 19
MAX_DEPTH = 32  # JSON nesting kakin's bodies never come near

# A maximal run: no digit (or digit + one separator) right before or after it.
_RUN = re.compile(r"(?<![0-9A-Za-z_])(?<![0-9][ -])[0-9](?:[ -]?[0-9])*(?![ -]?[0-9])(?![A-Za-z_])")
_SEPARATORS = str.maketrans("", "", " -")

# The one place a card number is accepted: (method, path, top-level field).
ALLOWED = frozenset({("POST", "/v1/customers", "card_number")})

MESSAGE = (
    "{where} looks like a card number; kakin never takes card numbers except in the "
    "test-mode card_number field of POST /v1/customers (a Stripe test card)"
)


# The cheap look at a raw body before any parsing (``plainly_clean``). A card in a parsed
# value is a run of 13+ digits; the same digits stand in the raw bytes, unless a \u
# escape spells them (or a NUL), or, in a form body, %-escapes or "+" (a space) join
# them, or the body is JSON in UTF-16 or UTF-32 (which has NUL bytes). So with no \u,
# no % and no NUL byte, a card needs 13 bytes in a row of digits, " ", "+" and "-"
# somewhere in the raw body; without them there is nothing to find.
_RUN_BYTES = bytes(ord("1") if byte in b"0123456789 +-" else ord(".") for byte in range(256))
_RUN_SPAN = b"1" * MIN_DIGITS
_JSON_SPACE = b" \t\r\n"
# A JSON string (or an unterminated one, to the end): its brackets are not nesting.
_RAW_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")


class TooDeepError(ValueError):
    """The JSON nests deeper than ``MAX_DEPTH``."""


def luhn(digits: str) -> bool:
    """True when ``digits`` (digits only) passes the Luhn check."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card_numbers(text: str) -> Iterator[re.Match[str]]:
    for match in _RUN.finditer(text):
        digits = match.group().translate(_SEPARATORS)
        if MIN_DIGITS <= len(digits) <= MAX_DIGITS and luhn(digits):
            yield match


def has_card_number(text: str) -> bool:
    """True when ``text`` holds something that looks like a card number."""
    return next(_card_numbers(text), None) is not None


def redact(text: str) -> str:
    """``text`` with every card-like number replaced, for logs."""
    if not any(char.isdigit() for char in text):
        return text
    return _RUN.sub(lambda m: "[card number]" if has_card_number(m.group()) else m.group(), text)


def scalars(value: Any) -> Iterator[tuple[tuple[str, ...], str | int]]:
    """Every key, string and integer in a parsed JSON body, with where it is.

    A key is reported at the place of its object (``metadata``), never by its own text.
    Iterative, so a hostile body cannot exhaust the stack; raises ``TooDeepError``
    past ``MAX_DEPTH`` levels.
    """
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while stack:
        item, where = stack.pop()
        if len(where) > MAX_DEPTH:
            raise TooDeepError(f"the body nests more than {MAX_DEPTH} levels deep")
        if isinstance(item, dict):
            for key, child in item.items():
                yield (*where, "a field name"), str(key)
                stack.append((child, (*where, str(key))))
        elif isinstance(item, list):
            stack.extend((child, (*where, str(index))) for index, child in enumerate(item))
        elif isinstance(item, str | int) and not isinstance(item, bool):
            yield where, item


def plainly_clean(body: bytes) -> bool:
    """True when a raw body can hold no card number, NUL or deep nesting, unparsed.

    A fast path for large bodies (a batch of usage events): when it says True, the
    full scan (``find_in_json`` on the parsed JSON, or the text of a body that is not
    JSON) would have found nothing; when it says False, the full scan decides. It is
    conservative: a ``\\u`` escape, a ``%``, 13 digits in a row (separators allowed)
    anywhere but in the plain string value of an identifier field, or nesting past
    ``MAX_DEPTH`` send the body to the full scan.
    """
    if b"\\u" in body or b"%" in body or b"\x00" in body:  # NUL: UTF-16 or 32 JSON
        return False
    marks = body.translate(_RUN_BYTES)
    at = marks.find(_RUN_SPAN)
    cardlike_ids = False
    while at >= 0:
        # Identifiers are not scanned (random ids, epoch-millisecond event ids): a span
        # in the plain string value of one is no card, in valid JSON.
        start, end = _identifier_value(body, at)
        if end < 0:
            return False
        value = body[start + 1 : end]
        cardlike_ids = cardlike_ids or _has_card_bytes(value)
        at = marks.find(_RUN_SPAN, end)
    if cardlike_ids:
        # An id that looks like a card passes only in JSON: a body that is not JSON is
        # scanned as text, ids and all. (Other spans hold no card either way.)
        try:
            json.loads(body)
        except (ValueError, RecursionError):
            return False
    return _nests_at_most(body, MAX_DEPTH)


def _has_card_bytes(value: bytes) -> bool:
    """``has_card_number`` of an ASCII-compatible value, as text and as a form value."""
    text = value.decode("utf-8", "replace")
    return has_card_number(text) or has_card_number(text.replace("+", " "))


def _identifier_value(body: bytes, at: int) -> tuple[int, int]:
    """The quotes around the identifier's plain string value holding byte ``at``, or -1s.

    Without ``\\u`` escapes, a value or key with any other escape is not looked into.
    In valid JSON quotes then pair up, so the quote before ``at`` opens a value when a
    colon and, before it, an identifier key stand right before it.
    """
    start = body.rfind(b'"', 0, at)
    end = body.find(b'"', at)
    if start < 0 or end < 0 or b"\\" in body[start:end]:
        return -1, -1
    colon = _skip_space_back(body, start - 1)
    if colon < 0 or body[colon] != ord(":"):
        return -1, -1
    key_end = _skip_space_back(body, colon - 1)
    if key_end < 0 or body[key_end] != ord('"'):
        return -1, -1
    key_start = body.rfind(b'"', 0, key_end)
    key = body[key_start + 1 : key_end]
    if key_start < 0 or b"\\" in key:
        return -1, -1
    if key in (b"id", b"starting_after") or key.endswith(b"_id"):
        return start, end
    return -1, -1


def _skip_space_back(body: bytes, index: int) -> int:
    while index >= 0 and body[index] in _JSON_SPACE:
        index -= 1
    return index


def _nests_at_most(body: bytes, limit: int) -> bool:
    """Whether the brackets outside strings nest at most ``limit`` deep (JSON or not)."""
    # Without escapes quotes alternate: every other piece is outside the strings.
    plain = b"\\" not in body
    outside = b"".join(body.split(b'"')[0::2]) if plain else _RAW_STRING.sub(b"", body)
    brackets = outside.translate(None, _NOT_BRACKETS)
    # Each replace takes away at most one level (it does not look again at what it
    # joined): emptied within ``limit`` of them, the brackets nest at most that deep.
    left = brackets
    for _ in range(limit // 2):
        left = left.replace(b"{}", b"").replace(b"[]", b"")
        if not left:
            return True
    depth = 0
    for byte in brackets:  # deep, or unbalanced (not JSON): count them all
        if byte in b"[{":
            depth += 1
            if depth > limit:
                return False
        else:
            depth -= 1
    return True


def find_in_json(value: Any, *, method: str = "", path: str = "") -> str | None:
    """Where in a parsed JSON body a card number is (``metadata.note``), or None.

    Keys are checked as well as values; a key that is itself card-like is named
    ``a field name``. Raises ``TooDeepError`` past ``MAX_DEPTH`` levels.
    """
    allowed = {(field,) for m, p, field in ALLOWED if (m, p) == (method, path)}
    for where, item in scalars(value):
        if where in allowed or _is_identifier(where):
            continue
        text = item if isinstance(item, str) else str(abs(item))
        if has_card_number(text):
            return _place(where)
    return None


def _is_identifier(where: tuple[str, ...]) -> bool:
    name = where[-1] if where else ""
    return name in ("id", "starting_after") or name.endswith("_id")


def _place(where: tuple[str, ...]) -> str:
    return ".".join(where) if where else "The request body"


def refusal(where: str) -> str:
    """The 422 message for a card number found at ``where`` (never the value)."""
    return MESSAGE.format(where=where)
