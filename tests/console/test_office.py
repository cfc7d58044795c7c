"""The back office's frame: each role signed in sees its own menu, in a real browser too;
the console's static files come from the project and nothing else is served as one."""

from __future__ import annotations

import pytest

from tests.console.office import ROLES, Office
from tests.support.browser import OpenPage


@pytest.mark.parametrize("role", ROLES)
def test_each_role_is_signed_in_and_sees_only_its_menu(office: Office, role: str) -> None:
    page = office.client(role).get("/console/")
    assert page.status_code == 200, page.text
    assert office.members[role].member.email in page.text
    assert ('href="/console/staff"' in page.text) is (role == "admin")


def test_static_files_are_the_projects_own_and_nothing_else(office: Office) -> None:
    client = office.client("finance")
    css = client.get("/console/static/console.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    for name in ("missing.css", "..%2Fbase.html.j2", ".hidden.css", "base.html.j2"):
        assert client.get(f"/console/static/{name}").status_code == 404, name


async def test_a_signed_in_browser_page_opens_the_console(
    office: Office, open_page: OpenPage
) -> None:
    page = await office.page(open_page, "support", locale="ja-JP")
    assert page.url.endswith("/console/")
    assert await page.locator("nav a[aria-current=page]").count() == 1


def test_a_console_path_nothing_serves_is_a_page_and_an_api_one_stays_json(
    office: Office,
) -> None:
    client = office.client("support")
    page = client.get("/console/no-such-page")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "There is no such page." in page.text and 'href="/console/"' in page.text
    api = client.get("/v1/no-such-endpoint")
    assert api.status_code == 404 and api.json()["error"]["message"].startswith("There is no")
