"""A catalog form read into the HTTP API's request body, and its refusals as errors
beside the fields they are about.

Nothing here decides what is valid: the form's text goes through the request models of
``api/requests/catalog.py`` (as a JSON body does), then through ``kakin.services.catalog``.
A number field's text becomes an ``int`` only when it is written as a whole number
(digits, a sign, thousands commas: ``3,980``); anything else ("12.5", "abc") reaches the
model as text, and its strict ``Amount`` refuses it exactly as it refuses it from JSON.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
Errors = dict[str, str]  # a form field's name -> what is wrong with it, in the reader's words
Translate = Callable[..., str]
FORM = ""  # the key of an error about the form as a whole (shown above it)

_WHOLE = re.compile(r"[+-]?(\d+|\d{1,3}(,\d{3})+)")

# pydantic's error types -> the console's sentence for each (words "form.<kind>").
_KINDS = {
    "int_type": "whole",
    "int_parsing": "whole",
    "int_from_float": "whole",
    "greater_than_equal": "at_least",
    "greater_than": "above",
    "less_than_equal": "at_most",
    "missing": "required",
    "string_too_short": "required",
    "too_short": "required",
    "string_too_long": "too_long",
    "too_long": "too_many",
    "string_pattern_mismatch": "pattern",
    "literal_error": "choice",
    "datetime_type": "moment",
    "datetime_parsing": "moment",
    "datetime_from_date_parsing": "moment",
    "timezone_aware": "moment",
}


class FormRefused(Exception):
    """The form again, with these errors: nothing was stored."""

    def __init__(self, errors: Errors) -> None:
        super().__init__(errors)
        self.errors = errors


def number(text: str | None) -> int | str | None:
    """A whole number as ``int``; blank as None; any other text as it is (the model says
    what is wrong with it)."""
    text = (text or "").strip()
    if not text:
        return None
    return int(text.replace(",", "")) if _WHOLE.fullmatch(text) else text


def text_or_none(text: str | None) -> str | None:
    text = (text or "").strip()
    return text or None


def checked(form: Mapping[str, str], name: str) -> bool:
    return form.get(name) == "on"


def body_of(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The fields given (None: left blank, so the model's default applies)."""
    return {name: value for name, value in fields.items() if value is not None}


def _readable(value: Any) -> Any:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value


def message(error: Mapping[str, Any], t: Translate) -> str:
    """One of pydantic's errors in the reader's language; a validator's own sentence (an
    unknown currency, a bad decimal) as the rule that refused it wrote it."""
    context = error.get("ctx") or {}
    kind = _KINDS.get(error["type"])
    if kind is not None:
        return t(f"form.{kind}", **{k: _readable(v) for k, v in context.items()})
    if error["type"] == "value_error" and "error" in context:
        return str(context["error"])
    return str(error["msg"])


def validated(
    model: type[M],
    body: Mapping[str, Any],
    t: Translate,
    *,
    field_of: Callable[[tuple[Any, ...]], str] = lambda loc: str(loc[0]) if loc else FORM,
) -> M:
    """``body`` as ``model`` (the API's request), or ``FormRefused`` with the first error
    of each field (``field_of`` names the form field of an error's ``loc``)."""
    try:
        return model.model_validate(dict(body))
    except ValidationError as refused:
        errors: Errors = {}
        for error in refused.errors():
            errors.setdefault(field_of(tuple(error["loc"])), message(error, t))
        raise FormRefused(errors) from None


def field_named(sentence: str, fields: Iterable[str], aliases: Mapping[str, str]) -> str:
    """The form field a service's refusal is about: the first field the sentence names,
    else the first alias (such as "tier" for the tier table), else the form as a whole."""
    for words in ({name: name for name in fields}, aliases):
        best, at = FORM, len(sentence) + 1
        for word, field in words.items():
            found = re.search(rf"\b{re.escape(word)}s?\b", sentence)
            if found and found.start() < at:
                best, at = field, found.start()
        if best != FORM:
            return best
    return FORM
