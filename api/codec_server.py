"""The codec endpoint: lets the Temporal UI (and CLI) show decrypted payloads to staff.

Temporal's remote-codec protocol: ``POST .../decode`` and ``POST .../encode`` take and
return ``{"payloads": [{"metadata": {k: base64}, "data": base64}]}`` (a ``Payloads``
protobuf as proto3 JSON); errors are 400. The UI sends ``Content-Type`` and
``X-Namespace``, so browsers preflight every call with ``OPTIONS``.

Who may decrypt: staff holding a kakin API key with the ``support`` or ``admin`` role
(``kakin keys create --role support``); ``service`` keys (machines) may not. The key
is checked like the HTTP API checks it (stored hashed, constant-time comparison,
revocation honoured), so there is no second secret to hand out and rotate, and
revoking a person's key also ends their access to decrypted histories. It arrives as

* ``Authorization: Bearer kk_support_...`` (the CLI: ``temporal workflow show
  --codec-endpoint URL --codec-auth "Bearer kk_..."``), or
* the ``kakin_codec_key`` cookie, set by signing in at ``GET .../login`` (the Web UI,
  whose codec settings must have "Include cross-origin credentials" on: the UI only
  sends an ``Authorization`` header of its own OIDC login). The cookie is HttpOnly and
  SameSite=Strict (the UI and this endpoint are the same site: same host, another port).

CORS answers only the configured UI origin (``KAKIN_TEMPORAL_UI_URL``), with
credentials; any other origin gets no CORS headers, so a browser on another site
cannot read an answer. Every decode is logged with the key id and payload count,
never with payload contents.

``kakin codec-server`` serves it on its own; ``kakin up`` mounts it at ``/codec`` on
the API port and starts the dev server with ``--ui-codec-endpoint`` pointing there.
"""

from __future__ import annotations

import html
import logging
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from google.protobuf import json_format
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payloads

from kakin import runtime
from kakin.platform.codec import (
    DecryptionError,
    EncryptionCodec,
    EncryptionKeyError,
    keyring_from_settings,
)
from kakin.services import api_keys
from kakin.services.api_keys import KeyInfo, Role

if TYPE_CHECKING:
    from kakin.platform.settings import Settings

log = logging.getLogger("kakin.codec")

COOKIE = "kakin_codec_key"
COOKIE_MAX_AGE = 8 * 3600  # a working day; sign in again after
MAX_BODY = 8 * 1024 * 1024  # a history's payloads come in many small requests
DECRYPT_ROLES = frozenset({Role.SUPPORT, Role.ADMIN})


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL: what a browser sends as ``Origin``."""
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"not an absolute URL: {url!r}")
    return f"{parts.scheme}://{parts.netloc}".lower()


def _error(status: int, message: str) -> JSONResponse:
    kinds = {400: "invalid_request", 401: "authentication_error", 403: "permission_error"}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        {"error": {"type": kinds.get(status, "api_error"), "message": message}},
        status_code=status,
        headers=headers,
    )


def own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}".lower()


def cookie_path(request: Request) -> str:
    """Where the cookie applies: the mount point (``/codec`` under ``kakin up``), or ``/``."""
    return request.scope.get("root_path") or "/"


def presented_key(request: Request) -> str:
    """The key the request carries: ``Authorization: Bearer``, else the sign-in cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if header and scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if cookie := request.cookies.get(COOKIE):
        return cookie
    raise Refused(401, "A support or admin API key is required (Authorization: Bearer).")


async def read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise Refused(413, f"The body is larger than {MAX_BODY} bytes.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise Refused(413, f"The body is larger than {MAX_BODY} bytes.")
    return body


def login_page(message: str = "", status: int = 200) -> HTMLResponse:
    note = f"<p>{html.escape(message)}</p>" if message else ""
    return HTMLResponse(
        "<!doctype html><meta charset=utf-8><title>kakin codec sign-in</title>"
        "<h1>Decrypt Temporal payloads</h1>"
        f"{note}"
        "<p>Paste a <b>support</b> or <b>admin</b> kakin API key. In the Temporal UI's "
        "codec settings, turn on <i>Include cross-origin credentials</i>.</p>"
        "<form method=post><input type=password name=key autocomplete=off size=60 required>"
        " <button>Sign in</button></form>",
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


async def logout(request: Request) -> Response:
    response = login_page("Signed out.")
    response.delete_cookie(COOKIE, path=cookie_path(request))
    return response


class CodecEndpoints:
    """The endpoints that need the codec and the key database: encode, decode, sign-in."""

    def __init__(self, codec: EncryptionCodec, sessions: sessionmaker[Session]) -> None:
        self.codec = codec
        self.sessions = sessions

    def check_key(self, presented: str) -> KeyInfo:
        key = api_keys.authenticate_with(self.sessions, presented)
        if key is None:
            raise Refused(401, "A valid kakin API key is required.")
        if key.role not in DECRYPT_ROLES:
            raise Refused(403, "Only support and admin keys may decode payloads.")
        return key

    async def authorize(self, request: Request) -> KeyInfo:
        presented = presented_key(request)
        return await run_in_threadpool(self.check_key, presented)

    async def convert(self, request: Request, encode: bool) -> Response:
        try:
            key = await self.authorize(request)
            body = await read_body(request)
            try:
                payloads = json_format.Parse(body.decode("utf-8"), Payloads())
            except (json_format.ParseError, UnicodeDecodeError):
                raise Refused(400, "The body is not a Payloads JSON document.") from None
            try:
                done = await (self.codec.encode if encode else self.codec.decode)(payloads.payloads)
            except (EncryptionKeyError, DecryptionError) as error:
                raise Refused(400, str(error)) from None
        except Refused as refused:
            return _error(refused.status, refused.message)
        log.info(
            "codec %s: %d payloads for key %s (%s), namespace %s",
            "encode" if encode else "decode",
            len(done),
            key.id,
            key.role,
            request.headers.get("x-namespace", "-"),
        )
        return Response(
            json_format.MessageToJson(Payloads(payloads=done)),
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    async def encode(self, request: Request) -> Response:
        return await self.convert(request, encode=True)

    async def decode(self, request: Request) -> Response:
        return await self.convert(request, encode=False)

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return login_page()
        origin = request.headers.get("origin")
        if origin and origin.lower() != own_origin(request):
            return login_page("Sign in from this page.", 403)
        try:
            form = parse_qs((await read_body(request)).decode("utf-8"))
            presented = (form.get("key") or [""])[0].strip()
            if not presented:
                raise Refused(401, "A valid kakin API key is required.")
            key = await run_in_threadpool(self.check_key, presented)
        except Refused as refused:
            return login_page(refused.message, refused.status)
        except UnicodeDecodeError:
            return login_page("The form could not be read.", 400)
        log.info("codec sign-in: key %s (%s)", key.id, key.role)
        response = login_page(f"Signed in with {key.name} ({key.role}) for 8 hours.")
        response.set_cookie(
            COOKIE,
            presented,
            max_age=COOKIE_MAX_AGE,
            path=cookie_path(request),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response


def create_codec_app(
    *,
    codec: EncryptionCodec,
    sessions: sessionmaker[Session],
    ui_origin: str,
) -> Starlette:
    """The codec endpoint around ``codec``, checking keys in ``sessions``' database."""
    allowed_origin = origin_of(ui_origin)
    endpoints = CodecEndpoints(codec, sessions)
    return Starlette(
        routes=[
            Route("/encode", endpoints.encode, methods=["POST"]),
            Route("/decode", endpoints.decode, methods=["POST"]),
            # The protocol only looks at the last path segment ({namespace}/decode).
            Route("/{namespace}/encode", endpoints.encode, methods=["POST"]),
            Route("/{namespace}/decode", endpoints.decode, methods=["POST"]),
            Route("/login", endpoints.login, methods=["GET", "POST"]),
            Route("/logout", logout, methods=["POST"]),
        ],
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=[allowed_origin],
                allow_methods=["POST"],
                allow_headers=["Content-Type", "X-Namespace", "Authorization"],
                allow_credentials=True,
                max_age=600,
            )
        ],
    )


def build_codec_app(settings: Settings) -> Starlette:
    """The codec endpoint wired to the configured keys, database and UI origin."""
    return create_codec_app(
        codec=EncryptionCodec(keyring_from_settings(settings)),
        sessions=runtime.session_factory(settings),
        ui_origin=settings.temporal_ui_url,
    )
