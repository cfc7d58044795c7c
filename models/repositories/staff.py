"""Staff members, their recovery codes, console sessions and sign-in attempts.

The two single-use checks (a TOTP step, a recovery code) are conditional UPDATEs whose
row count says whether this request won: two requests presenting the same code at the
same moment cannot both pass, on PostgreSQL or SQLite, without any lock held.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from models.repositories.common import get
from models.staff_tables import StaffMember, StaffRecoveryCode, StaffSession, StaffSignInAttempt


def staff_member(session: Session, staff_id: str) -> StaffMember:
    return get(session, StaffMember, staff_id, "staff member")


def staff_by_email(session: Session, email: str) -> StaffMember | None:
    return session.scalars(select(StaffMember).where(StaffMember.email == email)).one_or_none()


def staff_members(session: Session) -> list[StaffMember]:
    return list(session.scalars(select(StaffMember).order_by(StaffMember.created_at)))


def _count(result: object) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


def claim_totp_step(session: Session, staff_id: str, step: int) -> bool:
    """Record ``step`` as the last accepted one, if it is later than the last; True if so."""
    result = session.execute(
        update(StaffMember)
        .where(
            StaffMember.id == staff_id,
            or_(StaffMember.totp_last_step.is_(None), StaffMember.totp_last_step < step),
        )
        .values(totp_last_step=step)
    )
    return _count(result) == 1


# -- recovery codes -----------------------------------------------------------------------


def replace_recovery_codes(
    session: Session, staff_id: str, hashes: Sequence[str], *, at: datetime
) -> None:
    session.execute(delete(StaffRecoveryCode).where(StaffRecoveryCode.staff_id == staff_id))
    session.add_all(
        StaffRecoveryCode(staff_id=staff_id, code_hash=code_hash, created_at=at)
        for code_hash in hashes
    )


def use_recovery_code(session: Session, staff_id: str, code_hash: str, *, at: datetime) -> bool:
    """Mark the unused code with this hash used; True if there was one (this request won)."""
    result = session.execute(
        update(StaffRecoveryCode)
        .where(
            StaffRecoveryCode.staff_id == staff_id,
            StaffRecoveryCode.code_hash == code_hash,
            StaffRecoveryCode.used_at.is_(None),
        )
        .values(used_at=at)
    )
    return _count(result) == 1


def unused_recovery_codes(session: Session, staff_id: str) -> int:
    return int(
        session.scalar(
            select(func.count()).where(
                StaffRecoveryCode.staff_id == staff_id, StaffRecoveryCode.used_at.is_(None)
            )
        )
        or 0
    )


# -- sessions ------------------------------------------------------------------------------


def session_by_token_hash(session: Session, token_hash: str) -> StaffSession | None:
    return session.scalars(
        select(StaffSession).where(StaffSession.token_hash == token_hash)
    ).one_or_none()


def revoke_sessions(
    session: Session, staff_id: str, *, at: datetime, keep: str | None = None
) -> int:
    """Revoke every live session of ``staff_id`` (but ``keep``); how many were revoked."""
    conditions = [StaffSession.staff_id == staff_id, StaffSession.revoked_at.is_(None)]
    if keep is not None:
        conditions.append(StaffSession.id != keep)
    return _count(session.execute(update(StaffSession).where(*conditions).values(revoked_at=at)))


# -- sign-in attempts ----------------------------------------------------------------------


def record_attempt(
    session: Session, *, email: str, address: str, at: datetime, stage: str, outcome: str
) -> None:
    session.add(
        StaffSignInAttempt(email=email, address=address, at=at, stage=stage, outcome=outcome)
    )


def last_success(session: Session, email: str) -> datetime | None:
    return session.scalar(
        select(func.max(StaffSignInAttempt.at)).where(
            StaffSignInAttempt.email == email, StaffSignInAttempt.outcome == "succeeded"
        )
    )


def recent_failures(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    limit: int,
    email: str | None = None,
    address: str | None = None,
) -> list[datetime]:
    """When the latest failed attempts in (``since``, ``until``] happened (by email or
    address), newest first, at most ``limit``. Not after ``until`` (now): an attempt
    dated later by a clock that ran ahead must not lock anyone out until then."""
    conditions = [
        StaffSignInAttempt.outcome == "failed",
        StaffSignInAttempt.at > since,
        StaffSignInAttempt.at <= until,
    ]
    if email is not None:
        conditions.append(StaffSignInAttempt.email == email)
    if address is not None:
        conditions.append(StaffSignInAttempt.address == address)
    query = (
        select(StaffSignInAttempt.at)
        .where(*conditions)
        .order_by(StaffSignInAttempt.at.desc())
        .limit(limit)
    )
    return list(session.scalars(query))
