"""Tests in a real browser: Debian's headless Chromium, driven by Playwright (async API).

A pytest plugin (``pytest_plugins`` in tests/conftest.py), so every test folder has:

- ``browser``: one Chromium for the whole session (launching costs most of a second).
  Found as ``KAKIN_CHROMIUM`` (``python3 dev.py test`` sets it, installing Chromium
  first when it is missing) or ``chromium`` on PATH; without one the test fails, never
  skips, and says how to install it.
- ``open_page``: ``await open_page(origin, allow=(...), viewport=PHONE, locale="ja-JP")``
  opens a page in a fresh context (its own cookies) that is watched: a console error, an
  uncaught exception, a request that failed or was answered 4xx/5xx, and any request
  to another origin (blocked, never sent) fails the test when it ends, listed one a line.
  ``allow`` holds regular expressions for the ones a test expects (a 422 it provokes).
- ``screenshot``: ``await screenshot(page, "name")`` saves ``name.png`` (the full page)
  under the session's pytest temp dir, ``screenshots/``, and also into
  ``$KAKIN_SCREENSHOTS`` when set (the README's pictures come from there).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Page,
    Request,
    Response,
    Route,
    ViewportSize,
    async_playwright,
)

# The developers' guide's flags: no sandbox (CI runs as root), no GPU, and no calls home
# (component updates, safe browsing) that would be requests to another origin.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")
HOW_TO_GET_CHROMIUM = (
    "run the tests with `python3 dev.py test` (it installs Debian's chromium), "
    "or `apt-get install chromium`, or set KAKIN_CHROMIUM to a Chromium"
)
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}  # an iPhone 12-15's CSS pixels

OpenPage = Callable[..., Awaitable[Page]]
Screenshot = Callable[[Page, str], Awaitable[Path]]


def chromium_path() -> str | None:
    named = os.environ.get("KAKIN_CHROMIUM")
    return shutil.which(named) if named else shutil.which("chromium")


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    path = chromium_path()
    if path is None:
        named = os.environ.get("KAKIN_CHROMIUM")
        why = f"KAKIN_CHROMIUM={named} is not an executable" if named else "no Chromium found"
        pytest.fail(f"{why}: {HOW_TO_GET_CHROMIUM}", pytrace=False)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=path, args=list(CHROMIUM_FLAGS), headless=True
        )
        yield launched
        await launched.close()


@dataclass
class PageWatch:
    """What went wrong on a test's pages, and which of it the test expects."""

    origin: str
    allowed: list[re.Pattern[str]]
    problems: list[str] = field(default_factory=list)
    reported: int = 0  # problems[:reported] already failed the test

    def unexpected(self) -> list[str]:
        fresh, self.reported = self.problems[self.reported :], len(self.problems)
        return [p for p in fresh if not any(a.search(p) for a in self.allowed)]

    async def route(self, route: Route) -> None:
        url = route.request.url
        if url.startswith(("http:", "https:", "ws:", "wss:")) and origin_of(url) != self.origin:
            self.problems.append(f"request to another origin (blocked): {url}")
            await route.abort("blockedbyclient")
        else:
            await route.continue_()

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text} ({message.location['url']})")

    def page_error(self, error: Error) -> None:
        self.problems.append(f"uncaught exception: {error.message}")

    def request_failed(self, request: Request) -> None:
        self.problems.append(f"request failed: {request.method} {request.url} {request.failure}")

    def response(self, response: Response) -> None:
        if response.status >= 400:
            method = response.request.method
            self.problems.append(f"HTTP {response.status}: {method} {response.url}")


WATCHES = pytest.StashKey[list[PageWatch]]()


def fail_on_problems(watches: Iterable[PageWatch], when: str) -> None:
    unexpected = [p for watch in watches for p in watch.unexpected()]
    if unexpected:
        pytest.fail(f"the browser saw, {when}:\n  " + "\n  ".join(unexpected), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    # Checked right after the test's body, so a page's error fails the test itself
    # (not its teardown); whatever arrives later is caught when the pages close.
    result = yield
    fail_on_problems(item.stash.get(WATCHES, []), "during the test")
    return result


@pytest.fixture
async def open_page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[OpenPage]:
    watches: list[PageWatch] = []
    request.node.stash[WATCHES] = watches
    contexts: list[BrowserContext] = []

    async def open_(
        origin: str,
        *,
        allow: Iterable[str] = (),
        viewport: ViewportSize = DESKTOP,
        locale: str = "en-US",
    ) -> Page:
        watch = PageWatch(origin_of(origin), [re.compile(a) for a in allow])
        context = await browser.new_context(base_url=origin, viewport=viewport, locale=locale)
        contexts.append(context)
        await context.route("**/*", watch.route)
        page = await context.new_page()
        page.on("console", watch.console)
        page.on("pageerror", watch.page_error)
        page.on("requestfailed", watch.request_failed)
        page.on("response", watch.response)
        watches.append(watch)
        return page

    yield open_
    for context in contexts:
        await context.close()
    fail_on_problems(watches, "after the test")


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots", numbered=False)


@pytest.fixture
def screenshot(screenshot_dir: Path) -> Screenshot:
    also = os.environ.get("KAKIN_SCREENSHOTS")

    async def take(page: Page, name: str) -> Path:
        png = await page.screenshot(full_page=True)
        saved = screenshot_dir / f"{name}.png"
        saved.write_bytes(png)
        if also:
            Path(also).mkdir(parents=True, exist_ok=True)
            (Path(also) / f"{name}.png").write_bytes(png)
        return saved

    return take


async def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than its window (0: no sideways scrolling)."""
    overflow: int = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return overflow
