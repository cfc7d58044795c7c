"""Signing in to the console: password, then TOTP (computed here) or a recovery code.

Driven with httpx against the real app in-process and PostgreSQL; time moves through the
console's injectable clock, never by sleeping.
"""

from __future__ import annotations

import pyotp
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from kakin import runtime
from kakin.platform.settings import EMBEDDED_CONSOLE_SECRET, ConfigurationError
from models.staff_tables import StaffMember
from models.tables import AuditLog
from tests.console.browsing import (
    PASSWORD,
    Clock,
    browser,
    codes_of,
    enrol,
    new_staff,
    password_step,
    post,
    secret_of,
    sign_in,
)
from tests.console.conftest import console_settings


def audit_actions(sessions: sessionmaker[Session], staff_id: str) -> list[str]:
    with sessions() as session:
        rows = session.scalars(
            select(AuditLog).where(AuditLog.entity_id == staff_id).order_by(AuditLog.id)
        )
        return [row.action for row in rows]


def audit_rows(sessions: sessionmaker[Session], staff_id: str, action: str) -> list[AuditLog]:
    with sessions() as session:
        return list(
            session.scalars(
                select(AuditLog)
                .where(AuditLog.entity_id == staff_id, AuditLog.action == action)
                .order_by(AuditLog.id)  # recording order: "the last" means the newest
            )
        )


def test_the_first_sign_in_enrols_two_factor_and_shows_the_recovery_codes_once(
    console_url: str, pg_sessions: sessionmaker[Session], clock: Clock
) -> None:
    member = new_staff(pg_sessions, clock)
    with browser(console_url) as client:
        # Before enrolment the pending session opens no page: it is sent back to enrol.
        first = password_step(client, member.email)
        assert first.headers["location"] == "/console/2fa/enrol"
        assert client.get("/console/").headers["location"] == "/console/2fa/enrol"
        page = client.get("/console/2fa/enrol")
        assert "<svg" in page.text and 'class="segno"' in page.text  # the QR code, inline
        secret = secret_of(page.text)
        # Reloading shows the same secret (a phone that scanned it still works).
        assert secret_of(client.get("/console/2fa/enrol").text) == secret
        wrong = post(client, "/console/2fa/enrol", page.text, code="000000")
        assert wrong.status_code == 422
        done = post(client, "/console/2fa/enrol", page.text, code=pyotp.TOTP(secret).at(clock()))
        assert done.status_code == 200, done.text
        enrolled = codes_of(done.text)
        assert len(enrolled) == 10 and len(set(enrolled)) == 10
        home = client.get("/console/")
        assert home.status_code == 200
        assert member.email in home.text and "Signed in as" in home.text
        # The codes are never shown again: the page now only counts them.
        again = client.get("/console/recovery-codes")
        assert "You have 10 unused recovery codes" in again.text
        assert not any(code in again.text for code in enrolled)
    with pg_sessions() as session:
        row = session.get(StaffMember, member.id)
        assert row is not None and row.totp_confirmed_at is not None
        assert row.totp_secret is not None and secret not in row.totp_secret  # sealed
    assert audit_actions(pg_sessions, member.id)[-2:] == ["staff.two_factor_enrolled",
                                                          "staff.signed_in"]  # fmt: skip


def test_sign_in_with_the_password_then_a_totp_code(
    console_url: str, pg_sessions: sessionmaker[Session], clock: Clock
) -> None:
    member = new_staff(pg_sessions, clock)
    with browser(console_url) as first:
        enrolled = enrol(first, member, clock)
    with browser(console_url) as client:
        done = sign_in(client, enrolled, clock)
        assert done.status_code == 303 and done.headers["location"] == "/console/"
        assert client.get("/console/").status_code == 200
    rows = audit_rows(pg_sessions, member.id, "staff.signed_in")
    assert rows[-1].actor == f"staff:{member.email}"
    assert rows[-1].details["method"] == "totp"
    assert rows[-1].details["address"] == "127.0.0.1"


def test_a_code_is_refused_the_second_time_and_a_wrong_code_always(
    console_url: str, pg_sessions: sessionmaker[Session], clock: Clock
) -> None:
    member = new_staff(pg_sessions, clock)
    with browser(console_url) as first:
        enrolled = enrol(first, member, clock)
    with browser(console_url) as client:
        assert sign_in(client, enrolled, clock).status_code == 303
        used = enrolled.code(clock)
    with browser(console_url) as again:
        assert password_step(again, member.email).status_code == 303
        page = again.get("/console/sign-in/2fa").text
        reused = post(again, "/console/sign-in/2fa", page, code=used)
        assert reused.status_code == 401
        assert "wrong or has been used already" in reused.text
        wrong = str((int(used) + 1) % 1_000_000).zfill(6)
        refused = post(again, "/console/sign-in/2fa", reused.text, code=wrong)
        assert refused.status_code == 401
        assert again.get("/console/").status_code == 303  # still not signed in
    failed = audit_rows(pg_sessions, member.id, "staff.sign_in_failed")
    assert [row.details["stage"] for row in failed] == ["second_factor", "second_factor"]


def test_a_recovery_code_signs_in_once(
    console_url: str, pg_sessions: sessionmaker[Session], clock: Clock
) -> None:
    member = new_staff(pg_sessions, clock)
    with browser(console_url) as first:
        enrolled = enrol(first, member, clock)
    code = enrolled.recovery_codes[3]
    with browser(console_url) as client:
        password_step(client, member.email)
        page = client.get("/console/sign-in/2fa").text
        done = post(client, "/console/sign-in/2fa", page, code=code.upper().replace("-", " "))
        assert done.status_code == 303
        assert "You have 9 unused" in client.get("/console/recovery-codes").text
    with browser(console_url) as again:
        password_step(again, member.email)
        page = again.get("/console/sign-in/2fa").text
        assert post(again, "/console/sign-in/2fa", page, code=code).status_code == 401
    signed_in = audit_rows(pg_sessions, member.id, "staff.signed_in")
    assert signed_in[-1].details["method"] == "recovery_code"
    assert signed_in[-1].details["recovery_codes_left"] == "9"


def test_repeated_failures_slow_then_lock_the_account_with_audit_rows(
    console_url: str, pg_sessions: sessionmaker[Session], clock: Clock
) -> None:
    member = new_staff(pg_sessions, clock)
    with browser(console_url) as client:
        for _ in range(3):
            assert password_step(client, member.email, "not-the-password!").status_code == 401
        # From the third failure on, the next try must wait (1 s, 2 s, 4 s ...).
        throttled = password_step(client, member.email, PASSWORD)
        assert throttled.status_code == 429 and throttled.headers["retry-after"] == "1"
        for _ in range(7):
            clock.advance(seconds=31)
            assert password_step(client, member.email, "not-the-password!").status_code == 401
        # Ten failures: locked for 15 minutes, even with the right password.
        clock.advance(seconds=31)
        locked = password_step(client, member.email, PASSWORD)
        assert locked.status_code == 429
        assert "try again in" in locked.text
        clock.advance(minutes=15)
        assert password_step(client, member.email, PASSWORD).status_code == 303
    actions = audit_actions(pg_sessions, member.id)
    assert actions.count("staff.sign_in_failed") == 10
    assert actions.count("staff.locked_out") == 1
    assert actions.count("staff.sign_in_throttled") == 1
    assert actions.count("staff.sign_in_locked") == 1
    lockout = audit_rows(pg_sessions, member.id, "staff.locked_out")[0]
    assert lockout.details["scope"] == "account" and lockout.details["address"] == "127.0.0.1"


def test_an_unknown_email_is_refused_like_a_wrong_password(console_url: str, clock: Clock) -> None:
    with browser(console_url) as client:
        refused = password_step(client, "nobody-at-all@example.jp")
        assert refused.status_code == 401
        assert "The email or password is wrong" in refused.text


def test_changing_the_password_ends_every_other_session(
    console_url: str, pg_sessions: sessionmaker[Session], clock: Clock
) -> None:
    member = new_staff(pg_sessions, clock)
    with browser(console_url) as laptop, browser(console_url) as phone:
        enrolled = enrol(laptop, member, clock)
        assert sign_in(phone, enrolled, clock).status_code == 303
        assert phone.get("/console/").status_code == 200
        page = laptop.get("/console/password").text
        short = post(laptop, "/console/password", page, current_password=PASSWORD,
                     new_password="short", confirm_password="short")  # fmt: skip
        assert short.status_code == 422 and "at least 12 characters" in short.text
        new = "a-brand-new-passphrase-77"
        changed = post(laptop, "/console/password", page, current_password=PASSWORD,
                       new_password=new, confirm_password=new)  # fmt: skip
        assert changed.status_code == 200 and "Sessions ended elsewhere: 1" in changed.text
        assert laptop.get("/console/").status_code == 200
        ended = phone.get("/console/")
        assert ended.status_code == 303 and "ended=1" in ended.headers["location"]
    with browser(console_url) as client:
        clock.advance(seconds=30)
        assert password_step(client, member.email, PASSWORD).status_code == 401
        assert password_step(client, member.email, new).status_code == 303
    assert "staff.password_changed" in audit_actions(pg_sessions, member.id)


def test_a_session_ends_after_the_idle_timeout(
    console_url: str, pg_sessions: sessionmaker[Session], clock: Clock
) -> None:
    member = new_staff(pg_sessions, clock)
    with browser(console_url) as client:
        enrol(client, member, clock)
        clock.advance(minutes=29)
        assert client.get("/console/").status_code == 200  # the idle clock restarts
        clock.advance(minutes=29)
        assert client.get("/console/").status_code == 200
        clock.advance(minutes=30)
        ended = client.get("/console/")
        assert ended.status_code == 303
        assert ended.headers["location"] == "/console/sign-in?ended=1"


def test_a_session_ends_at_the_absolute_timeout_however_busy(
    console_url: str, pg_sessions: sessionmaker[Session], clock: Clock
) -> None:
    member = new_staff(pg_sessions, clock)
    with browser(console_url) as client:
        enrol(client, member, clock)
        for _ in range(35):  # 11 h 40 min of a request every 20 minutes
            clock.advance(minutes=20)
            assert client.get("/console/").status_code == 200
        clock.advance(minutes=20)
        assert client.get("/console/").status_code == 303


def test_a_post_without_the_csrf_token_is_refused(
    console_url: str, pg_sessions: sessionmaker[Session], clock: Clock
) -> None:
    member = new_staff(pg_sessions, clock)
    with browser(console_url) as client:
        client.get("/console/sign-in")
        no_token = client.post("/console/sign-in", data={"email": member.email,
                                                         "password": PASSWORD})  # fmt: skip
        assert no_token.status_code == 403
        assert "did not come from this console" in no_token.text
        enrol(client, member, clock)
        for path, fields in (
            ("/console/password", {"current_password": PASSWORD, "new_password": "x" * 20,
                                   "confirm_password": "x" * 20}),
            ("/console/recovery-codes", {}),
            ("/console/sign-out", {}),
        ):  # fmt: skip
            assert client.post(path, data=fields).status_code == 403
            forged = client.post(path, data={**fields, "csrf_token": "0" * 64})
            assert forged.status_code == 403
        assert client.get("/console/").status_code == 200  # none of them ran
    assert "staff.password_changed" not in audit_actions(pg_sessions, member.id)


def test_signed_out_pages_redirect_and_posts_are_401(console_url: str, clock: Clock) -> None:
    with browser(console_url) as client:
        page = client.get("/console/staff")
        assert page.status_code == 303
        assert page.headers["location"] == "/console/sign-in?next=/console/staff"
        assert client.post("/console/password", data={}).status_code == 401


def test_roles_are_enforced_on_the_server(
    console_url: str, pg_sessions: sessionmaker[Session], clock: Clock
) -> None:
    finance = new_staff(pg_sessions, clock, role="finance")
    admin = new_staff(pg_sessions, clock, role="admin")
    with browser(console_url) as client:
        enrol(client, finance, clock)
        assert client.get("/console/").status_code == 200
        refused = client.get("/console/staff")
        assert refused.status_code == 403
        assert "Your role (finance) may not open this page" in refused.text
    with browser(console_url) as client:
        enrol(client, admin, clock)
        listed = client.get("/console/staff")
        assert listed.status_code == 200
        assert finance.email in listed.text and admin.email in listed.text


def test_sign_out_ends_the_session(
    console_url: str, pg_sessions: sessionmaker[Session], clock: Clock
) -> None:
    member = new_staff(pg_sessions, clock)
    with browser(console_url) as client:
        enrol(client, member, clock)
        cookie = client.cookies.get("kakin_console")
        home = client.get("/console/").text
        out = post(client, "/console/sign-out", home)
        assert out.status_code == 303 and out.headers["location"].endswith("signed_out=1")
        assert client.get("/console/").status_code == 303
    # The old cookie, replayed, opens nothing: the session is revoked in the database.
    with browser(console_url) as thief:
        thief.cookies.set("kakin_console", cookie or "", path="/console")
        assert thief.get("/console/").status_code == 303
    assert "staff.signed_out" in audit_actions(pg_sessions, member.id)


def test_pages_carry_the_security_headers_and_strict_cookies(
    console_url: str, pg_sessions: sessionmaker[Session], clock: Clock
) -> None:
    member = new_staff(pg_sessions, clock, name="<script>alert(1)</script>")
    with browser(console_url) as client:
        page = client.get("/console/sign-in")
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "'unsafe-inline'" not in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"
        response = password_step(client, member.email)
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
        enrol_page = client.get("/console/2fa/enrol").text
        post(client, "/console/2fa/enrol", enrol_page,
             code=pyotp.TOTP(secret_of(enrol_page)).at(clock()))  # fmt: skip
        home = client.get("/console/").text
        assert "<script>alert(1)</script>" not in home
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in home
        css = client.get("/console/static/console.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert css.headers["cache-control"] == "public, max-age=3600"


def test_japanese_is_shown_to_a_browser_that_prefers_it(console_url: str, clock: Clock) -> None:
    with browser(console_url) as client:
        page = client.get("/console/sign-in", headers={"Accept-Language": "ja,en;q=0.5"})
        assert '<html lang="ja">' in page.text and "ログイン" in page.text


def test_without_two_factor_required_the_password_signs_in(
    relaxed_console_url: str, pg_sessions: sessionmaker[Session], clock: Clock
) -> None:
    member = new_staff(pg_sessions, clock)
    with browser(relaxed_console_url) as client:
        done = password_step(client, member.email)
        assert done.status_code == 303 and done.headers["location"] == "/console/"
        assert client.get("/console/").status_code == 200


def test_a_live_key_refuses_turning_two_factor_off() -> None:
    settings = console_settings(stripe_api_key="sk_live_x", console_require_2fa=False,
                                link_secret="a-long-random-link-secret")  # fmt: skip
    with pytest.raises(ConfigurationError, match="KAKIN_CONSOLE_REQUIRE_2FA"):
        runtime.console_policy(settings)
    with pytest.raises(ConfigurationError, match="KAKIN_CONSOLE_SECRET"):
        runtime.console_policy(
            console_settings(stripe_api_key="sk_live_x", console_secret=EMBEDDED_CONSOLE_SECRET)
        )


def test_an_address_trying_many_emails_is_locked(
    guarded_console_url: str, pg_sessions: sessionmaker[Session], clock: Clock
) -> None:
    member = new_staff(pg_sessions, clock)
    with browser(guarded_console_url) as client:
        for n in range(5):  # one try each: no account is slowed, the address adds up
            guess = password_step(client, f"guess-{n}-{member.email}", PASSWORD)
            assert guess.status_code == 401
        locked = password_step(client, member.email)
        assert locked.status_code == 429 and "try again in 15 minutes" in locked.text
        clock.advance(minutes=15)
        assert password_step(client, member.email).status_code == 303
    refused = audit_rows(pg_sessions, member.id, "staff.sign_in_locked")
    assert [row.details["scope"] for row in refused] == ["address"]
