"""The staff console's tables: staff members, their recovery codes, sessions, sign-in attempts.

In a module of their own (on the same ``Base`` as ``models.tables``) because none of
billing reads them. Whatever builds or compares the whole schema (the Alembic env, the
migration test) imports this module beside ``models.tables``.

Nothing here holds a secret in the clear: passwords are argon2 hashes, the TOTP secret
is sealed with the payload keys (``kakin.platform.sealing``), recovery codes and session
tokens are SHA-256 hashes of high-entropy random values.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from models.tables import Base, UTCDateTime, utcnow


class StaffMember(Base):
    """A person who signs in to the console, with a role: admin, support or finance."""

    __tablename__ = "staff_members"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # lower case
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))  # admin | support | finance
    locale: Mapped[str] = mapped_column(String(5), default="ja")  # ja | en
    password_hash: Mapped[str] = mapped_column(String(200))  # argon2id, with its parameters
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Made by an admin's invitation and handed over: to be changed before anything else.
    password_temporary: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Sealed (AES-GCM under the payload keys); set at enrolment, confirmed by a first code.
    totp_secret: Mapped[str | None] = mapped_column(Text)
    totp_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The last 30-second step whose code was accepted: a code is never accepted twice.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class StaffRecoveryCode(Base):
    """One of a staff member's ten single-use recovery codes (its SHA-256 only)."""

    __tablename__ = "staff_recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff_members.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class StaffSession(Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is here.

    ``stage`` says how far sign-in went: ``second_factor`` (password right, code
    awaited), ``enrol`` (password right, two-factor must be set up first) or
    ``signed_in``. Only a ``signed_in`` session opens console pages.
    """

    __tablename__ = "staff_sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff_members.id"), index=True)
    stage: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())  # the absolute timeout
    address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class StaffSignInAttempt(Base):
    """One sign-in attempt (password or second factor): what throttling counts.

    ``email`` is the address typed (lower case), known account or not, so an unknown
    email is throttled like a known one and lockouts tell nothing about who exists.
    ``outcome``: ``succeeded``, ``failed`` (counts towards throttling), ``throttled``
    or ``locked`` (refused unchecked; not counted again).
    """

    __tablename__ = "staff_sign_in_attempts"
    __table_args__ = (
        Index("ix_staff_sign_in_attempts_email_at", "email", "at"),
        Index("ix_staff_sign_in_attempts_address_at", "address", "at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    email: Mapped[str] = mapped_column(String(320))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    stage: Mapped[str] = mapped_column(String(20))  # password | second_factor
    outcome: Mapped[str] = mapped_column(String(20))


class ConsoleFormSubmission(Base):
    """A console form's one-time token, once its form has been sent.

    Each page's forms carry a fresh token; the first POST with it inserts this row and
    acts, a second (a double click, a resent form) finds the row and does nothing.
    Rows older than the tokens' lifetime are pruned: an older token is refused anyway.
    """

    __tablename__ = "console_form_submissions"

    nonce: Mapped[str] = mapped_column(String(40), primary_key=True)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
