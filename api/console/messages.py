"""The console's words in Japanese and English: templates and pages say ``t("key")``.

One catalog rather than a template per language: the pages' markup is written once, and
a key missing from one language fails the catalog test instead of showing a blank.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from api.console.words import (
    account,
    admin,
    alerts,
    catalog,
    customers,
    dashboard,
    invoices,
    subscriptions,
    webhooks,
)

# One module of words per part of the console (api/console/words/), so each part's
# words sit beside nothing else's; a key defined twice is a mistake caught at import.
SECTIONS = (
    account,
    dashboard,
    customers,
    invoices,
    subscriptions,
    catalog,
    admin,
    alerts,
    webhooks,
)


def _merged(language: str) -> dict[str, str]:
    catalog: dict[str, str] = {}
    for section in SECTIONS:
        words = section.WORDS[language]
        twice = catalog.keys() & words.keys()
        if twice:
            raise ValueError(f"console words defined twice: {sorted(twice)}")
        catalog |= words
    return catalog


MESSAGES: dict[str, dict[str, str]] = {language: _merged(language) for language in ("en", "ja")}


def translator(locale: str) -> Callable[..., str]:
    """``t(key, **params)`` in ``locale`` (English for any other)."""
    catalog = MESSAGES.get(locale, MESSAGES["en"])

    def t(key: str, **params: Any) -> str:
        return catalog[key].format(**params) if params else catalog[key]

    return t
