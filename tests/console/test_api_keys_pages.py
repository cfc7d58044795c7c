"""API keys in the console: an admin makes one, sees its secret once, and it works against
the HTTP API until they revoke it; the audit log names the admin; other roles are refused."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.console.browsing import browser, enrol, new_staff, post
from tests.console.office import Office
from tests.support.browser import PHONE, OpenPage, Screenshot, horizontal_overflow

SECRET = re.compile(r"kk_[a-z]+_[A-Za-z0-9_-]{20,}")


def make_key(office: Office, name: str, role: str) -> tuple[str, httpx.Response]:
    """Create a key through the console's form; its secret as the answer shows it."""
    admin = office.client("admin")
    form = admin.get("/console/api-keys")
    assert form.status_code == 200, form.text
    made = post(admin, "/console/api-keys", form.text, name=name, role=role)
    assert made.status_code == 200, made.text
    secrets_shown = SECRET.findall(made.text)
    assert len(set(secrets_shown)) == 1, "the answer shows the new key's secret exactly once"
    return secrets_shown[0], made


def api(office: Office, secret: str) -> httpx.Client:
    return httpx.Client(
        base_url=office.url, headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )


def key_id_of(list_page: str, name: str) -> str:
    """The id in the revoke link of the list's row named ``name``."""
    row = next(row for row in list_page.split("<tr") if name in row)
    found = re.search(r'href="/console/api-keys/(key_[^/"]+)/revoke"', row)
    assert found, row
    return found.group(1)


def test_a_new_key_is_shown_once_works_and_is_refused_once_revoked(office: Office) -> None:
    admin = office.client("admin")
    admin_email = office.members["admin"].member.email
    secret, made = make_key(office, "shop <script>backend</script>", "service")
    assert secret.startswith("kk_service_")
    assert made.headers["cache-control"] == "no-store"
    assert "<script>backend" not in made.text and "&lt;script&gt;backend" in made.text
    with api(office, secret) as shop:
        assert shop.get("/v1/customers").status_code == 200

    listed = admin.get("/console/api-keys")
    assert secret not in listed.text, "the list never shows a secret again"
    assert secret[:15] in listed.text, "only the prefix tells the key apart"
    assert "&lt;script&gt;backend" in listed.text
    key_id = key_id_of(listed.text, "backend")
    confirm = admin.get(f"/console/api-keys/{key_id}/revoke")
    assert confirm.status_code == 200 and secret not in confirm.text
    assert "Revoke this key?" in confirm.text

    revoked = post(admin, f"/console/api-keys/{key_id}/revoke", confirm.text)
    assert revoked.status_code == 303
    after = admin.get(revoked.headers["location"])
    assert "has been revoked" in after.text and secret not in after.text
    assert f'href="/console/api-keys/{key_id}/revoke"' not in after.text
    with api(office, secret) as shop:
        assert shop.get("/v1/customers").status_code == 401

    # The audit log, read through the API with another key made in the console, names
    # the admin for both changes.
    reader, _ = make_key(office, "audit reader", "admin")
    with api(office, reader) as client:
        entries = client.get("/v1/audit-log", params={"actor": f"staff:{admin_email}"})
        assert entries.status_code == 200, entries.text
    mine = [e for e in entries.json()["data"] if e["entity_id"] == key_id]
    assert sorted(e["action"] for e in mine) == ["api_key.created", "api_key.revoked"]
    assert all(e["entity_type"] == "api_key" and secret not in str(e) for e in mine)


def test_a_key_without_a_name_is_refused_and_nothing_is_stored(office: Office) -> None:
    admin = office.client("admin")
    before = admin.get("/console/api-keys")
    rows = before.text.count("<tr")
    refused = post(admin, "/console/api-keys", before.text, name="  ", role="admin")
    assert refused.status_code == 422
    assert "Give the key a name" in refused.text and not SECRET.search(refused.text)
    tampered = post(admin, "/console/api-keys", before.text, name="x", role="root")
    assert tampered.status_code == 422 and "Choose one of the roles" in tampered.text
    assert admin.get("/console/api-keys").text.count("<tr") == rows


@pytest.mark.parametrize("role", ["support", "finance"])
def test_other_roles_may_not_see_or_make_keys(office: Office, role: str) -> None:
    client = office.client(role)
    assert client.get("/console/api-keys").status_code == 403
    home = client.get("/console/").text
    assert 'href="/console/api-keys"' not in home
    made = post(client, "/console/api-keys", home, name="sneaky", role="admin")
    assert made.status_code == 403 and not SECRET.search(made.text)
    assert "sneaky" not in office.client("admin").get("/console/api-keys").text


async def test_the_keys_page_in_the_browser(
    office: Office, open_page: OpenPage, screenshot: Screenshot
) -> None:
    make_key(office, "ショップのバックエンド", "service")
    make_key(office, "finance dashboard", "finance")
    page = await office.page(open_page, "admin", "/console/api-keys")
    await page.fill("#key-name", "nightly export")
    await page.select_option("#key-role", "support")
    await page.click("form.fields button")
    secret = await page.input_value("#secret")
    assert secret.startswith("kk_support_")
    await screenshot(page, "console-api-key-created")
    await page.click("text=Back to API keys")
    assert secret not in await page.content()
    # Revoking asks first, then says so; the revoked key stays listed, marked.
    await page.click("tr:has-text('finance dashboard') >> text=Revoke")
    await screenshot(page, "console-api-key-revoke")
    await page.click("button.danger")
    assert await page.locator("p.notice").count() == 1
    revoked = page.locator("tr:has-text('finance dashboard') .badge.off")
    assert (await revoked.inner_text()).startswith("revoked")
    await screenshot(page, "console-api-keys")

    # In Japanese (a member whose language is ja), on a laptop and on a phone.
    with browser(office.url) as client:
        enrol(client, new_staff(office.sessions, office.clock, locale="ja", name="管理 太郎"),
              office.clock)  # fmt: skip
        ja = await office.page_for(open_page, client, "/console/api-keys", locale="ja-JP")
        assert await ja.locator("h1").inner_text() == "APIキー"
        await screenshot(ja, "console-api-keys-ja")
        phone = await office.page_for(open_page, client, "/console/api-keys", viewport=PHONE)
        assert await horizontal_overflow(phone) == 0
        await screenshot(phone, "console-api-keys-phone")
