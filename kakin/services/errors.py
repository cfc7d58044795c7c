"""The errors every service raises, by meaning rather than by message.

Faces turn them into their own answers in one place each (the HTTP API's mapping is
in ``api/errors.py``; the CLI prints the message and exits 2), so no face ever picks a
status by matching a message's text. Each message is one sentence a user can act on.
"""

from __future__ import annotations

from models.repositories.common import InvalidCursorError, NotFoundError

__all__ = [
    "ConflictError",
    "InvalidCursorError",
    "InvalidRequestError",
    "MissingError",
    "NotFoundError",
    "RefusedError",
    "ServiceError",
    "UnavailableError",
]


class ServiceError(Exception):
    """Something a service could not do; the message says why in one sentence."""


class InvalidRequestError(ServiceError, ValueError):
    """The request itself is wrong (a bad value, an unknown currency): HTTP 422."""


class ConflictError(ServiceError):
    """The request is valid but the state it acts on does not allow it: HTTP 409."""


class RefusedError(ConflictError):
    """The subscription's workflow refused (its own reason), or it no longer runs: 409."""


class UnavailableError(ServiceError):
    """A component kakin needs (Temporal, Stripe, the database) did not answer: 503."""


class MissingError(NotFoundError, InvalidRequestError):
    """The request names an object that does not exist (a price, a product, a coupon).

    A ``NotFoundError`` (HTTP 404) and an ``InvalidRequestError``, so the callers that
    treat every bad request alike (the CLI, a create whose body names the object) still
    catch it as one.
    """
