"""Charts drawn on the server as SVG, from figures the page was given (the console's
dashboard, the customer's billing page).

No chart library and no script: a chart is an ``<svg>`` whose bars and points carry
the number they draw (``data-series``, ``data-bucket``, ``data-value``), beside a
visually hidden table with the same numbers for screen readers (and for the tests,
which read a chart's data from the page). Nothing here computes a figure: it places
the values it is handed and labels the axes, amounts as people read them
(``billing.money.format_compact`` on the ticks, ``format_amount`` in the table).

Colours and fonts come from classes (``dashboard.css``): the console's CSP admits no
inline style.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape

from billing.money import exponent, format_amount, format_compact

# The drawing's own units (the viewBox); the SVG scales to its box's width.
WIDTH, HEIGHT = 480, 240
LEFT, RIGHT, TOP, BOTTOM = 66, 10, 14, 40
TICKS = 4
EN_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")  # fmt: skip


@dataclass(frozen=True)
class Series:
    """One line or one set of bars: ``key`` names it in ``data-series`` and its CSS class."""

    key: str
    label: str
    values: tuple[int, ...]


@dataclass(frozen=True)
class Chart:
    svg: Markup
    table: Markup

    def __html__(self) -> str:
        return str(self.svg + self.table)


@dataclass(frozen=True)
class Units:
    """How a chart's numbers read: money of ``currency`` (``None``: counts)."""

    currency: str | None
    locale: str

    def tick(self, value: int) -> str:
        """An axis label: compact, and without decimals on whole units ($500, not $500.00)."""
        if self.currency is None:
            return f"{value:,}"
        text = format_compact(value, self.currency, locale=self.locale)
        places = exponent(self.currency)
        if places and value % 10**places == 0:
            text = text.replace("." + "0" * places, "", 1)
        return text

    def exact(self, value: int) -> str:
        if self.currency is None:
            return f"{value:,}"
        return format_amount(value, self.currency, locale=self.locale)

    @property
    def smallest_step(self) -> int:
        """Ticks fall on whole units: a yen, a dollar (100 cents), one count."""
        return 1 if self.currency is None else 10 ** exponent(self.currency)


def nice_step(top: int, smallest: int) -> int:
    """A step of 1, 2, 2.5 or 5 x 10^n (at least ``smallest``) that reaches ``top`` in
    ``TICKS`` steps or fewer."""
    raw = max(Decimal(top) / TICKS, Decimal(smallest))
    power = Decimal(10) ** (len(str(int(raw))) - 1)
    for factor in (1, 2, Decimal("2.5"), 5, 10):
        step = power * factor
        if step >= raw and step % smallest == 0:
            return int(step)
    return int(power * 10)


def month_label(bucket: str, locale: str, *, first: bool) -> tuple[str, str]:
    """A month bucket's axis label ``2031-03`` as (``Mar``, ``2031``) or (``3月``, ``2031年``);
    the year only when ``first`` (the first label of the axis, or of a new year). Other
    labels as they are."""
    year, dash, month = bucket.partition("-")
    if not dash or not (year.isdigit() and month.isdigit() and len(month) == 2):
        return bucket, ""
    number = int(month)
    japanese = locale.startswith("ja")
    name = f"{number}月" if japanese else EN_MONTHS[number - 1]
    return name, (f"{year}年" if japanese else year) if first else ""


EN_LONG_MONTHS = ("January", "February", "March", "April", "May", "June", "July",
                  "August", "September", "October", "November", "December")  # fmt: skip


def long_month(bucket: str, locale: str) -> str:
    """``2031-03`` as ``March 2031`` or ``2031年3月`` (other labels as they are)."""
    year, dash, month = bucket.partition("-")
    if not dash or not (year.isdigit() and month.isdigit() and len(month) == 2):
        return bucket
    if locale.startswith("ja"):
        return f"{year}年{int(month)}月"
    return f"{EN_LONG_MONTHS[int(month) - 1]} {year}"


def _text(x: float, y: float, text: str, css: str, anchor: str = "middle") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" class="{css}" text-anchor="{anchor}">{escape(text)}</text>'
    )


class _Frame:
    """The plot area of a chart over ``buckets``, its y axis from 0 to a nice top."""

    def __init__(self, buckets: Sequence[str], series: Sequence[Series], units: Units) -> None:
        self.buckets, self.units = buckets, units
        highest = max((v for s in series for v in s.values), default=0)
        self.step = nice_step(max(highest, 1), units.smallest_step)
        steps = max(1, -(-highest // self.step))
        self.top = self.step * steps
        self.width = WIDTH - LEFT - RIGHT
        self.height = HEIGHT - TOP - BOTTOM
        self.slot = self.width / max(1, len(buckets))

    def y(self, value: int) -> float:
        return TOP + self.height - self.height * max(value, 0) / self.top

    def center(self, index: int) -> float:
        return LEFT + self.slot * (index + 0.5)

    def axes(self) -> list[str]:
        parts = []
        for value in range(0, self.top + 1, self.step):
            y = self.y(value)
            parts.append(
                f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            )
            parts.append(_text(LEFT - 6, y + 4, self.units.tick(value), "tick", "end"))
        # At most about 12 labels fit: beyond that, every n-th.
        every = max(1, -(-len(self.buckets) // 12))
        year_shown = ""
        for index, bucket in enumerate(self.buckets):
            if index % every:
                continue
            new_year = bucket[:4] != year_shown
            year_shown = bucket[:4]
            name, year = month_label(bucket, self.units.locale, first=new_year)
            x = self.center(index)
            parts.append(_text(x, HEIGHT - BOTTOM + 16, name, "tick"))
            if year:
                parts.append(_text(x, HEIGHT - BOTTOM + 30, year, "tick year"))
        return parts


def _svg(title: str, kind: str, parts: Sequence[str]) -> Markup:
    body = "".join(parts)
    return Markup(
        f'<svg class="chart {kind}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">{body}</svg>'
    )


def _tooltip(bucket: str, series: Series, value: int, units: Units) -> str:
    return f"<title>{escape(bucket)} · {escape(series.label)}: {escape(units.exact(value))}</title>"


def _value_attributes(series: Series, bucket: str, value: int) -> str:
    return f'data-series="{escape(series.key)}" data-bucket="{escape(bucket)}" data-value="{value}"'


def data_table(
    title: str, buckets: Sequence[str], series: Sequence[Series], units: Units, *, head: str
) -> Markup:
    """The chart's numbers as a table, hidden from the eye but read aloud."""
    heads = "".join(f'<th scope="col">{escape(s.label)}</th>' for s in series)
    rows = []
    for index, bucket in enumerate(buckets):
        cells = "".join(
            f"<td {_value_attributes(s, bucket, s.values[index])}>"
            f"{escape(units.exact(s.values[index]))}</td>"
            for s in series
        )
        rows.append(f'<tr><th scope="row">{escape(bucket)}</th>{cells}</tr>')
    return Markup(
        f'<table class="visually-hidden"><caption>{escape(title)}</caption>'
        f'<thead><tr><th scope="col">{escape(head)}</th>{heads}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def bar_chart(
    title: str, buckets: Sequence[str], series: Sequence[Series], units: Units, *, head: str
) -> Chart:
    """Bars per bucket, one per series side by side (invoiced beside collected)."""
    frame = _Frame(buckets, series, units)
    parts = frame.axes()
    group = frame.slot * 0.72
    width = group / max(1, len(series))
    for index, bucket in enumerate(buckets):
        left = frame.center(index) - group / 2
        for number, line in enumerate(series):
            value = line.values[index]
            y = frame.y(value)
            parts.append(
                f'<rect x="{left + number * width:.1f}" y="{y:.1f}" width="{width:.1f}" '
                f'height="{max(frame.y(0) - y, 0):.1f}" class="bar {escape(line.key)}" '
                f"{_value_attributes(line, bucket, value)}>"
                f"{_tooltip(bucket, line, value, units)}</rect>"
            )
    svg = _svg(title, "bars", parts)
    return Chart(svg=svg, table=data_table(title, buckets, series, units, head=head))


def line_chart(
    title: str, buckets: Sequence[str], series: Sequence[Series], units: Units, *, head: str
) -> Chart:
    """A line per series through a point per bucket (MRR month by month)."""
    frame = _Frame(buckets, series, units)
    parts = frame.axes()
    for line in series:
        points = [(frame.center(i), frame.y(v)) for i, v in enumerate(line.values)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" class="line {escape(line.key)}"/>')
        for (x, y), bucket, value in zip(points, buckets, line.values, strict=True):
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" class="point {escape(line.key)}" '
                f"{_value_attributes(line, bucket, value)}>"
                f"{_tooltip(bucket, line, value, units)}</circle>"
            )
    svg = _svg(title, "lines", parts)
    return Chart(svg=svg, table=data_table(title, buckets, series, units, head=head))


@dataclass(frozen=True)
class Band:
    """One horizontal bar: an aging band, a step of the dunning funnel."""

    key: str
    label: str
    value: int


BAND_HEIGHT, BAND_GAP, BAND_LABEL = 22, 10, 112


def band_chart(
    title: str, bands: Sequence[Band], units: Units, *, series: str, line: Band | None = None
) -> Chart:
    """Horizontal bars, one per band, each labelled with its name and its amount; and
    ``line``, a vertical line across them at its value (a budget), named below them."""
    highest = max([b.value for b in bands] + ([line.value] if line else []), default=0)
    height = TOP + (len(bands) + (1 if line else 0)) * (BAND_HEIGHT + BAND_GAP)
    room = WIDTH - BAND_LABEL - RIGHT - 92  # the amount is written after the bar
    parts = []
    for index, band in enumerate(bands):
        y = TOP + index * (BAND_HEIGHT + BAND_GAP)
        width = room * band.value / highest if highest else 0
        middle = y + BAND_HEIGHT / 2 + 4
        parts.append(_text(BAND_LABEL - 8, middle, band.label, "tick", "end"))
        parts.append(
            f'<rect x="{BAND_LABEL}" y="{y}" width="{max(width, 1.5):.1f}" '
            f'height="{BAND_HEIGHT}" class="bar {escape(band.key)}" data-series="{escape(series)}" '
            f'data-bucket="{escape(band.key)}" data-value="{band.value}">'
            f"<title>{escape(band.label)}: {escape(units.exact(band.value))}</title></rect>"
        )
        amount = units.exact(band.value)
        parts.append(_text(BAND_LABEL + width + 6, middle, amount, "amount", "start"))
    if line is not None:
        x = BAND_LABEL + (room * line.value / highest if highest else 0)
        bottom = TOP + len(bands) * (BAND_HEIGHT + BAND_GAP)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP - 6}" y2="{bottom + 2}" '
            f'class="marker {escape(line.key)}" data-series="{escape(series)}" '
            f'data-bucket="{escape(line.key)}" data-value="{line.value}">'
            f"<title>{escape(line.label)}: {escape(units.exact(line.value))}</title></line>"
        )
        # Named in the labels' column, its amount at the line's foot.
        middle = bottom + BAND_HEIGHT / 2 - 2
        parts.append(_text(BAND_LABEL - 8, middle, line.label, "tick", "end"))
        amount = units.exact(line.value)
        parts.append(_text(x, middle, amount, f"amount marker-label {line.key}", "middle"))
    body = "".join(parts)
    svg = Markup(
        f'<svg class="chart bands" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">{body}</svg>'
    )
    rows = "".join(
        f'<tr><th scope="row">{escape(b.label)}</th><td data-series="{escape(series)}" '
        f'data-bucket="{escape(b.key)}" data-value="{b.value}">'
        f"{escape(units.exact(b.value))}</td></tr>"
        for b in [*bands, *([line] if line else [])]
    )
    table = Markup(
        f'<table class="visually-hidden"><caption>{escape(title)}</caption>'
        f"<tbody>{rows}</tbody></table>"
    )
    return Chart(svg=svg, table=table)
