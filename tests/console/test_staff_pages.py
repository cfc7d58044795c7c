"""Staff in the console: an admin invites someone (a temporary password shown once), who
signs in and enrols two-step; disabling ends their session and their sign-ins; resetting
two-step makes them enrol again; the audit log names the admin; an admin cannot disable
themself; other roles are refused."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from api.console.auth import PASSWORD_PAGE
from kakin.services import staff
from models.tables import AuditLog
from tests.console.browsing import PASSWORD, Enrolled, browser, enrol, password_step, post
from tests.console.office import Office
from tests.support.browser import PHONE, OpenPage, Screenshot, horizontal_overflow

TEMPORARY = re.compile(r'id="password" class="once" readonly value="([^"]+)"')


def invite(office: Office, **fields: str) -> tuple[str, httpx.Response]:
    """Invite through the console's form; the temporary password the answer shows."""
    admin = office.client("admin")
    form = admin.get("/console/staff")
    assert form.status_code == 200, form.text
    answer = post(admin, "/console/staff", form.text, **fields)
    assert answer.status_code == 200, answer.text
    found = TEMPORARY.search(answer.text)
    assert found, answer.text
    return found.group(1), answer


def invited_member(office: Office, email: str) -> staff.StaffInfo:
    return next(m for m in staff.list_staff(office.sessions) if m.email == email)


def audit_of(office: Office, staff_id: str, action: str) -> list[AuditLog]:
    with office.sessions() as session:
        rows = session.scalars(
            select(AuditLog).where(AuditLog.entity_id == staff_id, AuditLog.action == action)
        )
        return list(rows)


def signed_in_invitee(
    office: Office, client: httpx.Client, email: str, *, role: str = "support", locale: str = "en"
) -> tuple[Enrolled, str]:
    """Invite ``email``, sign them in on ``client`` (enrolling two-step) and change the
    temporary password, as the console asks first; and their password now."""
    temporary, _ = invite(office, email=email, name="招待 次郎", role=role, locale=locale)
    enrolled = enrol(client, invited_member(office, email), office.clock, password=temporary)
    page = client.get(PASSWORD_PAGE).text
    changed = post(client, PASSWORD_PAGE, page, current_password=temporary,
                   new_password=PASSWORD, confirm_password=PASSWORD)  # fmt: skip
    assert changed.status_code == 200, changed.text
    return enrolled, PASSWORD


def test_an_invited_member_signs_in_with_the_password_shown_once(office: Office) -> None:
    admin = office.client("admin")
    admin_email = office.members["admin"].member.email
    password, answer = invite(
        office, email="Jiro.Invite@example.jp", name="招待 次郎", role="finance", locale="ja"
    )
    assert answer.headers["cache-control"] == "no-store"
    assert "jiro.invite@example.jp" in answer.text and "/console/sign-in" in answer.text
    listed = admin.get("/console/staff")
    assert "jiro.invite@example.jp" in listed.text and password not in listed.text
    member = invited_member(office, "jiro.invite@example.jp")
    assert (member.role, member.locale, member.two_factor) == ("finance", "ja", False)

    with browser(office.url) as client:
        enrolled = enrol(client, member, office.clock, password=password)
        # The handed-over password was seen by the admin: changing it comes first.
        home = client.get("/console/")
        assert (home.status_code, home.headers["location"]) == (303, PASSWORD_PAGE)
        page = client.get(PASSWORD_PAGE).text
        assert "招待で受け取ったパスワード" in page
        refused = post(client, "/console/customers/new", page, name="x", email="x@example.jp")
        assert refused.status_code == 403 and "受け取ったパスワードを変更" in refused.text
        changed = post(client, PASSWORD_PAGE, page, current_password=password,
                       new_password=PASSWORD, confirm_password=PASSWORD)  # fmt: skip
        assert changed.status_code == 200 and "パスワードを変更しました" in changed.text
        home = client.get("/console/")
        assert home.status_code == 200 and "としてログインしています" in home.text
        assert "招待で受け取ったパスワード" not in client.get(PASSWORD_PAGE).text
    assert enrolled.member.email == "jiro.invite@example.jp"
    (created,) = audit_of(office, member.id, "staff.created")
    assert created.actor == f"staff:{admin_email}"
    assert created.details["role"] == "finance" and password not in str(created.details)


def test_a_bad_invitation_shows_the_error_and_stores_nothing(office: Office) -> None:
    admin = office.client("admin")
    page = admin.get("/console/staff").text
    count = len(staff.list_staff(office.sessions))
    bad = post(admin, "/console/staff", page, email="not-an-email", name="x", role="support",
               locale="en")  # fmt: skip
    assert bad.status_code == 422 and "That is not an email address." in bad.text
    assert 'value="not-an-email"' in bad.text, "the form keeps what was typed"
    assert not TEMPORARY.search(bad.text)
    taken = office.members["admin"].member.email
    twice = post(admin, "/console/staff", page, email=taken, name="y", role="support", locale="en")
    assert twice.status_code == 409 and "exists already" in twice.text
    assert len(staff.list_staff(office.sessions)) == count


def test_a_name_holding_markup_is_shown_as_text(office: Office) -> None:
    _, answer = invite(office, email="markup@example.jp", name="<script>alert(1)</script>",
                       role="support", locale="en")  # fmt: skip
    listed = office.client("admin").get("/console/staff").text
    for page in (answer.text, listed):
        assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page


def test_disabling_ends_the_session_and_refuses_sign_in(office: Office) -> None:
    admin = office.client("admin")
    with browser(office.url) as client:
        enrolled, password = signed_in_invitee(office, client, "disable.me@example.jp")
        assert client.get("/console/").status_code == 200
        member = enrolled.member
        confirm = admin.get(f"/console/staff/{member.id}/disable")
        assert confirm.status_code == 200 and "Disable 招待 次郎?" in confirm.text
        done = post(admin, f"/console/staff/{member.id}/disable", confirm.text)
        assert done.status_code == 303
        assert "has been disabled" in admin.get(done.headers["location"]).text

        ended = client.get("/console/")
        assert ended.status_code == 303 and "ended=1" in ended.headers["location"]
    with browser(office.url) as again:
        refused = password_step(again, member.email, password)
        assert refused.status_code != 303 and "The email or password is wrong" in refused.text
    (row,) = audit_of(office, member.id, "staff.disabled")
    assert row.actor == f"staff:{office.members['admin'].member.email}"
    assert row.details["sessions_ended"] == 1


def test_resetting_two_step_makes_the_member_enrol_again(office: Office) -> None:
    admin = office.client("admin")
    with browser(office.url) as client:
        email = "lost.phone@example.jp"
        enrolled, password = signed_in_invitee(office, client, email)
        member = enrolled.member
        confirm = admin.get(f"/console/staff/{member.id}/reset-2fa")
        assert "lost their phone" in confirm.text
        done = post(admin, f"/console/staff/{member.id}/reset-2fa", confirm.text)
        assert done.status_code == 303
        assert client.get("/console/").status_code == 303, "their session has ended"

        office.clock.advance(seconds=30)
        again = password_step(client, email, password)
        assert again.status_code == 303 and again.headers["location"] == "/console/2fa/enrol"
    (row,) = audit_of(office, member.id, "staff.two_factor_reset")
    assert row.actor == f"staff:{office.members['admin'].member.email}"
    assert invited_member(office, email).two_factor is False


def test_an_admin_cannot_disable_themself(office: Office) -> None:
    admin = office.client("admin")
    me = office.members["admin"].member
    listed = admin.get("/console/staff").text
    assert f'href="/console/staff/{me.id}/disable"' not in listed
    page = admin.get(f"/console/staff/{me.id}/disable")
    assert "You cannot disable your own account" in page.text
    assert f'action="/console/staff/{me.id}/disable"' not in page.text
    refused = post(admin, f"/console/staff/{me.id}/disable", listed)
    assert refused.status_code == 409 and "You cannot disable your own account" in refused.text
    assert admin.get("/console/").status_code == 200
    assert invited_member(office, me.email).disabled_at is None


def test_an_admin_resetting_their_own_two_step_is_signed_out_to_enrol_again(
    office: Office,
) -> None:
    with browser(office.url) as client:
        enrolled, password = signed_in_invitee(office, client, "own.reset@example.jp",
                                               role="admin")  # fmt: skip
        me = enrolled.member
        confirm = client.get(f"/console/staff/{me.id}/reset-2fa")
        assert confirm.status_code == 200
        done = post(client, f"/console/staff/{me.id}/reset-2fa", confirm.text)
        assert done.status_code == 303 and done.headers["location"] == "/console/sign-in?ended=1"
        assert client.get("/console/").status_code == 303
        office.clock.advance(seconds=30)
        again = password_step(client, me.email, password)
        assert again.headers["location"] == "/console/2fa/enrol"
    (row,) = audit_of(office, me.id, "staff.two_factor_reset")
    assert row.actor == f"staff:{me.email}"


@pytest.mark.parametrize("role", ["support", "finance"])
def test_other_roles_may_not_see_or_change_staff(office: Office, role: str) -> None:
    client = office.client(role)
    target = office.members["admin"].member
    for path in ("/console/staff", f"/console/staff/{target.id}/disable",
                 f"/console/staff/{target.id}/reset-2fa"):  # fmt: skip
        assert client.get(path).status_code == 403, path
    home = client.get("/console/").text
    for path, fields in (
        ("/console/staff", {"email": "x@example.jp", "name": "x", "role": "admin", "locale": "en"}),
        (f"/console/staff/{target.id}/disable", {}),
        (f"/console/staff/{target.id}/reset-2fa", {}),
    ):
        assert post(client, path, home, **fields).status_code == 403, path
    assert "x@example.jp" not in [m.email for m in staff.list_staff(office.sessions)]
    assert invited_member(office, target.email).disabled_at is None
    assert invited_member(office, target.email).two_factor is True


async def test_the_staff_page_in_the_browser(
    office: Office, open_page: OpenPage, screenshot: Screenshot
) -> None:
    office.client("support"), office.client("finance")  # more than one member listed
    page = await office.page(open_page, "admin", "/console/staff")
    await page.fill("#invite-email", "hanako.browser@example.jp")
    await page.fill("#invite-name", "ブラウザ 花子")
    await page.select_option("#invite-role", "finance")
    await page.select_option("#invite-locale", "ja")
    await page.click("form.fields button")
    password = await page.input_value("#password")
    assert len(password) == 23
    await screenshot(page, "console-staff-invited")
    await page.click("text=Back to staff")
    assert password not in await page.content()
    assert await page.locator("tr[data-email='hanako.browser@example.jp']").count() == 1
    await screenshot(page, "console-staff")

    # The list for an admin whose language is Japanese (invited as one), and on a phone.
    with browser(office.url) as client:
        signed_in_invitee(office, client, "kanri.ja@example.jp", role="admin", locale="ja")
        ja = await office.page_for(open_page, client, "/console/staff", locale="ja-JP")
    assert await ja.locator("h1").first.inner_text() == "スタッフ"
    await screenshot(ja, "console-staff-ja")
    phone = await office.page(open_page, "admin", "/console/staff", viewport=PHONE)
    assert await horizontal_overflow(phone) == 0
    await screenshot(phone, "console-staff-phone")
