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
