"""HTML forms of the pages for people (the card-update page, the staff console).

Read here from the raw body rather than through FastAPI's ``Form`` (which needs
python-multipart): these pages post ``application/x-www-form-urlencoded`` only, and a
body that is not UTF-8 is answered, not guessed at.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import Request

LOCALES = ("ja", "en")


def read_form(body: bytes) -> dict[str, str] | None:
    """The form's fields (the first value of each), or None when it is not UTF-8.

    Browsers send the form in the page's charset, UTF-8; anything else (raw or
    percent-encoded) is not a form this page wrote, and is answered with a 400.
    """
    try:
        fields = parse_qs(body.decode("utf-8"), errors="strict")
    except UnicodeDecodeError:
        return None
    return {k: v[0] for k, v in fields.items()}


def preferred_locale(request: Request) -> str:
    """The page's language the browser prefers (``Accept-Language``); English otherwise."""
    best, best_q = "en", 0.0
    for part in request.headers.get("accept-language", "").split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        language = tag.strip().lower().split("-", 1)[0]
        try:
            q = float(params.strip().removeprefix("q=")) if params.strip().startswith("q=") else 1
        except ValueError:
            continue
        if language in LOCALES and q > best_q:
            best, best_q = language, q
    return best
