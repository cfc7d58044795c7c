"""What every router shares: the app's dependencies, API-key roles, request parameters.

One ``Deps`` is built per app by ``create_app`` and kept on ``app.state``; endpoints
reach it with ``DepsDep``, so tests (which build several apps in one process) never
share a database or a Temporal client by accident.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from api import access
from api.errors import ApiError, shown_path
from api.idempotency import MAX_KEY_LENGTH
from api.rate_limit import TokenBuckets, parse_rate, retry_after
from kakin import runtime
from kakin.adapters.rendering import make_template_env
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.platform.settings import Settings
from kakin.services import api_keys
from kakin.services.alert_emails import AlertMail
from kakin.services.api_keys import KeyInfo, Role
from kakin.views.common import Page

log = logging.getLogger("kakin.api")

TemporalSource = Client | Callable[[], Awaitable[Client]]
CONNECT_TIMEOUT = 5.0  # a request waits this long for Temporal before answering 503

Limit = Annotated[int, Query(ge=1, le=100, description="page size, at most 100")]
After = Annotated[str | None, Query(max_length=40, description="the last id of the previous page")]
AfterPayment = Annotated[
    int | None,
    Query(ge=0, le=2**31 - 1, description="the last id of the previous page"),  # an INTEGER id
]
# An id in a path is bounded like an id in a body (40 characters), so a 5,000-character
# one is a 422 naming the parameter, never echoed whole in a 404.
PathId = Annotated[str, Path(min_length=1, max_length=40, description="an id")]
IdemKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        description="a retry with the same key and body gets the first response back",
    ),
]

V = TypeVar("V")


class PageQuery:
    """Which page of a list: ``limit`` rows after ``starting_after`` (newest first)."""

    def __init__(self, limit: int, starting_after: str | int | None) -> None:
        self.limit = limit
        self.starting_after = starting_after

    def read(
        self,
        out: type[V],
        lister: Callable[..., tuple[list[V], bool]],
        *args: Any,
        **filters: Any,
    ) -> Page[V]:
        """``lister(*args, limit=..., starting_after=..., **filters)`` as a ``Page`` of ``out``."""
        rows, more = lister(*args, limit=self.limit, starting_after=self.starting_after, **filters)
        return Page[out](data=rows, has_more=more)  # type: ignore[valid-type]


# ``async`` on purpose, as ``get_deps``: no trip through the thread pool per request.
async def page_query(limit: Limit = 10, starting_after: After = None) -> PageQuery:
    return PageQuery(limit, starting_after)


async def payment_page_query(limit: Limit = 10, starting_after: AfterPayment = None) -> PageQuery:
    """A page of a list whose ids are integers (payments, audit log entries)."""
    return PageQuery(limit, starting_after)


PageDep = Annotated[PageQuery, Depends(page_query)]
PaymentPageDep = Annotated[PageQuery, Depends(payment_page_query)]

_bearer = HTTPBearer(auto_error=False, description="an API key: kakin keys create")


class Deps:
    """The database, Temporal and Stripe an app serves with, and its rate limits.

    ``create_app`` stores one on ``app.state.deps``; endpoints reach it through the
    ``DepsDep`` dependency (``get_deps``), so tests that build several apps in one
    process never share a database or a Temporal client.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        sessions: sessionmaker[Session],
        temporal: TemporalSource,
        stripe: StripeGateway,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.stripe = stripe
        self._temporal = temporal
        self._clients: list[Client] = []
        # Created outside any loop on purpose: a lock binds to the loop that first waits.
        self._client_lock = asyncio.Lock()
        rate = parse_rate(settings.api_rate_limit)
        self.rate_limits = (
            None if rate is None else TokenBuckets(rate=rate, burst=settings.api_rate_burst)
        )

    @functools.cached_property
    def alert_mail(self) -> AlertMail:
        """What the ingestion sends alert emails with, built from the settings on first use."""
        return AlertMail(
            runtime.mailer(self.settings), make_template_env(), runtime.seller(self.settings)
        )

    async def temporal_client(self) -> Client:
        """The Temporal client, connected on first use (inside the server's event loop)."""
        if isinstance(self._temporal, Client):
            return self._temporal
        async with self._client_lock:
            if not self._clients:
                made = self._temporal()
                self._clients.append(await made if inspect.isawaitable(made) else made)
            return self._clients[0]

    async def connected(self) -> Client:
        """The Temporal client, or a 503 when Temporal cannot be reached."""
        try:
            return await asyncio.wait_for(self.temporal_client(), CONNECT_TIMEOUT)
        except Exception as error:
            log.warning("temporal unavailable: %s", error)
            raise ApiError(503, "Temporal cannot be reached; try again shortly") from None


def deps_of(request: Request) -> Deps:
    """The dependencies of the app serving ``request`` (``create_app`` stored them)."""
    deps: Deps = request.app.state.deps
    return deps


async def get_deps(request: Request) -> Deps:
    """``deps_of`` as a FastAPI dependency. ``async`` on purpose: a plain function would
    cost every request a trip through the thread pool, queued behind blocking work."""
    return deps_of(request)


DepsDep = Annotated[Deps, Depends(get_deps)]


def _check(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None,
    allowed: frozenset[Role],
) -> KeyInfo:
    if credentials is None:
        raise ApiError(401, "The request needs an API key in 'Authorization: Bearer'")
    deps = deps_of(request)
    key = api_keys.authenticate_with(deps.sessions, credentials.credentials)
    if key is None:
        raise ApiError(401, "The API key is unknown or revoked")
    request.state.key_id = key.id  # for the access log
    limits = deps.rate_limits
    wait = 0.0 if limits is None else limits.take(key.id)
    if wait > 0:
        raise ApiError(
            429,
            "This API key is over its rate limit; retry after the Retry-After seconds",
            headers={"Retry-After": retry_after(wait)},
        )
    if key.role not in allowed and key.role != Role.ADMIN:
        called = f"{request.method} {shown_path(request.url.path)}"
        raise ApiError(
            403,
            f"A {key.role} key may not call {called}; "
            f"this needs a key with the role {' or '.join(sorted(allowed))}",
        )
    return key


def by_endpoint(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> KeyInfo:
    """The caller's key, admitted by the roles ``api.access.ROLES`` lists for the endpoint.

    Otherwise the request ends with 401 (no valid key), 429 (the key is over its rate,
    ``api.rate_limit``) or 403 (a role the table does not admit for the endpoint).
    """
    route = request.scope["route"]  # the matched APIRoute, its path with {names}
    return _check(request, credentials, access.allowed(request.method, route.path))


# A parameter defaulting to ``KEY`` receives the caller's ``KeyInfo``; every endpoint
# that needs a key uses it, so its roles are the one table in ``api.access``.
KEY: Any = Depends(by_endpoint)


def requester(key: KeyInfo) -> str:
    """Who asked, as the audit log and the workflow's ``requested_by`` keep it."""
    return f"api-key:{key.id} ({key.name})"[:200]
