"""Throttling console sign-ins: failed attempts slow, then lock, an account or an address.

Failed attempts (a wrong password for any email, known or not; a wrong code) count for
``lock_for``, per email and per address. After ``slow_after`` failures each attempt must
wait longer after the last one (1 s, 2 s, 4 s ... at most ``longest_wait``); at
``lock_after`` the account (or address) is locked until the oldest of those failures is
``lock_for`` old. A refused attempt is not checked and not counted. An email's count
restarts at its last complete sign-in (not at a right password: that would let a
guesser of second factors reset it at will). Every failure, refusal and lockout is an
audit row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from kakin.services import staff
from kakin.services.errors import ServiceError
from kakin.services.staff import Origin
from models.repositories import staff as staff_sql
from models.staff_tables import StaffMember

UNKNOWN = "-"  # the audit row's entity id for an email no staff member has


@dataclass(frozen=True)
class ThrottlePolicy:
    slow_after: int = 3
    lock_after: int = 10
    address_slow_after: int = 10
    address_lock_after: int = 50
    lock_for: timedelta = timedelta(minutes=15)
    longest_wait: timedelta = timedelta(seconds=30)


@dataclass(frozen=True)
class Refusal:
    locked: bool
    until: datetime


def refusal(
    failures: Sequence[datetime],
    *,
    now: datetime,
    slow_after: int,
    lock_after: int,
    lock_for: timedelta,
    longest_wait: timedelta,
) -> Refusal | None:
    """Whether an attempt now is refused, given the failures of the window, newest first."""
    count = len(failures)
    if count >= lock_after:
        until = failures[lock_after - 1] + lock_for
        if until > now:
            return Refusal(locked=True, until=until)
    if count >= slow_after:
        wait = min(longest_wait, timedelta(seconds=2 ** (count - slow_after)))
        if failures[0] + wait > now:
            return Refusal(locked=False, until=failures[0] + wait)
    return None


class SignInRefusedError(ServiceError):
    """A sign-in step failed or was refused; the message is safe to show as it is.

    ``retry_at`` is set when the attempt was throttled (or ``locked``): not checked at all.
    """

    def __init__(
        self, message: str, *, retry_at: datetime | None = None, locked: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_at = retry_at
        self.locked = locked


def _refused(
    session: Session, email: str, origin: Origin, policy: ThrottlePolicy, now: datetime
) -> tuple[Refusal, str] | None:
    """The refusal in force for this email or address, and its scope, or None."""
    since = now - policy.lock_for
    succeeded = staff_sql.last_success(session, email)
    account = staff_sql.recent_failures(
        session,
        email=email,
        since=max(since, succeeded) if succeeded else since,
        until=now,
        limit=policy.lock_after,
    )
    found = refusal(
        account,
        now=now,
        slow_after=policy.slow_after,
        lock_after=policy.lock_after,
        lock_for=policy.lock_for,
        longest_wait=policy.longest_wait,
    )
    if found is not None:
        return found, "account"
    nearby = staff_sql.recent_failures(
        session, address=origin.address, since=since, until=now,
        limit=policy.address_lock_after,
    )  # fmt: skip
    found = refusal(
        nearby,
        now=now,
        slow_after=policy.address_slow_after,
        lock_after=policy.address_lock_after,
        lock_for=policy.lock_for,
        longest_wait=policy.longest_wait,
    )
    return (found, "address") if found is not None else None


def refuse_if_throttled(
    session: Session,
    email: str,
    row: StaffMember | None,
    stage: str,
    origin: Origin,
    policy: ThrottlePolicy,
    now: datetime,
) -> None:
    found = _refused(session, email, origin, policy, now)
    if found is None:
        return
    refused, scope = found
    outcome = "locked" if refused.locked else "throttled"
    staff_sql.record_attempt(
        session, email=email, address=origin.address, at=now, stage=stage, outcome=outcome
    )
    staff.record(
        session,
        staff_id=row.id if row else UNKNOWN,
        action=f"staff.sign_in_{outcome}",
        actor=f"staff:{email}",
        origin=origin,
        at=now,
        scope=scope,
        until=refused.until.isoformat(),
    )
    session.commit()
    left = math.ceil((refused.until - now).total_seconds())
    if refused.locked:
        raise SignInRefusedError(
            f"Too many failed sign-ins: try again in {math.ceil(left / 60)} minutes",
            retry_at=refused.until,
            locked=True,
        )
    raise SignInRefusedError(
        f"Too many failed sign-ins: wait {left} seconds and try again", retry_at=refused.until
    )


def record_failure(
    session: Session,
    email: str,
    row: StaffMember | None,
    stage: str,
    origin: Origin,
    policy: ThrottlePolicy,
    now: datetime,
    **details: str,
) -> None:
    """Record a failed attempt (and a lockout it starts), commit."""
    staff_sql.record_attempt(
        session, email=email, address=origin.address, at=now, stage=stage, outcome="failed"
    )
    subject = row.id if row else UNKNOWN
    staff.record(
        session,
        staff_id=subject,
        action="staff.sign_in_failed",
        actor=f"staff:{email}",
        origin=origin,
        at=now,
        stage=stage,
        **details,
    )
    session.flush()
    found = _refused(session, email, origin, policy, now)
    if found is not None and found[0].locked:
        staff.record(
            session,
            staff_id=subject,
            action="staff.locked_out",
            actor=f"staff:{email}",
            origin=origin,
            at=now,
            scope=found[1],
            until=found[0].until.isoformat(),
        )
    session.commit()
