"""Who may call what: every endpoint of the API and the key roles it admits, one table.

``ROLES`` is the only place the answer is written. The routers' key dependency
(``api.deps.KEY``) looks the request's endpoint up in it; ``document`` writes each
endpoint's roles into its OpenAPI description (and ``x-roles``); the tests call every
endpoint with every role against it and check the README's role table and the
OpenAPI document against it, so the code and the docs cannot drift apart.

Admin keys may call everything. A ``service`` key (a shop's backend) runs the
customer's side: it creates customers and subscriptions, reports usage, reads
everything, and cancels or changes a plan on its customer's request (as Stripe lets a
secret key do). A ``support`` key (staff) reads everything and runs the support
actions: pause, resume, cancel, change plan, grace, acting on an invoice in dunning,
credit notes. Both may apply coupons and add items; only admin changes the catalog.
A ``finance`` key reads the revenue analytics (and the exchange rates they convert
with) and nothing else: it changes nothing, and the customers' names and emails stay
with the roles that run the billing. Only admin enters exchange rates.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from kakin.services.api_keys import Role

SERVICE, SUPPORT, ADMIN, FINANCE = Role.SERVICE, Role.SUPPORT, Role.ADMIN, Role.FINANCE
ORDER = (SERVICE, SUPPORT, FINANCE, ADMIN)  # how the roles are listed in messages and docs
# Every role that runs the billing; finance reads only the analytics (ANALYTICS_KEYS).
ANY_KEY = frozenset({SERVICE, SUPPORT, ADMIN})
SERVICE_KEYS = frozenset({SERVICE, ADMIN})
SUPPORT_KEYS = frozenset({SUPPORT, ADMIN})
ADMIN_KEYS = frozenset({ADMIN})
ANALYTICS_KEYS = frozenset({SUPPORT, FINANCE, ADMIN})

ROLES: dict[tuple[str, str], frozenset[Role]] = {
    # customers
    ("POST", "/v1/customers"): SERVICE_KEYS,
    ("GET", "/v1/customers"): ANY_KEY,
    ("GET", "/v1/customers/{customer_id}"): ANY_KEY,
    ("PATCH", "/v1/customers/{customer_id}"): SERVICE_KEYS,
    ("GET", "/v1/customers/{customer_id}/invoices"): ANY_KEY,
    ("GET", "/v1/customers/{customer_id}/payments"): ANY_KEY,
    # the catalog
    ("POST", "/v1/prices"): ADMIN_KEYS,
    ("GET", "/v1/prices"): ANY_KEY,
    ("GET", "/v1/prices/{price_id}"): ANY_KEY,
    ("POST", "/v1/prices/{price_id}/archive"): ADMIN_KEYS,
    ("POST", "/v1/metrics"): ADMIN_KEYS,
    ("GET", "/v1/metrics"): ANY_KEY,
    ("GET", "/v1/metrics/{metric_id}"): ANY_KEY,
    ("POST", "/v1/tax-rates"): ADMIN_KEYS,
    ("GET", "/v1/tax-rates"): ANY_KEY,
    ("GET", "/v1/tax-rates/{tax_rate_id}"): ANY_KEY,
    ("POST", "/v1/coupons"): ADMIN_KEYS,
    ("GET", "/v1/coupons"): ANY_KEY,
    ("GET", "/v1/coupons/{coupon_id}"): ANY_KEY,
    # subscriptions
    ("POST", "/v1/subscriptions"): SERVICE_KEYS,
    ("GET", "/v1/subscriptions"): ANY_KEY,
    ("GET", "/v1/subscriptions/{subscription_id}"): ANY_KEY,
    ("POST", "/v1/subscriptions/{subscription_id}/cancel"): ANY_KEY,
    ("POST", "/v1/subscriptions/{subscription_id}/change_plan"): ANY_KEY,
    ("GET", "/v1/subscriptions/{subscription_id}/change_plan/preview"): ANY_KEY,
    ("POST", "/v1/subscriptions/{subscription_id}/discounts"): ANY_KEY,
    ("POST", "/v1/subscriptions/{subscription_id}/items"): ANY_KEY,
    ("POST", "/v1/subscriptions/{subscription_id}/pause"): SUPPORT_KEYS,
    ("POST", "/v1/subscriptions/{subscription_id}/resume"): SUPPORT_KEYS,
    ("POST", "/v1/subscriptions/{subscription_id}/grace"): SUPPORT_KEYS,
    # usage
    ("POST", "/v1/usage"): SERVICE_KEYS,
    ("GET", "/v1/subscriptions/{subscription_id}/usage"): ANY_KEY,
    ("GET", "/v1/subscriptions/{subscription_id}/upcoming-invoice"): ANY_KEY,
    # alerts: the customer's side (service) sets its budgets, support raises a cap
    ("POST", "/v1/subscriptions/{subscription_id}/alerts"): ANY_KEY,
    ("GET", "/v1/subscriptions/{subscription_id}/alerts"): ANY_KEY,
    ("GET", "/v1/subscriptions/{subscription_id}/alerts/{alert_id}"): ANY_KEY,
    ("PATCH", "/v1/subscriptions/{subscription_id}/alerts/{alert_id}"): ANY_KEY,
    ("DELETE", "/v1/subscriptions/{subscription_id}/alerts/{alert_id}"): ANY_KEY,
    ("POST", "/v1/customers/{customer_id}/alerts"): ANY_KEY,
    ("GET", "/v1/customers/{customer_id}/alerts"): ANY_KEY,
    ("GET", "/v1/customers/{customer_id}/alerts/{alert_id}"): ANY_KEY,
    ("PATCH", "/v1/customers/{customer_id}/alerts/{alert_id}"): ANY_KEY,
    ("DELETE", "/v1/customers/{customer_id}/alerts/{alert_id}"): ANY_KEY,
    # invoices
    ("GET", "/v1/invoices"): ANY_KEY,
    ("GET", "/v1/invoices/{invoice_id}"): ANY_KEY,
    ("GET", "/v1/invoices/{invoice_id}/html"): ANY_KEY,
    ("GET", "/v1/invoices/{invoice_id}/pdf"): ANY_KEY,
    ("POST", "/v1/invoices/{invoice_id}/void"): SUPPORT_KEYS,
    ("POST", "/v1/invoices/{invoice_id}/mark_uncollectible"): SUPPORT_KEYS,
    ("POST", "/v1/invoices/{invoice_id}/retry"): SUPPORT_KEYS,
    ("POST", "/v1/invoices/{invoice_id}/credit-notes"): SUPPORT_KEYS,
    ("GET", "/v1/invoices/{invoice_id}/credit-notes"): ANY_KEY,
    ("GET", "/v1/audit-log"): SUPPORT_KEYS,
    # revenue analytics (read-only)
    ("GET", "/v1/analytics/mrr"): ANALYTICS_KEYS,
    ("GET", "/v1/analytics/revenue"): ANALYTICS_KEYS,
    ("GET", "/v1/analytics/customers"): ANALYTICS_KEYS,
    ("GET", "/v1/analytics/receivables"): ANALYTICS_KEYS,
    ("GET", "/v1/analytics/dunning"): ANALYTICS_KEYS,
    ("GET", "/v1/analytics/forecast"): ANALYTICS_KEYS,
    # the exchange rates of the reporting currency: entered by admin, read with the figures
    ("PUT", "/v1/exchange-rates"): ADMIN_KEYS,
    ("GET", "/v1/exchange-rates"): ANALYTICS_KEYS,
    # outgoing webhooks: where kakin sends events, and their secrets (admin only)
    ("POST", "/v1/webhook-endpoints"): ADMIN_KEYS,
    ("GET", "/v1/webhook-endpoints"): ADMIN_KEYS,
    ("GET", "/v1/webhook-endpoints/{endpoint_id}"): ADMIN_KEYS,
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): ADMIN_KEYS,
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): ADMIN_KEYS,
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate_secret"): ADMIN_KEYS,
    ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries"): ADMIN_KEYS,
    ("GET", "/v1/webhook-deliveries/{delivery_id}"): ADMIN_KEYS,
    ("POST", "/v1/webhook-deliveries/{delivery_id}/resend"): ADMIN_KEYS,
}

# No key: probes ask for health and readiness, and Stripe signs its webhooks instead.
PUBLIC = frozenset({("GET", "/v1/health"), ("GET", "/v1/ready"), ("POST", "/v1/webhooks/stripe")})


def listed(roles: frozenset[Role]) -> list[str]:
    """The roles in the order the docs list them."""
    return [str(role) for role in ORDER if role in roles]


def allowed(method: str, path: str) -> frozenset[Role]:
    """The roles that may call ``method path`` (a route's path, with its ``{names}``)."""
    try:
        return ROLES[(method, path)]
    except KeyError:
        # A route using api.deps.KEY without a row here: the app is not built at all.
        raise LookupError(f"{method} {path} is not in api.access.ROLES") from None


def calls_of(dependant: Dependant) -> set[object]:
    """Every dependency ``dependant`` calls, its dependencies' own included
    (``api.writes.WriteDep`` checks the key inside)."""
    calls: set[object] = set()
    for sub in dependant.dependencies:
        calls |= {sub.call, *calls_of(sub)}
    return calls


def document(router: APIRouter, dependency: object) -> None:
    """Write the roles of each of the router's endpoints into its OpenAPI description
    and ``x-roles`` (before the router is included in the app).

    Raises ``LookupError`` when a route that checks keys with ``dependency`` (the
    table's own, ``api.deps.KEY``) has no row in ``ROLES``: the app is not built at all,
    rather than answer that endpoint with an error.
    """
    for route in router.routes:
        # Module-level routers are documented once, however many apps include them.
        if not isinstance(route, APIRoute) or "x-roles" in (route.openapi_extra or {}):
            continue
        for method in sorted(route.methods or ()):
            if (method, route.path) not in ROLES:
                if dependency in calls_of(route.dependant):
                    allowed(method, route.path)  # raises, naming the route
                continue
            roles = listed(ROLES[(method, route.path)])
            line = f"Roles: {', '.join(roles)}."
            route.description = f"{route.description}\n\n{line}" if route.description else line
            route.openapi_extra = {**(route.openapi_extra or {}), "x-roles": roles}
