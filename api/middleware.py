"""Two ASGI middlewares every request passes: the access log, and the body guard.

``AccessLog`` (outermost) gives each request an id (a well-formed ``X-Request-Id``
from the caller, or a new one; a card-like one is replaced), echoes it in the
response's ``X-Request-Id``, and writes one JSON line per request to the
``kakin.api.access`` logger: request id, method, path, status, the API key's id and
the duration. Nothing else: no query string, no body, no email or name; a card-like
number in the path is masked. An exception that escapes an endpoint is logged here,
with the request id, and answered with the one-sentence 500 (the connection stays
open for the client's next request).

``BodyGuard`` refuses, before any endpoint runs (so nothing is stored, replayed or
logged): a body over the size limit (413); a card number anywhere in the path, the
query, the ``Idempotency-Key`` (which is stored) or a ``/v1`` body, except the
test-mode ``card_number`` of ``POST /v1/customers`` (422, see ``api.pan_guard``); a
NUL character in any string or the URL (422: no field means one, and PostgreSQL text
cannot hold it); JSON nested absurdly deep (422). The webhook's body is Stripe's and
is not scanned; the card-update page (outside ``/v1``) takes form posts and is not
scanned either.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from typing import Any
from urllib.parse import unquote_plus

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import pan_guard
from api.errors import INTERNAL_ERROR, error_response
from api.request_context import request_id
from api.watched_send import WatchedSend

access_log = logging.getLogger("kakin.api.access")
log = logging.getLogger("kakin.api")

REQUEST_ID_HEADER = "X-Request-Id"
_GOOD_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
SCANNED_PREFIX = "/v1/"
NOT_SCANNED = ("/v1/webhooks/",)  # bodies signed by someone else; we take them as sent
_NOT_JSON = object()
# PostgreSQL text cannot hold NUL, and no field of ours means one: refused up front.
NUL_MESSAGE = "{where} contains a NUL character (U+0000), which no field accepts"


def new_request_id() -> str:
    return f"req_{secrets.token_hex(12)}"


class AccessLog:
    """Request ids and one structured access-log line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        good = _GOOD_ID.fullmatch(given) and not pan_guard.has_card_number(given)
        rid = given if good else new_request_id()
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = rid
        token = request_id.set(rid)
        started = time.perf_counter()

        def add_id(start: Message) -> None:
            MutableHeaders(scope=start)[REQUEST_ID_HEADER] = rid

        send_with_id = WatchedSend(send, on_start=add_id)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Caught here, inside the request: Starlette's last-resort handler runs after
            # this middleware has let go of the request id, and re-raises, which makes
            # uvicorn log a bare traceback and drop the kept-alive connection.
            log.exception(
                "unhandled error on %s %s (request %s)",
                scope["method"],
                pan_guard.redact(scope["path"])[:300],
                rid,
            )
            if send_with_id.started:
                raise  # half a response has gone out: only closing the connection ends it
            await error_response(500, INTERNAL_ERROR, type="api_error")(
                scope, receive, send_with_id
            )
        finally:
            access_log.info(
                "%s",
                json.dumps(
                    {
                        "event": "request",
                        "request_id": rid,
                        "method": scope["method"],
                        "path": pan_guard.redact(scope["path"])[:300],
                        "status": send_with_id.status,
                        "key_id": state.get("key_id"),
                        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    },
                    ensure_ascii=False,
                ),
            )
            request_id.reset(token)


class BodyGuard:
    """The body size limit and the card-number refusal."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        if "\x00" in path or "%00" in query:
            await self._refuse(scope, receive, send, 422, NUL_MESSAGE.format(where="The URL"))
            return
        if pan_guard.has_card_number(path):
            await self._refuse(scope, receive, send, 422, pan_guard.refusal("The path"))
            return
        if query and pan_guard.has_card_number(unquote_plus(query)):
            await self._refuse(scope, receive, send, 422, pan_guard.refusal("The query string"))
            return
        headers = dict(scope["headers"])
        idempotency_key = headers.get(b"idempotency-key", b"").decode("latin-1")
        if pan_guard.has_card_number(idempotency_key):
            why = pan_guard.refusal("The Idempotency-Key header")
            await self._refuse(scope, receive, send, 422, why)
            return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left; nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and path.startswith(SCANNED_PREFIX) and not path.startswith(NOT_SCANNED):
            refused = scan_body(body, method=scope["method"], path=path)
            if refused is not None:
                await self._refuse(scope, receive, send, 422, refused)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_body_bytes
        size = f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit} bytes"
        message = f"The request body is larger than {size}, the most this API accepts"
        await self._refuse(scope, receive, send, 413, message)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, why: str) -> None:
        await error_response(status, why)(scope, receive, send)


def scan_body(body: bytes, *, method: str, path: str) -> str | None:
    """The refusal message when ``body`` holds a card number (or nests absurdly), else None."""
    if pan_guard.plainly_clean(body):  # most bodies: no parsing, no walk over every string
        return None
    return scan_body_fully(body, method=method, path=path)


def scan_body_fully(body: bytes, *, method: str, path: str) -> str | None:
    """``scan_body`` without the fast path: parse the body and look at every string."""
    try:
        parsed: Any = json.loads(body)
    except RecursionError:
        return f"The request body nests more than {pan_guard.MAX_DEPTH} levels deep"
    except ValueError:
        parsed = _NOT_JSON
    if parsed is _NOT_JSON:
        text = body.decode("utf-8", "replace")
        if pan_guard.has_card_number(text) or pan_guard.has_card_number(unquote_plus(text)):
            return pan_guard.refusal("The request body")
        return None
    try:
        where = pan_guard.find_in_json(parsed, method=method, path=path)
        if where is not None:
            return pan_guard.refusal(where)
        for place, item in pan_guard.scalars(parsed):
            if isinstance(item, str) and "\x00" in item:
                return NUL_MESSAGE.format(where=".".join(place) or "The request body")
    except pan_guard.TooDeepError:
        return f"The request body nests more than {pan_guard.MAX_DEPTH} levels deep"
    return None
