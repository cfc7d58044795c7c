"""``GET /metrics`` and the middleware that counts every request by its route template.

The endpoint serves the process's Prometheus metrics (``kakin.platform.metrics``) as
text. It needs no API key: it holds counts and durations by closed labels, no personal
data, and Prometheus scrapes without credentials (keep the port off the internet, as
the rest of the API's operating endpoints). It is not in the OpenAPI document: it is
for Prometheus, not for API clients.

``RequestMetrics`` is the outermost middleware, so what it times is what the caller
waited for, refusals of the body guard included. The route label is the matched
route's template (``/v1/customers/{customer_id}``), never the raw path, which would
hold ids and make a series per customer; a path no route serves is ``unmatched``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from api.watched_send import WatchedSend
from kakin.platform import metrics

PATH = "/metrics"


async def serve_metrics(request: Request) -> Response:
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)


def mount(app: FastAPI) -> None:
    """``GET /metrics`` on ``app``, and the request metrics around everything it serves."""
    app.add_api_route(PATH, serve_metrics, methods=["GET"], include_in_schema=False)
    app.add_middleware(RequestMetrics)


class RequestMetrics:
    """``kakin_http_requests_total`` and ``kakin_http_request_seconds`` for each request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # As they came: routing into a mounted app rewrites the scope's root path.
        root, path = scope.get("root_path", ""), scope["path"]
        watching = WatchedSend(send)
        try:
            await self.app(scope, receive, watching)
        finally:
            took = time.perf_counter() - started
            metrics.http_request(
                scope["method"], self._route(scope, root, path), watching.status, took
            )

    def _route(self, scope: Scope, root: str, path: str) -> str:
        """The template of the route that served ``scope`` (the router leaves it in the
        scope; under a mounted app, after the mount's path, which routing added to the
        root path); for a request refused before routing (the body guard), the route it
        was for; ``unmatched`` when none serves the path."""
        route = scope.get("route")
        if route is not None:
            template = _template(route)
            if template is None:
                return metrics.UNMATCHED
            mounted: str = scope.get("root_path", "")
            return (mounted[len(root) :] if mounted.startswith(root) else "") + template
        router = getattr(scope.get("app"), "router", None)
        if router is None:
            return metrics.UNMATCHED
        asked = {"type": "http", "method": scope["method"], "path": path, "root_path": root}
        return _match(router.routes, asked) or metrics.UNMATCHED


def _template(route: Any) -> str | None:
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) and template else None


def _match(routes: Iterable[Any], scope: Scope, prefix: str = "") -> str | None:
    """The template of the first route in ``routes`` matching ``scope``'s path and method
    (or only its path: a 405), looking into included routers (FastAPI 0.16x keeps an
    included router as one entry holding its routes)."""
    for candidate in routes:
        included = getattr(candidate, "original_router", None)
        if included is not None:
            inner = getattr(getattr(candidate, "include_context", None), "prefix", "") or ""
            path: str = scope["path"]
            if inner and not path.startswith(inner):
                continue
            found = _match(included.routes, {**scope, "path": path[len(inner) :]}, prefix + inner)
            if found is not None:
                return found
            continue
        match, child = candidate.matches(scope)
        if match != Match.NONE:
            template = _template(child.get("route", candidate))
            return prefix + template if template else None
    return None
