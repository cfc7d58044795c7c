"""Signing in to the console in a real browser (headless Chromium), as a person does:
the password, the QR code's key typed into an authenticator (pyotp here), its code, the
recovery codes; then again with a fresh code. A code used once, a wrong code, a recovery
code used twice and repeated wrong passwords are refused on the page itself.

The refusals are answered 401/429 on purpose; the page watch is told to expect them.
"""

from __future__ import annotations

import re

import pyotp
from playwright.async_api import Page
from sqlalchemy.orm import Session, sessionmaker

from tests.console.browsing import PASSWORD, Clock, new_staff
from tests.support.browser import OpenPage, Screenshot

REFUSED = (
    r"HTTP 40[19]: POST .*/console/sign-in",  # and /sign-in/2fa
    r"HTTP 429: POST .*/console/sign-in",
    r"console error: Failed to load resource: .* (401|429) .*/console/sign-in",
)


async def submit(page: Page, button: str) -> None:
    """Click ``button`` and wait for the answer's page to load whole (its stylesheet
    too), so the next step's navigation aborts nothing still loading."""
    async with page.expect_navigation(wait_until="load"):
        await page.click(button)


async def type_password(page: Page, email: str, password: str = PASSWORD) -> None:
    await page.goto("/console/sign-in")
    await page.fill("#email", email)
    await page.fill("#password", password)
    await submit(page, "main button[type=submit]")


async def type_code(page: Page, code: str) -> None:
    await page.fill("#code", code)
    await submit(page, "main button[type=submit]")


async def sign_out(page: Page) -> None:
    await page.click("form[action='/console/sign-out'] button")
    await page.wait_for_url("**/console/sign-in**")


async def test_enrol_then_sign_in_with_a_fresh_code_and_codes_refused_as_they_should_be(
    console_url: str, pg_sessions: sessionmaker[Session], clock: Clock,
    open_page: OpenPage, screenshot: Screenshot,
) -> None:  # fmt: skip
    member = new_staff(pg_sessions, clock)
    page = await open_page(console_url, allow=REFUSED)

    # The first sign-in: the password, then two-factor set up from the key on the page.
    await type_password(page, member.email)
    await page.wait_for_url("**/console/2fa/enrol")
    assert await page.locator(".qr svg").count() == 1
    await screenshot(page, "console-enrol")
    secret = (await page.locator("code.secret").inner_text()).replace(" ", "")
    totp = pyotp.TOTP(secret)
    await type_code(page, totp.at(clock()))
    codes = await page.locator("ol.codes code").all_inner_texts()
    assert len(codes) == 10
    await page.click("text=" + "Continue to the console")
    await page.wait_for_url("**/console/")
    assert member.email in await page.locator("main").inner_text()

    # Signed out, the same code again is refused: each 30-second step is used once.
    used = totp.at(clock())
    await sign_out(page)
    await type_password(page, member.email)
    await page.wait_for_url("**/console/sign-in/2fa**")
    await type_code(page, used)
    refused = page.locator("p.error[role=alert]")
    assert "used already" in await refused.inner_text()
    await type_code(page, "000000" if used != "000000" else "111111")
    assert "wrong" in await refused.inner_text()
    await screenshot(page, "console-sign-in-code-refused")
    clock.advance(seconds=30)  # the next step: a code not used yet
    await type_code(page, totp.at(clock()))
    await page.wait_for_url("**/console/")

    # A recovery code signs in once; the second time it is refused.
    await sign_out(page)
    await type_password(page, member.email)
    await type_code(page, codes[0])
    await page.wait_for_url("**/console/")
    await sign_out(page)
    await type_password(page, member.email)
    await type_code(page, codes[0])
    assert "used already" in await refused.inner_text()


async def test_repeated_wrong_passwords_are_slowed_then_locked_on_the_page(
    console_url: str, pg_sessions: sessionmaker[Session], clock: Clock, open_page: OpenPage,
) -> None:  # fmt: skip
    member = new_staff(pg_sessions, clock)
    page = await open_page(console_url, allow=REFUSED)
    refused = page.locator("p.error[role=alert]")
    for _ in range(3):
        await type_password(page, member.email, "not-the-password!")
        assert "wrong" in await refused.inner_text()
    await type_password(page, member.email)  # the right one, too soon: wait
    assert "wait 1 seconds" in await refused.inner_text()
    for _ in range(7):
        clock.advance(seconds=31)
        await type_password(page, member.email, "not-the-password!")
    clock.advance(seconds=31)
    await type_password(page, member.email)  # ten failures: locked, right password or not
    # Locked for 15 minutes from the first of the ten (about four minutes ago).
    assert re.search(r"try again in 1[12] minutes", await refused.inner_text())
    clock.advance(minutes=15)
    await type_password(page, member.email)
    await page.wait_for_url("**/console/2fa/enrol")
