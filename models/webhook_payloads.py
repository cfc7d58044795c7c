"""What travels between the webhook workflows and their activities (Temporal payloads).

Plain frozen dataclasses: the workflows import this module (passed through the
sandbox), so it imports nothing but the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class DispatchInput:
    """``WebhookDispatchWorkflow``'s input: how often it looks at the ledger when not
    poked, and how many looks before it continues as new (keeping its history short)."""

    poll_seconds: float = 2.0
    looks_per_run: int = 500


@dataclass(frozen=True)
class DeliveryInput:
    """One run of a delivery: run 0 is the first, run ``n`` the n-th resend."""

    delivery_id: str
    run: int = 0


@dataclass(frozen=True)
class TryInput:
    """One try of a delivery run, at ``scheduled_at`` (workflow time, on the schedule)."""

    delivery_id: str
    run: int
    number: int
    scheduled_at: datetime
    last: bool = False


@dataclass(frozen=True)
class TryOutcome:
    """What a try came to. ``final``: the run is over (delivered, the endpoint gone or
    disabled, or the last try failed); else wait ``retry_after_seconds`` if the
    receiver asked (Retry-After), or the schedule's next wait."""

    status: str
    final: bool
    retry_after_seconds: float | None = None


@dataclass(frozen=True)
class Dispatched:
    """The deliveries a look at the ledger made (or found not yet started); ``more``:
    the look stopped at its batch size, look again at once."""

    delivery_ids: list[str] = field(default_factory=list)
    more: bool = False
