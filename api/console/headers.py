"""Security headers on every console response (pages, redirects, refusals).

A Content-Security-Policy that allows nothing from another origin (``default-src
'self'``) and no inline script but one carrying the request's nonce (a page that needs
a script says ``<script nonce="{{ csp_nonce }}" src=...>`` or inline with the nonce);
no framing (clickjacking; a document the console frames brings its own policy); no
caching of pages (they show secrets once: recovery codes, the TOTP key); no MIME
sniffing; no referrer outside the console's origin.
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "/console"
STATIC = "/console/static/"


def policy(nonce: str) -> str:
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            "style-src 'self'",
            "img-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


class ConsoleHeaders:
    """Adds the headers to responses under ``prefix`` (``/console``; the customer's
    billing page uses the same policy under its own path); passes everything else by."""

    def __init__(self, app: ASGIApp, prefix: str = PREFIX) -> None:
        self.app = app
        self.prefix = prefix.rstrip("/")
        self.static = f"{self.prefix}/static/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        prefix = self.prefix
        if scope["type"] != "http" or not (path == prefix or path.startswith(f"{prefix}/")):
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["csp_nonce"] = nonce
        https = scope.get("scheme") == "https"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                # A document shown as it is printed (an invoice's page, framed by the
                # console's invoice page) brings its own, stricter policy; pages get this.
                if "Content-Security-Policy" not in headers:
                    headers["Content-Security-Policy"] = policy(nonce)
                    headers["X-Frame-Options"] = "DENY"
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "same-origin"
                if not path.startswith(self.static):  # the stylesheet may be cached
                    headers["Cache-Control"] = "no-store"
                if https:
                    headers["Strict-Transport-Security"] = "max-age=31536000"
            await send(message)

        await self.app(scope, receive, with_headers)
