"""How kakin acknowledges a Stripe webhook delivery."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class WebhookReceived(BaseModel):
    """A Stripe event acknowledged; ``duplicate``: seen before, so nothing changed."""

    received: Literal[True] = True
    id: str
    duplicate: bool
