"""What every router shares: the app's dependencies, API-key roles, request parameters.

One ``Deps`` is built per app by ``create_app``; routers take it, so tests (which build
several apps in one process) never share a database or a Temporal client by accident.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from api import access
from api.errors import ApiError, shown_path
from api.idempotency import MAX_KEY_LENGTH
from api.rate_limit import TokenBuckets, parse_rate, retry_after
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.platform.settings import Settings
from kakin.services import api_keys
from kakin.services.api_keys import KeyInfo, Role

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

_bearer = HTTPBearer(auto_error=False, description="an API key: kakin keys create")


class Deps:
    """The database, Temporal and Stripe an app serves with, and its key checks.

    ``key`` is a FastAPI dependency: a parameter defaulting to it receives the
    caller's ``KeyInfo``, or the request ends with 401 (no valid key), 429 (the key is
    over its rate, ``api.rate_limit``) or 403 (a role that ``api.access.ROLES`` does not
    admit for the endpoint). ``any_key``, ``service_key``, ``support_key`` and
    ``admin_key`` check fixed roles instead (admin keys pass every check); an endpoint
    belongs in the table, so its routers use ``key``.
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
        self.key: Any = Depends(self.by_endpoint())
        self.any_key: Any = Depends(self.require(Role.SERVICE, Role.SUPPORT))
        self.service_key: Any = Depends(self.require(Role.SERVICE))
        self.support_key: Any = Depends(self.require(Role.SUPPORT))
        self.admin_key: Any = Depends(self.require())

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

    def by_endpoint(self) -> Callable[..., KeyInfo]:
        """A dependency admitting the roles ``api.access.ROLES`` lists for the endpoint."""
        check = self._checker()

        def dependency(
            request: Request,
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        ) -> KeyInfo:
            route = request.scope["route"]  # the matched APIRoute, its path with {names}
            return check(request, credentials, access.allowed(request.method, route.path))

        return dependency

    def require(self, *roles: Role) -> Callable[..., KeyInfo]:
        """A dependency admitting keys with one of ``roles`` (or admin)."""
        allowed = frozenset({Role.ADMIN, *roles})
        check = self._checker()

        def dependency(
            request: Request,
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        ) -> KeyInfo:
            return check(request, credentials, allowed)

        return dependency

    def _checker(
        self,
    ) -> Callable[[Request, HTTPAuthorizationCredentials | None, frozenset[Role]], KeyInfo]:
        sessions = self.sessions
        limits = self.rate_limits

        def check(
            request: Request,
            credentials: HTTPAuthorizationCredentials | None,
            allowed: frozenset[Role],
        ) -> KeyInfo:
            if credentials is None:
                raise ApiError(401, "The request needs an API key in 'Authorization: Bearer'")
            with sessions() as session:
                key = api_keys.authenticate(session, credentials.credentials)
            if key is None:
                raise ApiError(401, "The API key is unknown or revoked")
            request.state.key_id = key.id  # for the access log
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

        return check


def requester(key: KeyInfo) -> str:
    """Who asked, as the audit log and the workflow's ``requested_by`` keep it."""
    return f"api-key:{key.id} ({key.name})"[:200]
