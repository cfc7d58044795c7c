"""Invoices and emails as the customer reads them: amounts, dates, language, escaping."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import pytest

from kakin.adapters.rendering import (
    EMAIL_KINDS,
    DocumentLine,
    InvoiceDocument,
    last_day,
    localdate,
    make_template_env,
    money,
    render_email,
    render_invoice_html,
)

ENV: jinja2.Environment = make_template_env()
PAY_URL = "https://pay.example/update?subscription=sub_123"
BILLING_URL = "https://pay.example/billing?subscription=sub_123"
# Emails about no invoice: a cancellation on request, a billing-page link asked for.
NOT_ABOUT_AN_INVOICE = {"canceled", "billing_link"}
FAILURE_KINDS = ("payment_failed", "payment_reminder", "suspended", "final_notice")

# 2024-02-28 15:00 UTC is already Feb 29 in Tokyo: dates must follow the customer's zone.
ISSUED = datetime(2024, 2, 28, 15, 0, tzinfo=UTC)
START = datetime(2024, 2, 28, 15, 0, tzinfo=UTC)
END = datetime(2024, 3, 31, 15, 0, tzinfo=UTC)


def invoice(
    *,
    currency: str = "JPY",
    locale: str = "ja",
    unit: int = 12000,
    quantity: int = 1,
    paid: bool = False,
    number: str | None = "INV-0001",
    registration: str = "T9234567890123",
    customer_name: str = "山田 太郎",
) -> InvoiceDocument:
    total = unit * quantity
    return InvoiceDocument(
        number=number,
        status="paid" if paid else "open",
        currency=currency,
        locale=locale,
        time_zone="Asia/Tokyo",
        customer_name=customer_name,
        customer_email="taro@example.com",
        seller_name="kakin K.K.",
        seller_address="1-1 Chiyoda, Tokyo",
        seller_registration_number=registration,
        issued_at=ISSUED,
        period_start=START,
        period_end=END,
        lines=[DocumentLine("Pro plan", unit, quantity, total, START, END)],
        subtotal=total,
        total=total,
        amount_paid=total if paid else 0,
        amount_due=0 if paid else total,
    )


def email_context(kind: str, doc: InvoiceDocument | None, **extra: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        "customer_name": doc.customer_name if doc else "山田 太郎",
        "subscription_id": "sub_123",
        "seller_name": "kakin K.K.",
        "time_zone": "Asia/Tokyo",
        "invoice": doc,
        "payment_update_url": PAY_URL,
        "billing_page_url": BILLING_URL,
    }
    if kind == "alert_triggered" and doc is not None:
        # A spend alert, at the invoice's amount and period (as kakin.services.alert_emails
        # writes the amounts out).
        shown = money(doc.amount_due, doc.currency, doc.locale)
        context["alert"] = {
            "name": "", "watches": "bill", "metric": None, "observed": shown,
            "threshold": shown, "budget": shown, "percent": "100%",
            "period_start": doc.period_start, "period_end": doc.period_end,
        }  # fmt: skip
    context.update(extra)
    return context


# -- invoices ---------------------------------------------------------------------------


def test_japanese_jpy_invoice_is_a_japanese_invoice_in_yen_without_decimals():
    html = render_invoice_html(ENV, invoice(locale="ja"))

    assert '<html lang="ja">' in html
    for label in ("請求書", "請求書番号", "発行日", "ご利用期間", "品目", "単価", "数量", "金額"):
        assert label in html
    for label in ("小計", "合計", "お支払い済み", "未払い残高"):
        assert label in html
    assert "INV-0001" in html
    assert "12,000円" in html
    assert "12,000.00" not in html
    assert "¥" not in html
    assert "2024年2月29日" in html  # issued in Tokyo time, not Feb 28 (UTC)
    assert "登録番号" in html and "T9234567890123" in html
    assert "山田 太郎 様" in html


def test_english_jpy_invoice_uses_the_yen_sign_and_english_labels():
    html = render_invoice_html(ENV, invoice(locale="en"))

    for label in ("Invoice number", "Issued", "Period", "Description", "Unit price", "Qty"):
        assert label in html
    for label in ("Subtotal", "Total", "Paid", "Amount due", "Registration number"):
        assert label in html
    assert "¥12,000" in html
    assert "12,000.00" not in html
    assert "円" not in html and "請求書" not in html
    assert "Feb 29, 2024" in html


def test_usd_invoice_shows_cents():
    html = render_invoice_html(ENV, invoice(currency="USD", locale="en", unit=1250, quantity=2))

    assert "$12.50" in html  # unit price
    assert "$25.00" in html  # line amount and totals
    assert "$0.00" in html  # nothing paid yet


def test_japanese_invoice_omits_the_registration_number_when_the_seller_has_none():
    html = render_invoice_html(ENV, invoice(locale="ja-JP", registration=""))

    assert "請求書" in html
    assert "登録番号" not in html


def test_draft_invoice_says_so_in_each_language():
    assert "下書き" in render_invoice_html(ENV, invoice(locale="ja", number=None))
    html = render_invoice_html(ENV, invoice(locale="en", number=None))
    assert "DRAFT" in html
    assert "None" not in html


def test_invoice_escapes_customer_supplied_text():
    doc = invoice(customer_name="<script>alert(1)</script>")
    doc = replace(doc, lines=[replace(doc.lines[0], description="<b>Pro</b>")])
    html = render_invoice_html(ENV, doc)

    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;Pro&lt;/b&gt;" in html


def test_localdate_renders_the_customer_calendar_day():
    instant = datetime(2024, 2, 28, 15, 30, tzinfo=UTC)
    assert localdate(instant, "Asia/Tokyo", "ja") == "2024年2月29日"
    assert localdate(instant, "Asia/Tokyo", "en") == "Feb 29, 2024"
    assert localdate(instant, "UTC", "en") == "Feb 28, 2024"
    assert localdate(instant, "America/New_York", "en-US") == "Feb 28, 2024"


def test_localdate_takes_a_naive_datetime_as_utc_whatever_the_host_zone(monkeypatch):
    # SQLite returns stored UTC values without a zone; the worker's own zone must not
    # leak in (naive.astimezone() would read it as host local time).
    monkeypatch.setenv("TZ", "JST-9")  # POSIX form: needs no zoneinfo files on the host
    time.tzset()
    try:
        naive = datetime(2024, 2, 28, 15, 30)  # noqa: DTZ001 - naive on purpose
        assert localdate(naive, "Asia/Tokyo", "ja") == "2024年2月29日"
    finally:
        monkeypatch.undo()
        time.tzset()


# -- emails -----------------------------------------------------------------------------


@pytest.mark.parametrize("currency, ja_amount, en_amount", [
    ("JPY", "12,000円", "¥12,000"),
    ("USD", "$120.00", "$120.00"),
])  # fmt: skip
@pytest.mark.parametrize("locale", ["ja", "en"])
@pytest.mark.parametrize("kind", sorted(EMAIL_KINDS))
def test_every_email_kind_renders_in_both_languages(kind, locale, currency, ja_amount, en_amount):
    doc = invoice(currency=currency, locale=locale, paid=kind == "receipt")
    email = render_email(ENV, kind, locale, email_context(kind, doc))

    assert email.subject.strip() and "\n" not in email.subject
    assert email.html.strip() and email.text.strip()
    assert "sub_123" in email.html and "sub_123" in email.text
    assert "kakin K.K." in email.html and "kakin K.K." in email.text
    # Every email links the customer's billing page.
    assert f'href="{BILLING_URL}"' in email.html and BILLING_URL in email.text
    if kind not in NOT_ABOUT_AN_INVOICE:
        amount = ja_amount if locale == "ja" else en_amount
        assert amount in email.html and amount in email.text
        assert "12,000.00" not in email.html
    if kind in FAILURE_KINDS:
        assert PAY_URL in email.html and PAY_URL in email.text
        assert f'href="{PAY_URL}"' in email.html
    if locale == "ja":
        assert '<html lang="ja">' in email.html
        assert "山田 太郎様" in email.text and "山田 太郎様" in email.html
    else:
        assert '<html lang="en">' in email.html
        assert "Dear 山田 太郎," in email.text


def test_japanese_emails_are_polite_business_japanese():
    email = render_email(ENV, "payment_failed", "ja-JP", email_context("x", invoice()))

    assert email.text.startswith("山田 太郎様")
    assert "いつもkakin K.K.をご利用いただき、誠にありがとうございます。" in email.text
    assert "お支払いを確認できませんでした" in email.subject


def test_failure_emails_give_the_next_retry_date_in_the_customer_zone():
    retry = datetime(2024, 3, 3, 16, 0, tzinfo=UTC)  # Mar 4 in Tokyo
    phrases = {
        "payment_failed": "try the payment again on",
        "payment_reminder": "next attempt is on",
    }
    for kind, phrase in phrases.items():
        ja = render_email(ENV, kind, "ja", email_context(kind, invoice(), next_retry_at=retry))
        en = render_email(ENV, kind, "en", email_context(kind, invoice(), next_retry_at=retry))
        assert "2024年3月4日" in ja.text and "2024年3月4日" in ja.html
        assert f"{phrase} Mar 4, 2024" in en.text.replace("\n", " ")
        assert "Mar 4, 2024" in en.html

        # No date known: no promise of a retry, and no "None" printed.
        without = render_email(ENV, kind, "en", email_context(kind, invoice(), next_retry_at=None))
        assert phrase not in without.text and "None" not in without.text


def test_final_notice_names_the_cancellation_date_when_known():
    cancel_at = datetime(2024, 4, 30, 15, 0, tzinfo=UTC)  # May 1 in Tokyo
    ctx = email_context("final_notice", invoice(), cancel_at=cancel_at)
    assert "2024年5月1日" in render_email(ENV, "final_notice", "ja", ctx).text
    assert "May 1, 2024" in render_email(ENV, "final_notice", "en", ctx).html
    plain = render_email(ENV, "final_notice", "en", email_context("final_notice", invoice()))
    assert "will be canceled" in plain.text


def test_canceled_unpaid_says_the_invoice_is_uncollectible():
    ctx = email_context("canceled_unpaid", invoice())
    assert "回収不能" in render_email(ENV, "canceled_unpaid", "ja", ctx).text
    assert "uncollectible" in render_email(ENV, "canceled_unpaid", "en", ctx).text


def test_canceled_on_request_at_period_end_or_at_once():
    ends_at = datetime(2024, 3, 31, 15, 0, tzinfo=UTC)  # Apr 1 in Tokyo
    later = email_context("canceled", None, ends_at=ends_at, cancel_reason="Too expensive")
    now = email_context("canceled", None)

    ja_later = render_email(ENV, "canceled", "ja", later)
    # Japanese: the last day of service, inclusive (the period ends at 00:00 on Apr 1).
    assert "2024年3月31日をもって終了" in ja_later.text and "Too expensive" in ja_later.html
    assert "2024年3月31日をもって終了" in ja_later.html and "4月1日" not in ja_later.text
    en_later = render_email(ENV, "canceled", "en", later)
    assert "Apr 1, 2024" in en_later.subject and "Too expensive" in en_later.text
    en_now = render_email(ENV, "canceled", "en", now)
    assert "immediately" in en_now.text and "Reason" not in en_now.text
    assert "解約手続きが完了" in render_email(ENV, "canceled", "ja", now).subject


def test_time_zone_defaults_to_utc():
    ctx = email_context("receipt", invoice(paid=True))
    del ctx["time_zone"]
    email = render_email(ENV, "receipt", "en", ctx)
    assert "Feb 28, 2024 – Mar 31, 2024" in email.text  # UTC days, not Tokyo's


def test_unknown_kind_is_refused_with_the_known_kinds():
    with pytest.raises(ValueError, match=r"'refund'.*receipt"):
        render_email(ENV, "refund", "en", email_context("refund", invoice()))


def test_missing_context_is_refused_by_name():
    ctx = email_context("payment_failed", invoice())
    del ctx["payment_update_url"]
    with pytest.raises(ValueError, match="payment_update_url"):
        render_email(ENV, "payment_failed", "en", ctx)
    with pytest.raises(ValueError, match="invoice"):
        render_email(ENV, "receipt", "en", email_context("receipt", None))


def test_email_html_escapes_the_customer_name_but_text_keeps_it():
    doc = invoice(customer_name="<script>alert(1)</script>")
    email = render_email(ENV, "payment_failed", "en", email_context("payment_failed", doc))

    assert "<script>" not in email.html
    assert "&lt;script&gt;" in email.html
    assert "Dear <script>alert(1)</script>," in email.text


# -- periods: Japanese documents print the inclusive last day (issue 11, item 11) -------

JST = ZoneInfo("Asia/Tokyo")
# A monthly period renewed at 08:00 JST: [2026-12-31 08:00, 2027-01-31 08:00).
DEC_31 = datetime(2026, 12, 31, 8, tzinfo=JST)
JAN_31 = datetime(2027, 1, 31, 8, tzinfo=JST)


def december_invoice(locale: str) -> InvoiceDocument:
    doc = invoice(locale=locale, paid=True)
    line = replace(doc.lines[0], period_start=DEC_31, period_end=JAN_31)
    return replace(doc, issued_at=DEC_31, period_start=DEC_31, period_end=JAN_31, lines=[line])


def test_japanese_invoice_prints_the_last_day_of_the_period():
    html = render_invoice_html(ENV, december_invoice("ja"))

    assert "ご利用期間" in html
    # The header and the line: 1月30日 is the last day; 1月31日 is the next period's first.
    assert html.count("2026年12月31日〜2027年1月30日") == 2
    assert "2027年1月31日" not in html
    # A period ending at local midnight: the day before (2024-04-01 00:00 JST -> 3月31日).
    midnight = render_invoice_html(ENV, invoice(locale="ja"))
    assert midnight.count("2024年2月29日〜2024年3月31日") == 2
    assert "2024年4月1日" not in midnight


def test_english_invoice_keeps_the_half_open_end_as_stripe_prints_it():
    html = render_invoice_html(ENV, december_invoice("en"))
    assert html.count("Dec 31, 2026 – Jan 31, 2027") == 2


@pytest.mark.parametrize("kind", sorted(set(EMAIL_KINDS) - NOT_ABOUT_AN_INVOICE))
def test_japanese_emails_print_the_last_day_of_the_period(kind):
    doc = december_invoice("ja")
    email = render_email(ENV, kind, "ja", email_context(kind, doc))
    assert "ご利用期間　：2026年12月31日〜2027年1月30日" in email.text
    assert "ご利用期間" in email.html and "2026年12月31日〜2027年1月30日" in email.html
    assert "2027年1月31日" not in email.text + email.html
    english = render_email(ENV, kind, "en", email_context(kind, december_invoice("en")))
    assert "Dec 31, 2026 – Jan 31, 2027" in english.text
    assert "Dec 31, 2026 – Jan 31, 2027" in english.html


def test_the_card_page_shows_the_unpaid_period_with_its_last_day():
    page = ENV.get_template("pay_update.html.j2")
    context = {
        "locale": "ja", "seller_name": "kakin K.K.", "form": True, "message": "",
        "error": False, "customer_name": "山田 太郎", "currency": "JPY", "amount_due": 3000,
        "invoice_number": "INV-000007", "subscription_id": "sub_1", "expires": "1",
        "token": "t", "time_zone": "Asia/Tokyo", "period_start": DEC_31.astimezone(UTC),
        "period_end": JAN_31.astimezone(UTC),
    }  # fmt: skip
    assert "ご利用期間 2026年12月31日〜2027年1月30日" in page.render(context)
    assert "Period Dec 31, 2026 – Jan 31, 2027" in page.render(context | {"locale": "en"})
    # No unpaid invoice, no period (and the old context without these keys still renders).
    old = {k: v for k, v in context.items() if not k.startswith(("period", "time_zone"))}
    assert "ご利用期間" not in page.render(old | {"amount_due": None})


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        # Half-open period ending at local midnight: the day before the end.
        (datetime(2027, 1, 1, tzinfo=JST), datetime(2027, 2, 1, tzinfo=JST), date(2027, 1, 31)),
        # Ending at 08:00: the end's day is the next period's first day, not this one's.
        (DEC_31, JAN_31, date(2027, 1, 30)),
        # One microsecond past midnight: the service ran on Jan 31, but so does the next period.
        (DEC_31, datetime(2027, 1, 31, 0, 0, 0, 1, tzinfo=JST), date(2027, 1, 30)),
        # A proration within one local day: that day, never a last day before the first.
        (
            datetime(2027, 1, 15, 10, tzinfo=JST),
            datetime(2027, 1, 15, 20, tzinfo=JST),
            date(2027, 1, 15),
        ),
    ],
)
def test_last_day_of_a_half_open_period(start, end, expected):
    assert last_day(end.astimezone(UTC), "Asia/Tokyo", start.astimezone(UTC)) == expected
