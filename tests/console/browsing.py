"""What a person does in the console, as httpx calls: read a form's token, sign in, enrol."""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pyotp
from sqlalchemy.orm import Session, sessionmaker

from kakin.services import staff
from kakin.services.staff import Origin, StaffInfo

PASSWORD = "violet-harbour-lantern-42"


class Clock:
    """The console's wall clock, moved by the tests instead of sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2031, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@contextmanager
def browser(url: str) -> Iterator[httpx.Client]:
    """A client that keeps cookies and does not follow redirects (tests check them)."""
    with httpx.Client(base_url=url, follow_redirects=False, timeout=30) as client:
        yield client


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def post(client: httpx.Client, path: str, form_page: str, **fields: str) -> httpx.Response:
    """Submit a form of ``form_page`` (its CSRF token included) to ``path``."""
    return client.post(path, data={"csrf_token": csrf(form_page), **fields})


def new_staff(
    sessions: sessionmaker[Session], clock: Clock, *, role: str = "admin", name: str = "検証 花子",
    locale: str = "en",
) -> StaffInfo:  # fmt: skip
    return staff.create_staff(
        sessions, email=f"staff-{secrets.token_hex(4)}@example.jp", name=name, role=role,
        password=PASSWORD, locale=locale, actor="test", origin=Origin(address="test"),
        now=clock(),
    )  # fmt: skip


def password_step(client: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    page = client.get("/console/sign-in").text
    return post(client, "/console/sign-in", page, email=email, password=password)


def secret_of(enrol_page: str) -> str:
    found = re.search(r'<code class="secret">([^<]+)</code>', enrol_page)
    assert found, "the enrolment page shows no secret"
    return html.unescape(found.group(1)).replace(" ", "")


def codes_of(page: str) -> list[str]:
    return re.findall(r"<li><code>([a-z0-9-]{19})</code></li>", page)


@dataclass
class Enrolled:
    member: StaffInfo
    secret: str
    recovery_codes: list[str]

    def code(self, clock: Clock) -> str:
        return pyotp.TOTP(self.secret).at(clock())


def enrol(client: httpx.Client, member: StaffInfo, clock: Clock) -> Enrolled:
    """Sign in for the first time and set up two-factor (forced); the client is signed in."""
    first = password_step(client, member.email)
    assert first.status_code == 303 and first.headers["location"] == "/console/2fa/enrol"
    page = client.get("/console/2fa/enrol")
    assert page.status_code == 200, page.text
    secret = secret_of(page.text)
    done = post(client, "/console/2fa/enrol", page.text, code=pyotp.TOTP(secret).at(clock()))
    assert done.status_code == 200, done.text
    codes = codes_of(done.text)
    assert len(codes) == 10
    return Enrolled(member=member, secret=secret, recovery_codes=codes)


def sign_in(client: httpx.Client, enrolled: Enrolled, clock: Clock) -> httpx.Response:
    """Password, then a TOTP code of a step not used yet (the clock moves on a step)."""
    clock.advance(seconds=30)
    first = password_step(client, enrolled.member.email)
    assert first.status_code == 303 and first.headers["location"] == "/console/sign-in/2fa"
    page = client.get("/console/sign-in/2fa").text
    return post(client, "/console/sign-in/2fa", page, code=enrolled.code(clock))
