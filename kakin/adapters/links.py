"""Signed links for customers: the card-update page that dunning emails point to.

A link names the subscription, when it expires, and an HMAC of both under a secret
only the server knows, so nobody can update another customer's card by guessing a
subscription id, and an old email's link stops working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlencode

LINK_LIFETIME_SECONDS = 30 * 86_400


def token(subscription_id: str, expires: int, secret: str) -> str:
    if not secret:
        raise ValueError("KAKIN_LINK_SECRET must be set to sign customer links")
    digest = hmac.new(secret.encode(), f"{subscription_id}:{expires}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()[:24]).decode().rstrip("=")


def payment_update_url(base: str, subscription_id: str, *, expires: int, secret: str) -> str:
    query = urlencode(
        {"subscription": subscription_id, "expires": expires,
         "token": token(subscription_id, expires, secret)}
    )  # fmt: skip
    return f"{base}?{query}"


def verify(
    subscription_id: str, expires: str, given: str, *, secret: str, now: float
) -> str | None:
    """None if the link is genuine and current; otherwise why not, in one sentence."""
    try:
        until = int(expires)
    except ValueError:
        return "This link is not valid."
    # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError).
    if not hmac.compare_digest(token(subscription_id, until, secret).encode(), given.encode()):
        return "This link is not valid."
    if until < now:
        return "This link has expired; the newest email from us has a fresh one."
    return None
