"""The catalog in the console: products and prices, billable metrics, tax rates, coupons.

Every staff member may read it (support and finance need to know what a plan costs);
only an admin sees the forms, and a POST from anyone else is a 403 (``Admin``). The
lists are the same service reads and response shapes as ``GET /v1/prices`` and its
kin; the forms (``catalog_prices``, ``catalog_terms``) go through the API's request
models and the same service functions as ``POST /v1/prices`` and its kin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.console.auth import AnyStaff, ConsoleDenied, SignedIn
from api.console.rendering import render
from api.deps import deps_of
from billing.money import exponent, format_amount
from kakin.services import catalog
from kakin.services.errors import InvalidCursorError
from kakin.services.staff import StaffRole
from kakin.views.catalog import CouponOut, MetricOut, PriceOut, TaxRateOut
from kakin.views.common import FromRow

router = APIRouter(include_in_schema=False)
HOME = "/console/catalog"
OVERVIEW_ROWS = 20  # each list on the overview; a kind's own page shows PAGE_ROWS a page
PAGE_ROWS = 50


@dataclass(frozen=True)
class Kind:
    """One list of the catalog: its path under /console/catalog, its read and shape."""

    name: str  # prices, metrics, tax-rates, coupons (its path; its words say catalog.<key>)
    lister: Callable[..., tuple[list[Any], bool]]
    out: type[FromRow]

    @property
    def key(self) -> str:
        return self.name.replace("-", "_")


KINDS = {
    kind.name: kind
    for kind in (
        Kind("prices", catalog.list_prices, PriceOut),
        Kind("metrics", catalog.list_metrics, MetricOut),
        Kind("tax-rates", catalog.list_tax_rates, TaxRateOut),
        Kind("coupons", catalog.list_coupons, CouponOut),
    )
}


@dataclass(frozen=True)
class Section:
    kind: Kind
    rows: list[Any]
    more: bool

    @property
    def next_after(self) -> str:
        return str(self.rows[-1].id) if self.rows else ""


def can_edit(me: SignedIn) -> bool:
    """Whether the page shows the forms (the POSTs check the role themselves)."""
    return me.staff.role is StaffRole.ADMIN


def decimal_amount(value: str | int, currency: str, locale: str) -> str:
    """A price's amount as people read it: ``3,980円``, ``$12.50``; an amount finer than
    the minor unit (0.015 yen a call) in major units with its code (``0.015 JPY``)."""
    number = Decimal(str(value))
    if number == number.to_integral_value():
        return format_amount(int(number), currency, locale=locale)
    return f"{number.scaleb(-exponent(currency)).normalize():f} {currency}"


def _read(request: Request, kind: Kind, limit: int, after: str | None) -> Any:
    return run_in_threadpool(
        kind.lister, deps_of(request).sessions, kind.out.of, limit=limit, starting_after=after
    )


async def lookups(request: Request) -> dict[str, Any]:
    """Names the price lists show for ids: the tax rates and the metrics (first pages)."""
    rates, _ = await _read(request, KINDS["tax-rates"], 100, None)
    metrics, _ = await _read(request, KINDS["metrics"], 100, None)
    return {
        "tax_rates": rates,
        "rate_names": {rate.id: f"{rate.name} {rate.percentage}%" for rate in rates},
        "metrics": metrics,
        "metric_codes": {metric.id: metric.code for metric in metrics},
    }


def _page(request: Request, me: SignedIn, sections: list[Section], **context: Any) -> Response:
    return render(
        request, "catalog.html.j2", sections=sections, editable=can_edit(me),
        created=request.query_params.get("created", ""), amount=decimal_amount,
        archived=bool(request.query_params.get("archived")),
        exponent=exponent, **context,
    )  # fmt: skip


@router.get(HOME)
async def overview(request: Request, me: AnyStaff) -> Response:
    sections = []
    for kind in KINDS.values():
        rows, more = await _read(request, kind, OVERVIEW_ROWS, None)
        sections.append(Section(kind, rows, more))
    return _page(request, me, sections, single=False, **await lookups(request))


@router.get(HOME + "/{section}")
async def one_list(request: Request, section: str, me: AnyStaff) -> Response:
    kind = KINDS.get(section)
    if kind is None:
        raise ConsoleDenied(404, "error.not_found")
    after = request.query_params.get("after") or None
    try:
        rows, more = await _read(request, kind, PAGE_ROWS, after)
    except InvalidCursorError:  # a page after a row that is not in this list
        raise ConsoleDenied(404, "error.not_found") from None
    return _page(request, me, [Section(kind, rows, more)], single=True, **await lookups(request))
