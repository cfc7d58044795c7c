"""Who may open what in the console: every route under /console, found in the app itself,
checked for every role against the table below.

The table is the decision: a new page or action must be added to ``ACCESS`` with the
roles that may use it (an admin always may), or this test fails naming it. Each GET is
200 for the roles listed and 403 for the others, and a redirect to sign-in for nobody
signed in; each POST is 403 for the roles not listed (with a valid CSRF token, so the
role is what refuses it), 403 without its CSRF token even for an admin, and 401
without a session. Nothing an allowed role POSTs is sent: these requests must not act.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from kakin.platform.codec import keyring_from_settings
from kakin.services import api_keys, catalog, customers, staff, webhook_endpoints
from tests.api.test_api_subscriptions import stored_subscription
from tests.console.browsing import csrf
from tests.console.office import ROLES, Office

ADMIN, SUPPORT, FINANCE = "admin", "support", "finance"
EVERYONE = (ADMIN, SUPPORT, FINANCE)


@dataclass(frozen=True)
class Before:
    """A route of signing in itself (no session needed, or a pending one): it answers
    anyone, with the page or a redirect to the step that comes next."""


BEFORE_SIGN_IN = Before()
Access = tuple[str, ...] | Before

# (method, path as registered) -> the roles that may use it.
ACCESS: dict[tuple[str, str], Access] = {
    # signing in, two-step, signing out
    ("GET", "/console/sign-in"): BEFORE_SIGN_IN,
    ("POST", "/console/sign-in"): BEFORE_SIGN_IN,
    ("GET", "/console/sign-in/2fa"): BEFORE_SIGN_IN,
    ("POST", "/console/sign-in/2fa"): BEFORE_SIGN_IN,
    ("GET", "/console/2fa/enrol"): BEFORE_SIGN_IN,
    ("POST", "/console/2fa/enrol"): BEFORE_SIGN_IN,
    ("POST", "/console/sign-out"): BEFORE_SIGN_IN,
    ("GET", "/console"): BEFORE_SIGN_IN,  # a redirect to /console/
    ("GET", "/console/static/{name}"): BEFORE_SIGN_IN,  # the stylesheet of sign-in too
    # one's own account
    ("GET", "/console/"): EVERYONE,
    ("GET", "/console/recovery-codes"): EVERYONE,
    ("POST", "/console/recovery-codes"): EVERYONE,
    ("GET", "/console/password"): EVERYONE,
    ("POST", "/console/password"): EVERYONE,
    # staff and API keys
    ("GET", "/console/staff"): (ADMIN,),
    ("POST", "/console/staff"): (ADMIN,),
    ("GET", "/console/staff/{staff_id}/disable"): (ADMIN,),
    ("POST", "/console/staff/{staff_id}/disable"): (ADMIN,),
    ("GET", "/console/staff/{staff_id}/reset-2fa"): (ADMIN,),
    ("POST", "/console/staff/{staff_id}/reset-2fa"): (ADMIN,),
    ("GET", "/console/api-keys"): (ADMIN,),
    ("POST", "/console/api-keys"): (ADMIN,),
    ("GET", "/console/api-keys/{key_id}/revoke"): (ADMIN,),
    ("POST", "/console/api-keys/{key_id}/revoke"): (ADMIN,),
    # customers
    ("GET", "/console/customers"): EVERYONE,
    ("GET", "/console/customers/{customer_id}"): EVERYONE,
    ("GET", "/console/customers/new"): (ADMIN, SUPPORT),
    ("POST", "/console/customers/new"): (ADMIN, SUPPORT),
    # the catalog: everyone reads, admins set it up
    ("GET", "/console/catalog"): EVERYONE,
    ("GET", "/console/catalog/{section}"): EVERYONE,
    ("GET", "/console/catalog/prices/new"): (ADMIN,),
    ("POST", "/console/catalog/prices"): (ADMIN,),
    ("GET", "/console/catalog/prices/{price_id}/archive"): (ADMIN,),
    ("POST", "/console/catalog/prices/{price_id}/archive"): (ADMIN,),
    ("GET", "/console/catalog/metrics/new"): (ADMIN,),
    ("POST", "/console/catalog/metrics"): (ADMIN,),
    ("GET", "/console/catalog/tax-rates/new"): (ADMIN,),
    ("POST", "/console/catalog/tax-rates"): (ADMIN,),
    ("GET", "/console/catalog/coupons/new"): (ADMIN,),
    ("POST", "/console/catalog/coupons"): (ADMIN,),
    # subscriptions: everyone reads, support acts
    ("GET", "/console/subscriptions"): EVERYONE,
    ("GET", "/console/subscriptions/{subscription_id}"): EVERYONE,
    ("GET", "/console/subscriptions/new"): (ADMIN, SUPPORT),
    ("POST", "/console/subscriptions/new"): (ADMIN, SUPPORT),
    ("GET", "/console/subscriptions/{subscription_id}/change-plan"): (ADMIN, SUPPORT),
    ("POST", "/console/subscriptions/{subscription_id}/change-plan"): (ADMIN, SUPPORT),
    ("POST", "/console/subscriptions/{subscription_id}/cancel"): (ADMIN, SUPPORT),
    ("POST", "/console/subscriptions/{subscription_id}/pause"): (ADMIN, SUPPORT),
    ("POST", "/console/subscriptions/{subscription_id}/resume"): (ADMIN, SUPPORT),
    ("POST", "/console/subscriptions/{subscription_id}/grace"): (ADMIN, SUPPORT),
    ("POST", "/console/subscriptions/{subscription_id}/retry"): (ADMIN, SUPPORT),
    ("POST", "/console/subscriptions/{subscription_id}/waive"): (ADMIN, SUPPORT),
    # invoices: everyone reads (the document and its PDF too), support acts
    ("GET", "/console/invoices"): EVERYONE,
    ("GET", "/console/invoices/{invoice_id}"): EVERYONE,
    ("GET", "/console/invoices/{invoice_id}/document"): EVERYONE,
    ("GET", "/console/invoices/{invoice_id}/pdf"): EVERYONE,
    ("POST", "/console/invoices/{invoice_id}/void"): (ADMIN, SUPPORT),
    ("POST", "/console/invoices/{invoice_id}/write-off"): (ADMIN, SUPPORT),
    ("POST", "/console/invoices/{invoice_id}/credit-notes"): (ADMIN, SUPPORT),
    # alerts on a subscription or a customer: everyone reads, support acts
    ("GET", "/console/subscriptions/{subscription_id}/alerts"): EVERYONE,
    ("POST", "/console/subscriptions/{subscription_id}/alerts"): (ADMIN, SUPPORT),
    ("POST", "/console/subscriptions/{subscription_id}/alerts/{alert_id}/remove"): (ADMIN, SUPPORT),
    ("POST", "/console/subscriptions/{subscription_id}/alerts/{alert_id}/cap"): (ADMIN, SUPPORT),
    ("GET", "/console/customers/{customer_id}/alerts"): EVERYONE,
    ("POST", "/console/customers/{customer_id}/alerts"): (ADMIN, SUPPORT),
    ("POST", "/console/customers/{customer_id}/alerts/{alert_id}/remove"): (ADMIN, SUPPORT),
    ("POST", "/console/customers/{customer_id}/alerts/{alert_id}/cap"): (ADMIN, SUPPORT),
    # outgoing webhooks: admins only
    ("GET", "/console/webhooks"): (ADMIN,),
    ("POST", "/console/webhooks"): (ADMIN,),
    ("GET", "/console/webhooks/{endpoint_id}"): (ADMIN,),
    ("POST", "/console/webhooks/{endpoint_id}/enabled"): (ADMIN,),
    ("POST", "/console/webhooks/{endpoint_id}/rotate"): (ADMIN,),
    ("POST", "/console/webhooks/{endpoint_id}/deliveries/{delivery_id}/resend"): (ADMIN,),
}


def _support_member_id(office: Office) -> str:
    office.client(SUPPORT)  # signs them in, so they exist
    return office.members[SUPPORT].member.id


def _key_id(office: Office) -> str:
    return api_keys.create_key(office.sessions, name="access matrix", role="service").info.id


def _customer_id(office: Office) -> str:
    return customers.create_customer(
        office.sessions, office.stripe, email="matrix@example.jp", name="表 太郎",
        currency="JPY", locale="ja",
    )  # fmt: skip


def _endpoint_id(office: Office) -> str:
    deps = office.app.state.deps
    made = webhook_endpoints.create_endpoint(
        office.sessions, keyring_from_settings(deps.settings), lambda row, secret: row.id,
        url="http://127.0.0.1:9/matrix", enabled_events=["*"], description="",
        live_mode=False, created_by="test",
    )  # fmt: skip
    return str(made)


def _price_id(office: Office) -> str:
    return catalog.create_price(
        office.sessions, product_name="表 プラン", currency="JPY", unit_amount=1000,
        interval="month",
    )  # fmt: skip


# Pages that need a choice in the query: without it, an admitted role is sent back
# (the plan-change preview without a plan: to the subscription).
ONWARDS = {"/console/subscriptions/{subscription_id}/change-plan"}


# A real value for each path parameter, from data put in through the services.
EXAMPLES: dict[str, Callable[[Office], str]] = {
    "name": lambda office: "console.css",
    "staff_id": _support_member_id,
    "key_id": _key_id,
    "customer_id": _customer_id,
    "section": lambda office: "prices",
    "price_id": _price_id,
    # One whose workflow has gone (the page shows the stored row): a sync test cannot
    # let the module's worker answer a status query.
    "subscription_id": lambda office: stored_subscription(office.sessions),
    "endpoint_id": _endpoint_id,
    # Only POSTs name these, and none may act: the role or the token refuses them first.
    "alert_id": lambda office: "alrt_matrix",
    "delivery_id": lambda office: "whd_matrix",
    "invoice_id": lambda office: (
        "in_"
        + stored_subscription(  # that one's invoice
            office.sessions, html="<!doctype html><title>請求書</title><p>請求書</p>"
        )
    ),
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # as registered, with {parameters}

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _api_routes(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every endpoint the app serves, with its full path. FastAPI 0.16x keeps an included
    router as one entry (``original_router``, its prefix in ``include_context``) rather
    than copying its routes into the app's list; older versions copy them."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            yield from _api_routes(included.routes, prefix + getattr(context, "prefix", ""))


def console_routes(office: Office) -> list[Route]:
    found = {
        Route(method, path)
        for path, route in _api_routes(office.app.routes)
        if path.startswith("/console")
        for method in route.methods
        if method != "HEAD"
    }
    assert found, "no console routes found in the app: has FastAPI changed how it keeps them?"
    return sorted(found, key=lambda r: (r.path, r.method))


def url_of(office: Office, route: Route, cache: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in EXAMPLES:
            pytest.fail(
                f"{route} has the path parameter {{{name}}}: add to EXAMPLES in "
                "tests/console/test_console_access.py how to get a real one",
                pytrace=False,
            )
        if name not in cache:
            cache[name] = EXAMPLES[name](office)
        return cache[name]

    return re.sub(r"{([^}:]+)(?::[^}]*)?}", value, route.path)


def test_every_console_route_has_its_roles_decided(office: Office) -> None:
    routes = {(r.method, r.path) for r in console_routes(office)}
    undecided = sorted(routes - ACCESS.keys())
    assert not undecided, (
        "console routes without a decision on who may use them; add each to ACCESS in "
        "tests/console/test_console_access.py with its roles:\n  "
        + "\n  ".join(f"{m} {p}" for m, p in undecided)
    )
    gone = sorted(ACCESS.keys() - routes)
    assert not gone, f"ACCESS lists routes the app no longer has: {gone}"


@pytest.mark.parametrize("role", ROLES)
def test_each_page_opens_for_its_roles_and_is_403_for_the_others(office: Office, role: str) -> None:
    client, cache = office.client(role), {}
    wrong: list[str] = []
    for route in console_routes(office):
        access = ACCESS.get((route.method, route.path))
        if route.method != "GET" or access is None:
            continue  # an undecided route fails the test above
        answer = client.get(url_of(office, route, cache))
        if isinstance(access, Before) or (role in access and route.path in ONWARDS):
            # Signed in already: the page itself, or a redirect onwards (to home).
            expected: tuple[int, ...] = (200, 303)
        else:
            expected = (200,) if role in access else (403,)
        if answer.status_code not in expected:
            wrong.append(f"{route}: {answer.status_code}, expected {expected}")
    assert not wrong, f"as {role}:\n  " + "\n  ".join(wrong)


def test_nobody_signed_in_is_sent_to_sign_in(office: Office) -> None:
    cache: dict[str, str] = {}
    wrong: list[str] = []
    with httpx.Client(base_url=office.url, follow_redirects=False, timeout=30) as stranger:
        for route in console_routes(office):
            access = ACCESS.get((route.method, route.path))
            if route.method != "GET" or access is None or isinstance(access, Before):
                continue
            answer = stranger.get(url_of(office, route, cache))
            where = answer.headers.get("location", "")
            if answer.status_code != 303 or not where.startswith("/console/sign-in"):
                wrong.append(f"{route}: {answer.status_code} {where}")
    assert not wrong, "signed out, these did not redirect to sign-in:\n  " + "\n  ".join(wrong)


def _posts(office: Office) -> list[tuple[Route, Access]]:
    return [
        (route, ACCESS[(route.method, route.path)])
        for route in console_routes(office)
        if route.method == "POST" and (route.method, route.path) in ACCESS
    ]


@pytest.mark.parametrize("role", [SUPPORT, FINANCE])
def test_each_action_is_403_for_the_roles_it_does_not_admit(office: Office, role: str) -> None:
    client, cache = office.client(role), {}
    token = csrf(client.get("/console/").text)  # a valid token: the role alone refuses
    wrong: list[str] = []
    for route, access in _posts(office):
        if isinstance(access, Before) or role in access:
            continue
        answer = client.post(url_of(office, route, cache), data={"csrf_token": token})
        if answer.status_code != 403:
            wrong.append(f"{route}: {answer.status_code}")
    assert not wrong, f"as {role}, these actions were not refused:\n  " + "\n  ".join(wrong)
    assert client.get("/console/").status_code == 200, "still signed in"


def test_every_action_needs_its_csrf_token_and_a_session(office: Office) -> None:
    admin, cache = office.client(ADMIN), {}
    no_token: list[str] = []
    no_session: list[str] = []
    with httpx.Client(base_url=office.url, follow_redirects=False, timeout=30) as stranger:
        for route, access in _posts(office):
            url = url_of(office, route, cache)
            for fields in ({}, {"csrf_token": "0" * 64}):
                answer = admin.post(url, data=fields)
                if answer.status_code != 403:
                    no_token.append(f"{route} {sorted(fields)}: {answer.status_code}")
            # Signing in needs no session, but its forms are bound to the browser's
            # anchor cookie, which a stranger without cookies lacks: 403.
            expected = 403 if isinstance(access, Before) else 401
            answer = stranger.post(url, data={})
            if answer.status_code != expected:
                no_session.append(f"{route}: {answer.status_code}, expected {expected}")
    assert not no_token, "accepted without a valid CSRF token:\n  " + "\n  ".join(no_token)
    assert not no_session, "without a session:\n  " + "\n  ".join(no_session)
    # None of them ran: the admin is still signed in, the key and the member untouched.
    assert admin.get("/console/").status_code == 200
    assert api_keys.get_key(office.sessions, cache["key_id"]).revoked_at is None
    support = staff.get_staff(office.sessions, office.members[SUPPORT].member.id)
    assert support.disabled_at is None and support.two_factor
