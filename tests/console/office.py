"""The back office as a test meets it: the console wired as ``kakin api`` serves it (the
dev Temporal server, localstripe, a worker on the module's task queue), and staff of
each role already signed in, over httpx or in a real browser.

    def test_something(office: Office) -> None:
        page = office.client("support").get("/console/customers")

    async def test_in_the_browser(office: Office, open_page: OpenPage) -> None:
        page = await office.page(open_page, "finance", "/console/")

One member per role per test module, enrolled in two-factor as a real sign-in does
(password, QR secret, TOTP code); the console's clock stands still, so no session
ends while a module runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from playwright.async_api import Page
from sqlalchemy.orm import Session, sessionmaker

from tests.console.browsing import Clock, Enrolled, enrol, new_staff
from tests.support.browser import OpenPage

ROLES = ("admin", "support", "finance")


@dataclass
class Office:
    url: str
    sessions: sessionmaker[Session]
    clock: Clock
    task_queue: str
    _clients: dict[str, httpx.Client] = field(default_factory=dict)
    members: dict[str, Enrolled] = field(default_factory=dict)

    def client(self, role: str) -> httpx.Client:
        """An httpx client signed in as this module's member of ``role`` (redirects not
        followed, so a test sees them)."""
        if role not in self._clients:
            client = httpx.Client(base_url=self.url, follow_redirects=False, timeout=60)
            member = new_staff(self.sessions, self.clock, role=role, name=f"{role} 担当")
            self.members[role] = enrol(client, member, self.clock)
            self._clients[role] = client
        return self._clients[role]

    async def page(self, open_page: OpenPage, role: str, path: str = "/console/",
                   **options: Any) -> Page:  # fmt: skip
        """A watched browser page signed in as ``role`` (``open_page``'s options), at ``path``."""
        return await self.page_for(open_page, self.client(role), path, **options)

    async def page_for(self, open_page: OpenPage, client: httpx.Client, path: str = "/console/",
                       **options: Any) -> Page:  # fmt: skip
        """A watched browser page with the session of ``client`` (a member signed in by the
        test itself: one it invited, one of another language), at ``path``."""
        page = await open_page(self.url, **options)
        await page.context.add_cookies(
            [
                {"name": c.name, "value": c.value or "", "url": self.url + "/console"}
                for c in client.cookies.jar
            ]
        )
        await page.goto(path)
        return page

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
