"""PDF invoices: a Japanese qualified invoice renders, every character with a real glyph."""

from __future__ import annotations

from datetime import UTC, datetime

import pymupdf

from kakin.adapters.pdf import html_to_pdf
from kakin.adapters.rendering import (
    DocumentLine,
    InvoiceDocument,
    TaxSummary,
    make_template_env,
    render_invoice_html,
)

START = datetime(2026, 10, 31, 15, 0, tzinfo=UTC)  # Nov 1 in Tokyo
END = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


def japanese_invoice() -> InvoiceDocument:
    lines = [
        DocumentLine("Pro プラン", 105, 1, 105, START, END, tax_label="10%"),
        DocumentLine("サポート", 105, 1, 105, START, END, tax_label="10%"),
        DocumentLine(
            "API 呼び出し",
            0,
            1,
            105,
            START,
            END,
            kind="usage",
            usage_quantity="7,000",
            tax_label="10%",
        ),
        DocumentLine("お弁当", 540, 1, 540, START, END, tax_label="8%※", reduced_rate=True),
    ]
    return InvoiceDocument(
        number="INV-000042",
        status="open",
        currency="JPY",
        locale="ja",
        time_zone="Asia/Tokyo",
        customer_name="山田 太郎",
        customer_email="taro@example.jp",
        seller_name="課金デモ株式会社",
        seller_address="東京都千代田区千代田1-1",
        seller_registration_number="T8700110005901",
        issued_at=START,
        period_start=START,
        period_end=END,
        lines=lines,
        subtotal=855,
        total=929,
        amount_paid=0,
        amount_due=929,
        tax_total=74,
        taxes=(
            TaxSummary("消費税", "10", inclusive=False, reduced=False, taxable=315, tax=31),
            TaxSummary("消費税", "8", inclusive=False, reduced=True, taxable=540, tax=43),
        ),
    )


def missing_glyphs(page: pymupdf.Page, text: str) -> set[str]:
    """Characters of ``text`` not drawn with a real glyph: the boxes a reader would see.

    A character is missing when the page never draws it (a font without it had it
    replaced) or draws it with glyph 0 (.notdef, the empty box).
    """
    drawn: dict[str, set[int]] = {}
    for span in page.get_texttrace():
        for char in span["chars"]:
            drawn.setdefault(chr(char[0]), set()).add(char[1])
    return {c for c in text if not c.isspace() and (c not in drawn or 0 in drawn[c])}


def test_a_japanese_invoice_pdf_shows_registration_number_and_totals_per_rate() -> None:
    html = render_invoice_html(make_template_env(), japanese_invoice())
    document = pymupdf.open(stream=html_to_pdf(html), filetype="pdf")

    assert document.page_count == 1
    page = document[0]
    text = page.get_text()
    for expected in (
        "請求書",
        "山田 太郎 様",
        "登録番号: T8700110005901",
        "10%対象",
        "315円",
        "消費税（10%）",
        "31円",
        "8%対象 ※",
        "540円",
        "消費税（8%）",
        "43円",
        "929円",
        "※は軽減税率対象品目です。",
    ):
        assert expected in text, f"{expected!r} is not on the PDF page"
    assert (
        missing_glyphs(page, "請求書 山田太郎様 登録番号 消費税 対象 ※は軽減税率対象品目です。円")
        == set()
    )

    # Rendered to an image, the page has ink on it (not a blank or broken page).
    pixmap = page.get_pixmap(dpi=72, colorspace=pymupdf.csGRAY)
    dark = sum(1 for value in pixmap.samples if value < 128)
    assert dark > 0.005 * pixmap.width * pixmap.height


def test_the_glyph_check_sees_boxes_when_a_font_lacks_japanese() -> None:
    """The check above can fail: Helvetica has no kana, and the check notices."""
    document = pymupdf.open()
    page = document.new_page()
    page.insert_text((72, 72), "請求書 Invoice", fontname="helv")
    assert missing_glyphs(page, "請求書 Invoice") == {"請", "求", "書"}
