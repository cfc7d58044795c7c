"""The dunning ladder: what happens, and when, after a renewal payment fails.

Day 0 is the moment the renewal charge was declined. The default ladder:

======  =====================================================================
day 0   status ``past_due``; email ``payment_failed`` (with the amount due)
day 3   retry the charge; if it fails again, email ``payment_reminder``
day 7   retry the charge; if it fails again, email ``payment_reminder``
day 14  status ``suspended`` (service stops, nothing new is billed); email ``suspended``
day 21  last retry; if it fails, email ``final_notice``
day 30  status ``canceled``, invoice ``uncollectible``; email ``canceled_unpaid``
======  =====================================================================

A successful retry or a new payment method ends dunning at once (status ``active``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class DunningAction(StrEnum):
    RETRY = "retry"
    SUSPEND = "suspend"
    CANCEL = "cancel"


# The email each action sends: for a retry, only when the retry fails again.
STEP_EMAIL: dict[DunningAction, str] = {
    DunningAction.RETRY: "payment_reminder",
    DunningAction.SUSPEND: "suspended",
    DunningAction.CANCEL: "canceled_unpaid",
}
FIRST_FAILURE_EMAIL = "payment_failed"
LAST_RETRY_EMAIL = "final_notice"


@dataclass(frozen=True)
class DunningStep:
    day: int
    action: DunningAction


@dataclass(frozen=True)
class DunningPolicy:
    steps: list[DunningStep] = field(
        default_factory=lambda: [
            DunningStep(3, DunningAction.RETRY),
            DunningStep(7, DunningAction.RETRY),
            DunningStep(14, DunningAction.SUSPEND),
            DunningStep(21, DunningAction.RETRY),
            DunningStep(30, DunningAction.CANCEL),
        ]
    )

    def __post_init__(self) -> None:
        days = [step.day for step in self.steps]
        if days != sorted(days) or len(set(days)) != len(days) or any(d <= 0 for d in days):
            raise ValueError("dunning steps need distinct, increasing days after day 0")
        if not self.steps or self.steps[-1].action != DunningAction.CANCEL:
            raise ValueError("the dunning ladder must end with a cancel step")
        if sum(step.action == DunningAction.CANCEL for step in self.steps) != 1:
            raise ValueError("the dunning ladder has exactly one cancel step")

    def email_after_failed_retry(self, step_index: int) -> str:
        """The email a failed retry at ``step_index`` sends: the last retry warns harder."""
        later_retries = [s for s in self.steps[step_index + 1 :] if s.action == DunningAction.RETRY]
        return STEP_EMAIL[DunningAction.RETRY] if later_retries else LAST_RETRY_EMAIL


def format_policy(policy: DunningPolicy) -> str:
    """The text form ``parse_policy`` reads: ``"3:retry,7:retry,...,30:cancel"``."""
    return ",".join(f"{step.day}:{step.action}" for step in policy.steps)


def parse_policy(text: str) -> DunningPolicy:
    """Parse ``"3:retry,7:retry,14:suspend,21:retry,30:cancel"`` into a policy.

    Raises ``ValueError`` with the offending part named.
    """
    steps: list[DunningStep] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        day_text, sep, action_text = part.partition(":")
        if not sep:
            raise ValueError(f"dunning step {part!r} must look like DAY:ACTION, e.g. 3:retry")
        try:
            day = int(day_text)
            action = DunningAction(action_text.strip().lower())
        except ValueError:
            raise ValueError(
                f"dunning step {part!r}: DAY is a whole number and ACTION one of "
                f"{', '.join(a.value for a in DunningAction)}"
            ) from None
        steps.append(DunningStep(day, action))
    return DunningPolicy(steps=steps)
