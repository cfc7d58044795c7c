"""``kakin staff create|list|disable|reset-2fa``, run as a person would: ``python -m
kakin.cli`` in a subprocess against PostgreSQL."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from kakin.services import staff
from kakin.services.staff import Origin
from models.staff_tables import StaffMember, StaffSession
from models.tables import AuditLog
from tests.console.browsing import PASSWORD, Clock, browser, enrol, password_step

ROOT = Path(__file__).resolve().parents[2]


def kakin(
    postgres_url: str, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "KAKIN_DATABASE_URL": postgres_url, "PYTHONIOENCODING": "utf-8"}
    environment.pop("KAKIN_STAFF_PASSWORD", None)
    return subprocess.run(
        [sys.executable, "-m", "kakin.cli", *args],
        cwd=ROOT, env=environment | (env or {}), input=stdin, capture_output=True,
        text=True, encoding="utf-8", timeout=60,
    )  # fmt: skip


def test_create_the_first_admin_from_stdin_and_list_them(
    postgres_url: str, pg_sessions: sessionmaker[Session]
) -> None:
    email = f"first-admin-{secrets.token_hex(3)}@example.jp"
    made = kakin(postgres_url, "staff", "create", "--email", email.upper(), "--name", "山田 太郎",
                 "--role", "admin", "--password-stdin", stdin=f"{PASSWORD}\n")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert f"<{email}>" in made.stdout and PASSWORD not in made.stdout
    listed = kakin(postgres_url, "staff", "list")
    assert listed.returncode == 0
    line = next(line for line in listed.stdout.splitlines() if email in line)
    assert "admin" in line and "off" in line and "active" in line
    with pg_sessions() as session:
        row = session.scalars(select(StaffMember).where(StaffMember.email == email)).one()
        assert row.password_hash.startswith("$argon2id$") and PASSWORD not in row.password_hash
        created = session.scalars(
            select(AuditLog).where(AuditLog.entity_id == row.id, AuditLog.action == "staff.created")
        ).one()
        assert created.actor.startswith("cli:")


def test_the_password_comes_from_the_environment_and_weak_ones_are_refused(
    postgres_url: str,
) -> None:
    email = f"env-{secrets.token_hex(3)}@example.jp"
    base = ["staff", "create", "--email", email, "--name", "N", "--role", "support"]
    common = kakin(postgres_url, *base, env={"KAKIN_STAFF_PASSWORD": "password1234"})
    assert common.returncode == 2
    assert common.stderr.strip() == (
        "error: That password is one of the most common ones; choose another"
    )
    short = kakin(postgres_url, *base, env={"KAKIN_STAFF_PASSWORD": "short"})
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
    # No terminal, no --password-stdin, no variable: refused, not waiting for a prompt.
    none = kakin(postgres_url, *base)
    assert none.returncode == 2 and "--password-stdin" in none.stderr
    made = kakin(postgres_url, *base, env={"KAKIN_STAFF_PASSWORD": PASSWORD})
    assert made.returncode == 0, made.stderr
    again = kakin(postgres_url, *base, env={"KAKIN_STAFF_PASSWORD": PASSWORD})
    assert again.returncode == 2 and "exists already" in again.stderr


def test_disable_and_reset_two_factor_end_the_sessions(
    postgres_url: str,
    console_url: str,
    pg_sessions: sessionmaker[Session],
    clock: Clock,
) -> None:
    member = staff.create_staff(
        pg_sessions, email=f"cli-{secrets.token_hex(3)}@example.jp", name="Ken", role="support",
        password=PASSWORD, locale="en", actor="test", origin=Origin(), now=clock(),
    )  # fmt: skip
    with browser(console_url) as client:
        enrol(client, member, clock)
        assert client.get("/console/").status_code == 200
        reset = kakin(postgres_url, "staff", "reset-2fa", member.email)
        assert reset.returncode == 0, reset.stderr
        assert client.get("/console/").status_code == 303  # signed out
        # Signing in again asks for enrolment again.
        clock.advance(seconds=30)
        assert password_step(client, member.email).headers["location"] == "/console/2fa/enrol"
        disabled = kakin(postgres_url, "staff", "disable", member.email)
        assert disabled.returncode == 0, disabled.stderr
        assert password_step(client, member.email).status_code == 401
    with pg_sessions() as session:
        live = session.scalars(
            select(StaffSession).where(
                StaffSession.staff_id == member.id, StaffSession.revoked_at.is_(None)
            )
        ).all()
        assert live == []
    unknown = kakin(postgres_url, "staff", "disable", "nobody@example.jp")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "error: no staff member has the email nobody@example.jp"
