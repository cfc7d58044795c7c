"""Invoices and emails rendered from the Jinja2 templates in ``templates/``.

No database and no clock: callers hand over plain dataclasses and a context dict, so
the same input always renders the same output, and tests need nothing but files.
Amounts go through ``billing.money.format_amount`` (JPY never shows ``.00``) and dates
are shown in the customer's time zone, while everything stored stays UTC. A period's
end is printed as its inclusive last day in Japanese (``periodend``: 2026年12月31日〜
2027年1月30日) and as the next period's first day in English, as Stripe prints it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from billing.money import format_amount

DEFAULT_TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"

_EN_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Context keys each email kind needs (beyond the common ones) and the optional ones it
# reads; optional keys default to None so templates can test them under StrictUndefined.
_COMMON_KEYS = ("customer_name", "subscription_id", "seller_name")
_COMMON_OPTIONAL = ("time_zone", "invoice", "billing_page_url")
EMAIL_KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "receipt": (("invoice",), ()),
    "payment_failed": (("invoice", "payment_update_url"), ("next_retry_at",)),
    "payment_reminder": (("invoice", "payment_update_url"), ("next_retry_at",)),
    "suspended": (("invoice", "payment_update_url"), ()),
    "final_notice": (("invoice", "payment_update_url"), ("cancel_at",)),
    "canceled_unpaid": (("invoice",), ()),
    "canceled": ((), ("cancel_reason", "ends_at")),
    # Asked for on the billing page ("email me a new link"): the link is the whole message.
    "billing_link": (("billing_page_url",), ()),
    "alert_triggered": (("alert", "billing_page_url"), ()),
}


@dataclass(frozen=True)
class DocumentLine:
    """One invoice line as printed; amounts in the invoice currency's minor unit."""

    description: str
    unit_amount: int
    quantity: int
    amount: int
    period_start: datetime
    period_end: datetime
    # subscription | usage | proration | discount | rounding; usage lines show a decimal
    # quantity, rounding lines print among the totals.
    kind: str = "subscription"
    usage_quantity: str | None = None
    tax_label: str = ""  # "10%", "8%※" (※ marks Japan's reduced rate)
    reduced_rate: bool = False


@dataclass(frozen=True)
class TaxSummary:
    """One tax rate's share of an invoice: what it applied to, and the tax it gave.

    A qualified invoice (適格請求書) must show both per rate; ``taxable`` excludes the
    tax for exclusive rates and includes it for inclusive ones, as the rate is quoted.
    """

    label: str  # "消費税 10%"
    percentage: str
    inclusive: bool
    reduced: bool
    taxable: int
    tax: int


@dataclass(frozen=True)
class InvoiceDocument:
    """Everything an invoice shows, already resolved from the database.

    ``number`` is None for a draft (numbers are assigned at finalization). Datetimes
    are UTC; ``time_zone`` and ``locale`` are the customer's and drive the rendering.
    """

    number: str | None
    status: str
    currency: str
    locale: str
    time_zone: str
    customer_name: str
    customer_email: str
    seller_name: str
    seller_address: str
    seller_registration_number: str
    issued_at: datetime
    period_start: datetime
    period_end: datetime
    lines: list[DocumentLine]
    subtotal: int
    total: int
    amount_paid: int
    amount_due: int
    discount_total: int = 0
    tax_total: int = 0
    credit_applied: int = 0  # negative: a debit carried from an earlier invoice
    taxes: tuple[TaxSummary, ...] = ()
    carried_forward: int = 0  # below Stripe's minimum charge: on the next invoice


@dataclass(frozen=True)
class EmailContent:
    """A rendered email: a one-line subject and the two bodies of multipart/alternative."""

    subject: str
    html: str
    text: str


def language(locale: str) -> str:
    """The template language for a locale: ``ja`` for any Japanese locale, else ``en``."""
    return "ja" if locale.lower().startswith("ja") else "en"


def money(amount: int, currency: str, locale: str) -> str:
    """Jinja filter: ``{{ 12000 | money("JPY", "ja") }}`` -> ``12,000円``."""
    return format_amount(amount, currency, locale=locale)


def _local_day(dt: datetime, time_zone: str) -> date:
    # A naive datetime is UTC: SQLite hands stored UTC values back without a zone.
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(ZoneInfo(time_zone)).date()


def _format_day(day: date, locale: str) -> str:
    if language(locale) == "ja":
        return f"{day.year}年{day.month}月{day.day}日"
    return f"{_EN_MONTHS[day.month - 1]} {day.day}, {day.year}"


def localdate(dt: datetime, time_zone: str = "UTC", locale: str = "en") -> str:
    """Jinja filter: the calendar date of a UTC instant in the customer's time zone.

    ``2024年2月29日`` for Japanese, ``Feb 29, 2024`` otherwise. A naive datetime is
    taken as UTC, because SQLite hands stored UTC values back without a zone.
    """
    return _format_day(_local_day(dt, time_zone), locale)


def last_day(end: datetime, time_zone: str = "UTC", start: datetime | None = None) -> date:
    """The last local day of the half-open period ``[start, end)``, for an inclusive range.

    The day before the local date of ``end``, whatever its time of day. For an end at
    local midnight that is the day ``end - 1 µs`` falls on. For an end at any other time
    (a renewal at 08:00 JST) ``end - 1 µs`` would fall on the end's own day, which is
    also the first day of the next period, printed from that day: the two periods would
    share a day (12/31〜1/31, 1/31〜2/28). The day before instead makes printed periods
    tile the calendar with no day in two (12/31〜1/30, 1/31〜2/27), which is how a
    Japanese accountant reads ご利用期間; the day belongs to the period that begins on
    it. Never before ``start``'s day: a period inside one local day (a proration from
    10:00 to 20:00) is that one day. The same rule holds for an end nothing follows (a
    cancellation at 15:00 prints the day before): one rule for every document, so a
    printed range never depends on what came next; the API keeps the exact instants.
    """
    day = _local_day(end, time_zone) - timedelta(days=1)
    return day if start is None else max(day, _local_day(start, time_zone))


def periodend(
    end: datetime, time_zone: str = "UTC", locale: str = "en", start: datetime | None = None
) -> str:
    """Jinja filter: a period's end as printed after its start, in the customer's language.

    Japanese documents print the inclusive last day (:func:`last_day`): ご利用期間
    2026年12月31日〜2027年1月30日. English ones print the end's own date, half-open as
    Stripe's invoices do: Dec 31, 2026 – Jan 31, 2027. The API keeps the instants.
    """
    if language(locale) == "ja":
        return _format_day(last_day(end, time_zone, start), locale)
    return localdate(end, time_zone, locale)


def localtime(dt: datetime, time_zone: str = "UTC", locale: str = "en") -> str:
    """Jinja filter: the date and the time of day of a UTC instant in ``time_zone``,
    ``2031年1月31日 09:00`` / ``Jan 31, 2031 09:00`` (when a renewal or a retry runs)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    local = dt.astimezone(ZoneInfo(time_zone))
    return f"{_format_day(local.date(), locale)} {local:%H:%M}"


def make_template_env(templates_dir: Path | None = None) -> jinja2.Environment:
    """The Jinja2 environment for invoices and emails.

    HTML templates (``*.html.j2``) are autoescaped, because customer names and
    descriptions come from outside; text and subject templates are not. Undefined
    names raise instead of rendering as blanks, so a missing amount is a bug, not an
    email that says "Amount due: ".
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir or DEFAULT_TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "html.j2"), default_for_string=False
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["money"] = money
    env.filters["localdate"] = localdate
    env.filters["periodend"] = periodend
    env.filters["localtime"] = localtime
    return env


def render_invoice_html(env: jinja2.Environment, doc: InvoiceDocument) -> str:
    """The invoice as a standalone HTML page, labelled in the customer's language."""
    template = env.get_template("invoice.html.j2")
    return template.render(doc=doc, lang=language(doc.locale))


def render_email(
    env: jinja2.Environment, kind: str, locale: str, context: Mapping[str, Any]
) -> EmailContent:
    """Render one email of ``kind`` in the customer's language.

    Args:
        env: from :func:`make_template_env`.
        kind: one of :data:`EMAIL_KINDS`.
        locale: the customer's locale (``ja``, ``ja-JP``, ``en``...).
        context: ``customer_name``, ``subscription_id``, ``seller_name`` always;
            ``time_zone`` (default ``UTC``); ``invoice`` (an :class:`InvoiceDocument`)
            and the kind's own keys, listed in :data:`EMAIL_KINDS`.

    Raises:
        ValueError: for an unknown kind, or when a key the kind needs is missing or None.
    """
    if kind not in EMAIL_KINDS:
        known = ", ".join(sorted(EMAIL_KINDS))
        raise ValueError(f"unknown email kind {kind!r}; known kinds: {known}")
    required, optional = EMAIL_KINDS[kind]
    missing = [key for key in (*_COMMON_KEYS, *required) if context.get(key) is None]
    if missing:
        raise ValueError(f"email {kind!r} needs context keys: {', '.join(missing)}")

    values: dict[str, Any] = dict.fromkeys((*_COMMON_OPTIONAL, *optional))
    values.update(context)
    values["time_zone"] = values["time_zone"] or "UTC"
    values["locale"] = locale
    values["lang"] = lang = language(locale)

    def render(part: str) -> str:
        return env.get_template(f"email/{kind}.{lang}.{part}.j2").render(values)

    # A subject is a header: one line, whatever the template's line breaks.
    subject = " ".join(render("subject").split())
    return EmailContent(subject=subject, html=render("html"), text=render("txt"))
