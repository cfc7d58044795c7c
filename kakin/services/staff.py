"""Staff members of the console: accounts, roles, passwords, the audit rows they leave.

Every face (``kakin staff``, the console) goes through here. Two-factor (TOTP and
recovery codes) is in ``kakin.services.staff_two_factor``; signing in and sessions in
``kakin.services.staff_sessions``, its throttling in ``kakin.services.staff_throttle``.
Each change is written to the audit log in its own transaction, as
``entity_type="staff"`` with the actor (``staff:<email>`` for a person acting on the
console, ``cli:<user>`` for the command line) and the request's address.

Passwords: at least 12 characters, not among the 30,000 most common (the ranked list
that the ``zxcvbn`` package ships), hashed with argon2id (argon2-cffi's defaults,
rehashed on sign-in when those change).
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session, sessionmaker
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from kakin.services.errors import ConflictError, InvalidRequestError, NotFoundError
from models.repositories import audit as audit_sql
from models.repositories import staff as staff_sql
from models.repositories.common import new_id
from models.staff_tables import StaffMember

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256  # argon2 takes any length; a megabyte "password" is an attack
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

_hasher = PasswordHasher()


class StaffRole(StrEnum):
    """What a staff member may do; each role may do all the roles below it may.

    finance reads the dashboard, reports and invoices; support also acts on
    subscriptions and invoices in dunning; admin also manages the catalog, staff, API
    keys and run-time settings.
    """

    ADMIN = "admin"
    SUPPORT = "support"
    FINANCE = "finance"


LOCALES = ("ja", "en")


class StaffInputError(InvalidRequestError):
    """A refused password, code or account detail, with ``reason`` (and ``limit``) for a
    face that says it in the staff member's language: ``password_short``,
    ``password_long``, ``password_common``, ``password_personal``,
    ``password_current_wrong``, ``password_same``, ``code_wrong``, ``email_invalid``,
    ``name_invalid``."""

    def __init__(self, reason: str, message: str, *, limit: int = 0) -> None:
        super().__init__(message)
        self.reason = reason
        self.limit = limit


@dataclass(frozen=True)
class Origin:
    """Where a request came from, for the audit log and for throttling."""

    address: str = ""
    user_agent: str = ""

    def details(self) -> dict[str, str]:
        return {"address": self.address, "user_agent": self.user_agent[:300]}


@dataclass(frozen=True)
class StaffInfo:
    """A staff member as every face shows them: never a hash or a secret."""

    id: str
    email: str
    name: str
    role: StaffRole
    locale: str
    two_factor: bool  # enrolment confirmed
    created_at: datetime
    disabled_at: datetime | None
    last_sign_in_at: datetime | None
    # An invitation's password, still to be changed: the console asks for that first.
    password_temporary: bool = False

    @property
    def actor(self) -> str:
        """Who did it, as the audit log keeps it."""
        return f"staff:{self.email}"


def info(row: StaffMember) -> StaffInfo:
    return StaffInfo(
        id=row.id,
        email=row.email,
        name=row.name,
        role=StaffRole(row.role),
        locale=row.locale,
        two_factor=row.totp_confirmed_at is not None,
        created_at=row.created_at,
        disabled_at=row.disabled_at,
        last_sign_in_at=row.last_sign_in_at,
        password_temporary=row.password_temporary,
    )


def record(
    session: Session,
    *,
    staff_id: str,
    action: str,
    actor: str,
    origin: Origin,
    at: datetime,
    **details: Any,
) -> None:
    """One audit row about a staff member (``staff_id`` "-" for an unknown account)."""
    audit_sql.audit(
        session,
        entity_type="staff",
        entity_id=staff_id,
        action=action,
        actor=actor[:200],
        occurred_at=at,
        details={**origin.details(), **details},
    )


# -- passwords --------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    return frozenset(FREQUENCY_LISTS["passwords"])


def check_password(password: str, *, email: str = "", name: str = "") -> None:
    """Raise ``InvalidRequestError`` saying what is wrong with a new password."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffInputError(
            "password_short",
            f"A password needs at least {MIN_PASSWORD_LENGTH} characters",
            limit=MIN_PASSWORD_LENGTH,
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise StaffInputError(
            "password_long",
            f"A password may have at most {MAX_PASSWORD_LENGTH} characters",
            limit=MAX_PASSWORD_LENGTH,
        )
    folded = password.casefold()
    if folded in _common_passwords():
        raise StaffInputError(
            "password_common", "That password is one of the most common ones; choose another"
        )
    for own in (email, email.partition("@")[0], name):
        if len(own) >= 4 and own.casefold() in folded:
            raise StaffInputError(
                "password_personal", "A password may not contain your email address or name"
            )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=1)
def _decoy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def spend_a_password_check(password: str) -> None:
    """Verify against a decoy hash: an unknown email takes as long as a wrong password."""
    password_matches(_decoy_hash(), password)


def rehash_if_needed(row: StaffMember, password: str) -> None:
    """After a successful check: store a new hash if argon2's parameters have changed."""
    if _hasher.check_needs_rehash(row.password_hash):
        row.password_hash = _hasher.hash(password)


# -- accounts ----------------------------------------------------------------------------


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _role(role: str) -> StaffRole:
    try:
        return StaffRole(role)
    except ValueError:
        roles = ", ".join(r.value for r in StaffRole)
        raise InvalidRequestError(f"role {role!r} is not one of {roles}") from None


def create_staff(
    sessions: sessionmaker[Session],
    *,
    email: str,
    name: str,
    role: str,
    password: str,
    locale: str = "ja",
    actor: str,
    origin: Origin,
    now: datetime,
    temporary: bool = False,
) -> StaffInfo:
    """A new staff member who signs in with ``password`` (and enrols two-factor then).

    Raises:
        InvalidRequestError: a bad email, name, role, locale or password.
        ConflictError: a staff member with this email exists.
    """
    email = normalize_email(email)
    if len(email) > 320 or not _EMAIL.fullmatch(email):
        raise StaffInputError("email_invalid", f"{email!r} is not an email address")
    if not name.strip() or len(name) > 200:
        raise StaffInputError(
            "name_invalid", "a staff member needs a name of at most 200 characters", limit=200
        )
    if locale not in LOCALES:
        raise InvalidRequestError(f"locale must be one of {', '.join(LOCALES)}")
    staff_role = _role(role)
    check_password(password, email=email, name=name.strip())
    with sessions() as session:
        if staff_sql.staff_by_email(session, email) is not None:
            raise ConflictError(f"a staff member with the email {email} exists already")
        row = StaffMember(
            id=new_id("staff"),
            email=email,
            name=name.strip(),
            role=str(staff_role),
            locale=locale,
            password_hash=hash_password(password),
            password_changed_at=now,
            password_temporary=temporary,
            created_at=now,
        )
        session.add(row)
        session.flush()
        record(
            session,
            staff_id=row.id,
            action="staff.created",
            actor=actor,
            origin=origin,
            at=now,
            email=email,
            role=str(staff_role),
        )
        session.commit()
        return info(row)


@dataclass(frozen=True)
class Invited:
    """A staff member invited by an admin, and the temporary password to hand them."""

    member: StaffInfo
    password: str  # shown once to the admin, stored only as its argon2 hash


def temporary_password() -> str:
    """Four groups of five letters and digits (about 100 bits), easy to read out:
    no 0/O or 1/l/I to confuse."""
    alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4))


def invite_staff(
    sessions: sessionmaker[Session],
    *,
    email: str,
    name: str,
    role: str,
    locale: str,
    actor: str,
    origin: Origin,
    now: datetime,
) -> Invited:
    """``create_staff`` with a temporary password made here, for an admin to hand over.

    The invited person signs in with it, enrols two-factor as everyone does, and must
    change it on their password page before the console shows anything else. Raises as
    ``create_staff`` does.
    """
    while True:  # a random password may, very rarely, contain the name or the email
        password = temporary_password()
        try:
            check_password(password, email=normalize_email(email), name=name.strip())
        except StaffInputError:
            continue
        break
    member = create_staff(
        sessions, email=email, name=name, role=role, password=password, locale=locale,
        actor=actor, origin=origin, now=now, temporary=True,
    )  # fmt: skip
    return Invited(member=member, password=password)


def list_staff(sessions: sessionmaker[Session]) -> list[StaffInfo]:
    with sessions() as session:
        return [info(row) for row in staff_sql.staff_members(session)]


def _by_email(session: Session, email: str) -> StaffMember:
    row = staff_sql.staff_by_email(session, normalize_email(email))
    if row is None:
        raise NotFoundError(f"no staff member has the email {normalize_email(email)}")
    return row


def get_staff(sessions: sessionmaker[Session], staff_id: str) -> StaffInfo:
    with sessions() as session:
        return info(staff_sql.staff_member(session, staff_id))


def disable_staff(
    sessions: sessionmaker[Session], email: str, *, actor: str, origin: Origin, now: datetime
) -> StaffInfo:
    """Disable a staff member (idempotent): no more sign-ins, every session ends now.

    Raises ``ConflictError`` when ``actor`` is that staff member: an admin disabling
    themself could leave the console without an admin, and a typo would lock them out.
    """
    with sessions() as session:
        row = _by_email(session, email)
        if actor == info(row).actor:
            raise ConflictError("a staff member cannot disable their own account")
        if row.disabled_at is None:
            row.disabled_at = now
            ended = staff_sql.revoke_sessions(session, row.id, at=now)
            record(
                session,
                staff_id=row.id,
                action="staff.disabled",
                actor=actor,
                origin=origin,
                at=now,
                sessions_ended=ended,
            )
            session.commit()
        return info(row)


def reset_two_factor(
    sessions: sessionmaker[Session], email: str, *, actor: str, origin: Origin, now: datetime
) -> StaffInfo:
    """Forget a staff member's authenticator and recovery codes (a lost phone).

    Their sessions end; at the next sign-in they enrol again (forced while two-factor is
    required).
    """
    with sessions() as session:
        row = _by_email(session, email)
        row.totp_secret = None
        row.totp_confirmed_at = None
        row.totp_last_step = None
        staff_sql.replace_recovery_codes(session, row.id, [], at=now)
        ended = staff_sql.revoke_sessions(session, row.id, at=now)
        record(
            session,
            staff_id=row.id,
            action="staff.two_factor_reset",
            actor=actor,
            origin=origin,
            at=now,
            sessions_ended=ended,
        )
        session.commit()
        return info(row)


def change_password(
    sessions: sessionmaker[Session],
    staff_id: str,
    *,
    current: str,
    new: str,
    keep_session_id: str | None,
    origin: Origin,
    now: datetime,
) -> int:
    """Change a password (the current one checked first); every other session of that
    person ends. Returns how many ended. Raises ``InvalidRequestError``."""
    with sessions() as session:
        row = staff_sql.staff_member(session, staff_id)
        if not password_matches(row.password_hash, current):
            record(
                session,
                staff_id=row.id,
                action="staff.password_change_refused",
                actor=f"staff:{row.email}",
                origin=origin,
                at=now,
            )
            session.commit()
            raise StaffInputError("password_current_wrong", "The current password is wrong")
        if hmac.compare_digest(current.encode(), new.encode()):
            raise StaffInputError(
                "password_same", "The new password must differ from the current one"
            )
        check_password(new, email=row.email, name=row.name)
        row.password_hash = hash_password(new)
        row.password_changed_at = now
        row.password_temporary = False
        ended = staff_sql.revoke_sessions(session, row.id, at=now, keep=keep_session_id)
        record(
            session,
            staff_id=row.id,
            action="staff.password_changed",
            actor=f"staff:{row.email}",
            origin=origin,
            at=now,
            sessions_ended=ended,
        )
        session.commit()
        return ended
