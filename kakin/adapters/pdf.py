"""PDF invoices laid out from the same HTML the customer sees in a browser.

PyMuPDF's Story engine turns the rendered ``invoice.html.j2`` into A4 pages. It is a
wheel with no system libraries, and it carries a CJK fallback font, so Japanese
renders on a machine with no Japanese fonts installed (a PDF must not depend on the
fonts of the machine that makes it). The font is embedded in the file.
"""

from __future__ import annotations

import io

_MARGIN = 36  # points: half an inch around the page
_DEFLATE_EFFORT = 20  # percent of zlib's maximum effort (0 is zlib's default level)
# Paper has its own margins: drop the page background and the card look of the sheet.
# A smaller type than on screen, so a typical invoice fits one A4 page.
_PRINT_CSS = """
body { padding: 0; background: #fff; font-size: 10px; line-height: 1.4; }
.sheet { padding: 0; border: 0; }
h1 { font-size: 20px; }
.label, .line-period, table.lines th { font-size: 9px; }
.customer { font-size: 12px; }
table.meta td.label { font-size: 10px; }
table.parties { margin: 12px 0; }
table.lines td { padding: 4px 6px; }
table.totals th, table.totals td { padding: 2px 6px; }
table.totals tr.due th, table.totals tr.due td { font-size: 14px; }
"""


def warm_up() -> None:
    """Load PyMuPDF now (seconds of CPU), so the first invoice PDF does not wait for it.

    A worker that runs activities calls this once before it polls.
    """
    import pymupdf  # noqa: F401


def html_to_pdf(html: str) -> bytes:
    """Lay ``html`` out on as many A4 pages as it needs and return the PDF bytes."""
    # Imported here: loading PyMuPDF takes seconds, and only PDF makers should wait.
    import pymupdf

    story = pymupdf.Story(html=html, user_css=_PRINT_CSS)
    buffer = io.BytesIO()
    writer = pymupdf.DocumentWriter(buffer)
    page = pymupdf.paper_rect("a4")
    content = pymupdf.Rect(
        page.x0 + _MARGIN, page.y0 + _MARGIN, page.x1 - _MARGIN, page.y1 - _MARGIN
    )
    more = True
    while more:
        device = writer.begin_page(page)
        unfinished, _filled = story.place(content)
        story.draw(device)
        writer.end_page()
        more = bool(unfinished)
    writer.close()
    # Embed only the glyphs used: the CJK font is megabytes, an invoice needs a few dozen.
    document = pymupdf.open(stream=buffer.getvalue(), filetype="pdf")
    document.subset_fonts()
    # Deflate at a lower effort than zlib's default: a quarter less CPU for a file a few
    # KB larger (about 95 KB instead of 88 KB for a one-page Japanese invoice).
    try:
        return document.tobytes(garbage=3, deflate=True, compression_effort=_DEFLATE_EFFORT)
    except TypeError:  # a PyMuPDF older than compression_effort (1.24.x)
        return document.tobytes(garbage=3, deflate=True)
