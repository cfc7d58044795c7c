"""Signed links for customers: their billing page (every email points to it) and the
card-update page that dunning emails point to.

A link names the subscription, when it expires, and an HMAC of both under a secret
only the server knows, so nobody can see another customer's bills or update their card
by guessing a subscription id, and an old email's link stops working. Both pages take
the same signed query (``subscription``, ``expires``, ``token``): the card-update links
already sent keep working, and each page is the same customer's.
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


def signed_query(subscription_id: str, *, expires: int, secret: str) -> dict[str, str]:
    """The fields of a signed link (its query string, or a form's hidden fields)."""
    return {"subscription": subscription_id, "expires": str(expires),
            "token": token(subscription_id, expires, secret)}  # fmt: skip


def payment_update_url(base: str, subscription_id: str, *, expires: int, secret: str) -> str:
    return f"{base}?{urlencode(signed_query(subscription_id, expires=expires, secret=secret))}"


def billing_page_url(base: str, subscription_id: str, *, expires: int, secret: str) -> str:
    """The customer's billing page (``KAKIN_BILLING_PAGE_URL``), signed as the card-update
    page's links are."""
    return payment_update_url(base, subscription_id, expires=expires, secret=secret)


def problem(
    subscription_id: str, expires: str, given: str, *, secret: str, now: float
) -> str | None:
    """None if the link is genuine and current; ``"invalid"`` (altered, or not ours) or
    ``"expired"`` (genuine, but old: its customer may ask for a fresh one)."""
    try:
        until = int(expires)
    except ValueError:
        return "invalid"
    # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError).
    if not hmac.compare_digest(token(subscription_id, until, secret).encode(), given.encode()):
        return "invalid"
    if until < now:
        return "expired"
    return None


def verify(
    subscription_id: str, expires: str, given: str, *, secret: str, now: float
) -> str | None:
    """None if the link is genuine and current; otherwise why not, in one sentence."""
    found = problem(subscription_id, expires, given, secret=secret, now=now)
    if found == "invalid":
        return "This link is not valid."
    if found == "expired":
        return "This link has expired; the newest email from us has a fresh one."
    return None
