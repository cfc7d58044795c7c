"""Two-factor authentication of staff members: TOTP enrolment and codes, recovery codes.

TOTP (RFC 6238, 30-second steps, 6 digits, one step of clock drift either side): the
secret is sealed at rest with the payload keys (``kakin.platform.sealing``), and a
code's step must be later than the last accepted one, so no code works twice. Recovery
codes: ten, 80 random bits each (so a SHA-256 is as good as a slow hash), single use,
shown once. Resetting both (a lost phone) is ``staff.reset_two_factor``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno
from sqlalchemy.orm import Session, sessionmaker

from kakin.platform.codec import Keyring
from kakin.platform.sealing import seal, unseal
from kakin.services.errors import ConflictError
from kakin.services.staff import Origin, StaffInputError, record
from models.repositories import staff as staff_sql
from models.staff_tables import StaffMember

RECOVERY_CODES = 10
ISSUER = "kakin"
TOTP_DRIFT_STEPS = 1  # a phone's clock a step (30 s) early or late still works
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread


@dataclass(frozen=True)
class Enrolment:
    """What the enrolment page shows: the secret as text, its otpauth URI and QR code."""

    secret: str
    uri: str
    qr_svg: str


def _purpose(staff_id: str) -> str:
    return f"staff-totp:{staff_id}"


def _totp(keyring: Keyring, row: StaffMember) -> pyotp.TOTP:
    assert row.totp_secret is not None
    return pyotp.TOTP(unseal(keyring, row.totp_secret, purpose=_purpose(row.id)).decode())


def begin_enrolment(sessions: sessionmaker[Session], keyring: Keyring, staff_id: str) -> Enrolment:
    """The secret to scan: a new one, or the one already waiting for its first code (so
    reloading the page shows the same QR code). ``ConflictError`` once enrolled."""
    with sessions() as session:
        row = staff_sql.staff_member(session, staff_id)
        if row.totp_confirmed_at is not None:
            raise ConflictError("two-factor authentication is set up already")
        if row.totp_secret is None:
            row.totp_secret = seal(
                keyring, pyotp.random_base32(length=32).encode(), purpose=_purpose(row.id)
            )
            session.commit()
        secret = _totp(keyring, row).secret
        uri = pyotp.TOTP(secret).provisioning_uri(name=row.email, issuer_name=ISSUER)
        # Inline SVG: the page loads nothing from anywhere, not even a data: image.
        return Enrolment(
            secret=secret,
            uri=uri,
            qr_svg=segno.make(uri, error="m").svg_inline(
                scale=5, dark="#111", light="#fff", title="QR code"
            ),
        )


def accept_totp(
    session: Session, keyring: Keyring, row: StaffMember, code: str, now: datetime
) -> bool:
    """Whether ``code`` is right now, for a step later than any accepted before (then
    recorded, so the same code is refused next time)."""
    code = code.strip().replace(" ", "")
    if row.totp_secret is None or not re.fullmatch(r"\d{6}", code):
        return False
    totp = _totp(keyring, row)
    current = int(now.timestamp()) // totp.interval
    for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.at(step * totp.interval), code):
            return staff_sql.claim_totp_step(session, row.id, step)
    return False


def confirm_enrolment(
    sessions: sessionmaker[Session],
    keyring: Keyring,
    staff_id: str,
    code: str,
    *,
    origin: Origin,
    now: datetime,
) -> list[str]:
    """Confirm enrolment with a first code; returns the ten new recovery codes (shown
    once). Raises ``InvalidRequestError`` for a wrong code, ``ConflictError`` when
    there is nothing to confirm."""
    with sessions() as session:
        row = staff_sql.staff_member(session, staff_id)
        if row.totp_confirmed_at is not None or row.totp_secret is None:
            raise ConflictError("there is no two-factor enrolment waiting for a code")
        if not accept_totp(session, keyring, row, code, now):
            raise StaffInputError(
                "code_wrong", "The code is wrong; enter the 6 digits the app shows now"
            )
        row.totp_confirmed_at = now
        codes = _replace_codes(session, row.id, now)
        record(
            session,
            staff_id=row.id,
            action="staff.two_factor_enrolled",
            actor=f"staff:{row.email}",
            origin=origin,
            at=now,
        )
        session.commit()
        return codes


# -- recovery codes ----------------------------------------------------------------------


def normalize_recovery_code(code: str) -> str:
    return re.sub(r"[\s-]", "", code).lower()


def looks_like_recovery_code(code: str) -> bool:
    return len(normalize_recovery_code(code)) == 16


def hash_recovery_code(staff_id: str, code: str) -> str:
    return hashlib.sha256(f"{staff_id}:{normalize_recovery_code(code)}".encode()).hexdigest()


def _new_code() -> str:
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def _replace_codes(session: Session, staff_id: str, now: datetime) -> list[str]:
    codes = [_new_code() for _ in range(RECOVERY_CODES)]
    hashes = [hash_recovery_code(staff_id, code) for code in codes]
    staff_sql.replace_recovery_codes(session, staff_id, hashes, at=now)
    return codes


def new_recovery_codes(
    sessions: sessionmaker[Session], staff_id: str, *, origin: Origin, now: datetime
) -> list[str]:
    """Ten new recovery codes (shown once); the old ones stop working."""
    with sessions() as session:
        row = staff_sql.staff_member(session, staff_id)
        if row.totp_confirmed_at is None:
            raise ConflictError("set up two-factor authentication before recovery codes")
        codes = _replace_codes(session, row.id, now)
        record(
            session,
            staff_id=row.id,
            action="staff.recovery_codes_created",
            actor=f"staff:{row.email}",
            origin=origin,
            at=now,
        )
        session.commit()
        return codes


def recovery_codes_left(sessions: sessionmaker[Session], staff_id: str) -> int:
    with sessions() as session:
        return staff_sql.unused_recovery_codes(session, staff_id)
