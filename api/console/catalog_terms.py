"""New billable metrics, tax rates and coupons from the console.

Each form's body is the API's request model (``MetricCreate``, ``TaxRateCreate``,
``CouponCreate``) and each row is made by the same service function as ``POST
/v1/metrics``, ``/v1/tax-rates`` and ``/v1/coupons`` (``api/routers/pricing.py``), with
the admin who asked as the audit log's actor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, get_args

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel

from api.console.auth import Admin, form_of, locale_of, origin_of
from api.console.catalog import HOME
from api.console.catalog_forms import (
    FormRefused,
    body_of,
    checked,
    field_named,
    number,
    text_or_none,
    validated,
)
from api.console.messages import translator
from api.console.rendering import render, see_other
from api.deps import deps_of
from api.requests.catalog import Aggregation, CouponCreate, MetricCreate, TaxRateCreate
from kakin.services import catalog
from kakin.services.staff import Origin

router = APIRouter(include_in_schema=False)
DURATIONS = get_args(CouponCreate.model_fields["duration"].annotation)
AGGREGATIONS = get_args(Aggregation)


def _metric(form: Mapping[str, str]) -> dict[str, Any]:
    return body_of(
        {
            "code": form.get("code", "").strip(),
            "name": form.get("name", "").strip(),
            "aggregation": form.get("aggregation") or None,
            "property": text_or_none(form.get("property")),
        }
    )


def _tax_rate(form: Mapping[str, str]) -> dict[str, Any]:
    return {
        "name": form.get("name", "").strip(),
        "percentage": form.get("percentage", "").strip().removesuffix("%").strip(),
        "inclusive": checked(form, "inclusive"),
        "jurisdiction": form.get("jurisdiction", "").strip(),
        "reduced": checked(form, "reduced"),
    }


def _coupon(form: Mapping[str, str]) -> dict[str, Any]:
    return body_of(
        {
            "code": form.get("code", "").strip(),
            "name": form.get("name", "").strip(),
            "duration": form.get("duration") or None,
            "percent_off": text_or_none(form.get("percent_off", "").removesuffix("%")),
            "amount_off": number(form.get("amount_off")),
            "currency": text_or_none(form.get("currency")),
            "duration_in_periods": number(form.get("duration_in_periods")),
            "redeem_by": text_or_none(form.get("redeem_by")),
            "max_redemptions": number(form.get("max_redemptions")),
        }
    )


@dataclass(frozen=True)
class Term:
    """One kind of catalog entry a form creates."""

    path: str  # under /console/catalog: the list is there, the form at <path>/new
    template: str
    request: type[BaseModel]
    body: Callable[[Mapping[str, str]], dict[str, Any]]
    make: Callable[..., str]
    aliases: Mapping[str, str]
    defaults: Mapping[str, str]


TERMS = (
    Term("metrics", "metric_form.html.j2", MetricCreate, _metric, catalog.create_metric,
         {}, {"aggregation": "count"}),
    Term("tax-rates", "tax_rate_form.html.j2", TaxRateCreate, _tax_rate,
         catalog.create_tax_rate, {"tax rate": "percentage"}, {}),
    Term("coupons", "coupon_form.html.j2", CouponCreate, _coupon, catalog.create_coupon,
         {"repeating": "duration_in_periods"}, {"duration": "once"}),
)  # fmt: skip


def _make(term: Term, sessions: Any, body: BaseModel, actor: str, origin: Origin) -> str:
    try:
        return term.make(sessions, **body.model_dump(), actor=actor, origin=origin)
    except catalog.CatalogError as error:
        field = field_named(str(error), term.request.model_fields, term.aliases)
        raise FormRefused({field: str(error)}) from None


def _routes(term: Term) -> None:
    async def form_page(request: Request, me: Admin) -> Response:
        return render(
            request, term.template, values=term.defaults, errors={}, durations=DURATIONS,
            aggregations=AGGREGATIONS,
        )  # fmt: skip

    async def create(request: Request, me: Admin) -> Response:
        form = await form_of(request)  # its CSRF token checked by require_staff
        t = translator(locale_of(request, me.staff))
        try:
            body = validated(term.request, term.body(form), t)
            made = await run_in_threadpool(
                _make, term, deps_of(request).sessions, body, me.staff.actor,
                origin_of(request),
            )  # fmt: skip
        except FormRefused as refused:
            return render(
                request, term.template, status=422, values=form, errors=refused.errors,
                durations=DURATIONS, aggregations=AGGREGATIONS,
            )  # fmt: skip
        return see_other(f"{HOME}?created={made}#{term.path}")

    router.add_api_route(f"{HOME}/{term.path}/new", form_page, methods=["GET"],
                         name=f"catalog-{term.path}-form")  # fmt: skip
    router.add_api_route(f"{HOME}/{term.path}", create, methods=["POST"],
                         name=f"catalog-{term.path}-create")  # fmt: skip


for _term in TERMS:
    _routes(_term)
