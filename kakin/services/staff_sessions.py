"""Signing in to the console (password, then the second factor), throttling, sessions.

Sign-in is two steps. The password opens a short *pending* session (``second_factor``,
or ``enrol`` when two-factor is required and not set up yet); a TOTP or recovery code
(or a confirmed enrolment) turns it into a ``signed_in`` one under a new token, so a
token seen before sign-in finished is worth nothing after. The browser's cookie holds
the token; the database keeps its SHA-256.

Throttling (slowing, then locking, an account or an address after failed attempts) is
``kakin.services.staff_throttle``.

Sessions end after ``idle`` without a request, ``absolute`` after sign-in, on sign-out,
on a password change (every other session of that person), when the account is
disabled or its two-factor reset.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.orm import Session, sessionmaker

from kakin.platform.codec import Keyring
from kakin.services import staff, staff_throttle, staff_two_factor
from kakin.services.errors import ServiceError
from kakin.services.staff import Origin, StaffInfo, StaffInputError
from kakin.services.staff_throttle import SignInRefusedError, ThrottlePolicy
from models.repositories import staff as staff_sql
from models.repositories.common import new_id
from models.staff_tables import StaffMember, StaffSession


class Stage(StrEnum):
    SECOND_FACTOR = "second_factor"
    ENROL = "enrol"
    SIGNED_IN = "signed_in"


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=12)
    pending: timedelta = timedelta(minutes=10)  # to enter the code or finish enrolment
    require_two_factor: bool = True


@dataclass(frozen=True)
class ConsolePolicy:
    sessions: SessionPolicy = field(default_factory=SessionPolicy)
    throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)


class SessionEndedError(ServiceError):
    """The pending session is gone (expired, revoked, or at another stage): sign in again."""


@dataclass(frozen=True)
class Started:
    """A session just created or promoted: the cookie's token (never stored) and stage."""

    token: str
    session_id: str
    stage: Stage
    staff: StaffInfo


@dataclass(frozen=True)
class Current:
    """The session a request carries, valid now."""

    session_id: str
    stage: Stage
    staff: StaffInfo


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_session(
    session: Session,
    row: StaffMember,
    stage: Stage,
    *,
    origin: Origin,
    now: datetime,
    life: timedelta,
) -> Started:
    token = secrets.token_urlsafe(32)
    made = StaffSession(
        id=new_id("ss"),
        token_hash=token_hash(token),
        staff_id=row.id,
        stage=str(stage),
        created_at=now,
        last_seen_at=now,
        expires_at=now + life,
        address=origin.address[:64],
        user_agent=origin.user_agent[:300],
    )
    session.add(made)
    return Started(token=token, session_id=made.id, stage=stage, staff=staff.info(row))


def _signed_in(
    session: Session, row: StaffMember, origin: Origin, now: datetime, **details: str
) -> None:
    row.last_sign_in_at = now
    staff_sql.record_attempt(
        session,
        email=row.email,
        address=origin.address,
        at=now,
        stage="signed_in",
        outcome="succeeded",
    )
    staff.record(
        session,
        staff_id=row.id,
        action="staff.signed_in",
        actor=f"staff:{row.email}",
        origin=origin,
        at=now,
        **details,
    )


# -- the two steps ---------------------------------------------------------------------------


def sign_in(
    sessions: sessionmaker[Session],
    *,
    email: str,
    password: str,
    origin: Origin,
    now: datetime,
    policy: ConsolePolicy,
) -> Started:
    """Check the password; a pending session (or, with two-factor not required and not
    set up, a signed-in one). Raises ``SignInRefusedError``."""
    email = staff.normalize_email(email)[:320]
    with sessions() as session:
        row = staff_sql.staff_by_email(session, email)
        staff_throttle.refuse_if_throttled(
            session, email, row, "password", origin, policy.throttle, now
        )
        if row is None:
            staff.spend_a_password_check(password)
            staff_throttle.record_failure(
                session, email, None, "password", origin, policy.throttle, now, why="unknown"
            )
            raise SignInRefusedError("The email or password is wrong")
        if not staff.password_matches(row.password_hash, password) or row.disabled_at:
            why = "disabled" if row.disabled_at else "password"
            staff_throttle.record_failure(
                session, email, row, "password", origin, policy.throttle, now, why=why
            )
            raise SignInRefusedError("The email or password is wrong")
        staff.rehash_if_needed(row, password)
        staff_sql.record_attempt(
            session,
            email=email,
            address=origin.address,
            at=now,
            stage="password",
            outcome="password_ok",
        )
        rules = policy.sessions
        if row.totp_confirmed_at is not None:
            started = _new_session(
                session, row, Stage.SECOND_FACTOR, origin=origin, now=now, life=rules.pending
            )
        elif rules.require_two_factor:
            started = _new_session(
                session, row, Stage.ENROL, origin=origin, now=now, life=rules.pending
            )
        else:
            started = _new_session(
                session, row, Stage.SIGNED_IN, origin=origin, now=now, life=rules.absolute
            )
            _signed_in(session, row, origin, now, method="password")
        session.commit()
        return started


def _pending(
    session: Session, token: str, stage: Stage, now: datetime
) -> tuple[StaffSession, StaffMember]:
    found = staff_sql.session_by_token_hash(session, token_hash(token))
    if (
        found is None
        or found.stage != stage
        or found.revoked_at is not None
        or found.expires_at <= now
    ):
        raise SessionEndedError("The sign-in has expired; sign in again")
    row = staff_sql.staff_member(session, found.staff_id)
    if row.disabled_at is not None:
        raise SessionEndedError("The sign-in has expired; sign in again")
    return found, row


def _promote(
    session: Session,
    pending: StaffSession,
    row: StaffMember,
    *,
    origin: Origin,
    now: datetime,
    policy: SessionPolicy,
) -> Started:
    """The pending session ends; a signed-in one under a new token replaces it."""
    pending.revoked_at = now
    return _new_session(session, row, Stage.SIGNED_IN, origin=origin, now=now, life=policy.absolute)


def second_factor(
    sessions: sessionmaker[Session],
    keyring: Keyring,
    *,
    token: str,
    code: str,
    origin: Origin,
    now: datetime,
    policy: ConsolePolicy,
) -> Started:
    """Finish signing in with a TOTP code or a recovery code.

    Raises ``SessionEndedError`` (sign in again) or ``SignInRefusedError``.
    """
    with sessions() as session:
        pending, row = _pending(session, token, Stage.SECOND_FACTOR, now)
        staff_throttle.refuse_if_throttled(
            session, row.email, row, "second_factor", origin, policy.throttle, now
        )
        if staff_two_factor.looks_like_recovery_code(code):
            method = "recovery_code"
            hashed = staff_two_factor.hash_recovery_code(row.id, code)
            accepted = staff_sql.use_recovery_code(session, row.id, hashed, at=now)
        else:
            method = "totp"
            accepted = staff_two_factor.accept_totp(session, keyring, row, code, now)
        if not accepted:
            staff_throttle.record_failure(
                session,
                row.email,
                row,
                "second_factor",
                origin,
                policy.throttle,
                now,
                method=method,
            )
            raise SignInRefusedError("The code is wrong or has been used already")
        started = _promote(session, pending, row, origin=origin, now=now, policy=policy.sessions)
        left = staff_sql.unused_recovery_codes(session, row.id)
        _signed_in(session, row, origin, now, method=method, recovery_codes_left=str(left))
        session.commit()
        return started


def finish_enrolment(
    sessions: sessionmaker[Session],
    keyring: Keyring,
    *,
    token: str,
    code: str,
    origin: Origin,
    now: datetime,
    policy: ConsolePolicy,
) -> tuple[Started, list[str]]:
    """Confirm the enrolment forced at sign-in and finish signing in: the signed-in
    session and the ten recovery codes (shown once). Raises ``SessionEndedError``,
    ``InvalidRequestError`` (a wrong code, counted as a failed attempt)."""
    with sessions() as session:
        pending, row = _pending(session, token, Stage.ENROL, now)
        staff_throttle.refuse_if_throttled(
            session, row.email, row, "second_factor", origin, policy.throttle, now
        )
        staff_id, email = row.id, row.email
    try:
        codes = staff_two_factor.confirm_enrolment(
            sessions, keyring, staff_id, code, origin=origin, now=now
        )
    except StaffInputError:
        with sessions() as session:
            row = staff_sql.staff_member(session, staff_id)
            staff_throttle.record_failure(
                session, email, row, "second_factor", origin, policy.throttle, now, method="enrol"
            )
        raise
    with sessions() as session:
        pending, row = _pending(session, token, Stage.ENROL, now)
        started = _promote(session, pending, row, origin=origin, now=now, policy=policy.sessions)
        _signed_in(session, row, origin, now, method="enrolment")
        session.commit()
        return started, codes


# -- sessions ---------------------------------------------------------------------------------


def current(
    sessions: sessionmaker[Session], token: str, *, now: datetime, policy: SessionPolicy
) -> Current | None:
    """The session behind ``token`` if it is valid now (its idle clock restarts), else None.

    A pending session is returned too (its stage says so); it expires on its own clock.
    """
    with sessions() as session:
        found = staff_sql.session_by_token_hash(session, token_hash(token))
        if found is None or found.revoked_at is not None or found.expires_at <= now:
            return None
        stage = Stage(found.stage)
        if stage is Stage.SIGNED_IN and now - found.last_seen_at >= policy.idle:
            return None
        row = staff_sql.staff_member(session, found.staff_id)
        if row.disabled_at is not None:
            return None
        found.last_seen_at = now
        session.commit()
        return Current(session_id=found.id, stage=stage, staff=staff.info(row))


def sign_out(sessions: sessionmaker[Session], token: str, *, origin: Origin, now: datetime) -> None:
    """End the session behind ``token`` (nothing if there is none)."""
    with sessions() as session:
        found = staff_sql.session_by_token_hash(session, token_hash(token))
        if found is None or found.revoked_at is not None:
            return
        found.revoked_at = now
        row = staff_sql.staff_member(session, found.staff_id)
        staff.record(
            session,
            staff_id=row.id,
            action="staff.signed_out",
            actor=f"staff:{row.email}",
            origin=origin,
            at=now,
        )
        session.commit()
