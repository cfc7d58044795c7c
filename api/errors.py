"""One error shape for every failure: ``{"error": {"type": ..., "message": ...}}``.

The message is one sentence saying what is wrong (and, for bad input, naming the
field); no stack trace or internal detail ever reaches the client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.pan_guard import redact
from api.request_context import request_id
from kakin.services.errors import (
    ConflictError,
    InvalidCursorError,
    InvalidRequestError,
    NotFoundError,
    ServiceError,
    UnavailableError,
)
from kakin.services.stripe_events import WebhookRejectedError

log = logging.getLogger("kakin.api")

STATUS_TYPES = {
    400: "invalid_request",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "invalid_request",
    422: "invalid_request",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "unavailable",
}
INTERNAL_ERROR = "An internal error occurred; it has been logged."

# The one mapping from the services' typed errors to statuses. An error takes the
# status of the first class of its MRO listed here, so a subclass may pick another
# (a MissingError is an InvalidRequestError that answers 404; a refused credit note is
# a ConflictError first). RefusedError is a ConflictError.
SERVICE_STATUSES: dict[type[Exception], int] = {
    WebhookRejectedError: 400,  # a delivery Stripe signed wrongly or that is not an event
    NotFoundError: 404,
    InvalidCursorError: 422,
    InvalidRequestError: 422,
    ConflictError: 409,
    UnavailableError: 503,
}
SERVICE_ERRORS = (ServiceError, NotFoundError, InvalidCursorError)


def status_of(error: Exception) -> int:
    """The HTTP status of a service's typed error (500 for anything else)."""
    for kind in type(error).__mro__:
        if kind in SERVICE_STATUSES:
            return SERVICE_STATUSES[kind]
    return 500


class ErrorDetail(BaseModel):
    type: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    """Raised by endpoints; becomes the JSON error body with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or STATUS_TYPES.get(status, "api_error")
        self.headers = headers


def error_body(status: int, message: str, *, type: str | None = None) -> dict[str, Any]:
    """The JSON body of an error response (the message as one sentence)."""
    kind = type or STATUS_TYPES.get(status, "api_error")
    return {"error": {"type": kind, "message": _sentence(message)}}


def error_response(
    status: int,
    message: str,
    *,
    type: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = error_body(status, message, type=type)
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, headers=headers or None)


SHOWN_PATH = 120  # the most of a request's path an error message repeats


def shown_path(path: str) -> str:
    """The path as a message repeats it: card-like numbers masked, cut to ``SHOWN_PATH``."""
    path = redact(path)
    return path if len(path) <= SHOWN_PATH else f"{path[: SHOWN_PATH - 1]}…"


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith(".") else f"{text}."


def describe_validation_error(error: dict[str, Any]) -> str:
    """One sentence naming the field, from one pydantic error."""
    location = [str(part) for part in error.get("loc", ())]
    where = location[0] if location else "body"
    field = ".".join(location[1:]) or where
    kind = str(error.get("type", ""))
    message = str(error.get("msg", "is invalid"))
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "json_invalid":
        return "The request body is not valid JSON."
    if kind == "missing":
        if field == "body":
            return "The request needs a JSON body."
        return f"{field} is required."
    if kind == "extra_forbidden":
        return f"{field} is not an accepted field."
    if kind == "model_attributes_type" or (kind == "dict_type" and field == "body"):
        return "The request body must be a JSON object."
    message = message[:1].lower() + message[1:]
    return _sentence(f"{field} is invalid: {message}")


# A face with pages of its own (the console) answers refusals on its paths as an HTML
# page: it lists (path prefix, page maker) in ``app.state.error_pages``. The maker gets
# the status and the sentence (None for a path nothing serves). Everything else is JSON.
ErrorPage = Callable[[Request, int, str | None], Response]


def _answer(
    request: Request,
    status: int,
    message: str,
    *,
    page_message: str | None = None,
    type: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    pages: list[tuple[str, ErrorPage]] = getattr(request.app.state, "error_pages", [])
    for prefix, page in pages:
        if request.url.path.startswith(prefix):
            return page(request, status, page_message)
    return error_response(status, message, type=type, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, error: ApiError) -> JSONResponse:
        return error_response(
            error.status, _sentence(error.message), type=error.type, headers=error.headers
        )

    # A service's typed error: its status from SERVICE_STATUSES, its message as it is.
    async def _service_error(request: Request, error: Exception) -> Response:
        status = status_of(error)
        if status == 500:  # a ServiceError no entry covers: a bug here, not the caller's
            return await _unexpected(request, error)
        message = _sentence(str(error))
        return _answer(request, status, message, page_message=message)

    for kind in SERVICE_ERRORS:
        app.add_exception_handler(kind, _service_error)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, error: RequestValidationError) -> JSONResponse:
        errors = list(error.errors())
        message = describe_validation_error(errors[0]) if errors else "The request is invalid."
        return error_response(422, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 404:
            message = f"There is no endpoint at {request.method} {shown_path(request.url.path)}."
        elif error.status_code == 405:
            message = f"{request.method} is not allowed on {shown_path(request.url.path)}."
        else:
            message = _sentence(str(error.detail))
        return _answer(request, error.status_code, message, headers=error.headers)

    # The last resort: api.middleware.AccessLog logs and answers an unhandled error with
    # its request id first; this only sees one raised outside it.
    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> Response:
        log.exception(
            "unhandled error on %s %s (request %s)",
            request.method,
            redact(request.url.path),
            request_id.get(),
        )
        return _answer(request, 500, INTERNAL_ERROR, type="api_error")


RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing, unknown or revoked API key"},
    403: {"model": ErrorBody, "description": "the key's role may not do this"},
    404: {"model": ErrorBody, "description": "no such object"},
    422: {"model": ErrorBody, "description": "invalid input; the message names the field"},
}
