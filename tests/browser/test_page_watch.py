"""The browser fixtures themselves: what ``open_page`` sees, blocks and lets through.

A page built to go wrong in every way the watch looks for, served next to a second
server on another origin that counts what reaches it (nothing may).
"""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from tests.helpers import running
from tests.support.browser import WATCHES, OpenPage, PageWatch, fail_on_problems

BROKEN = """<!doctype html><html><head><script src="/missing.js"></script></head><body>
<img src="{other}/pixel.png" alt="">
<script>console.error("boom from the page")</script>
<script>throw new Error("uncaught on purpose")</script>
</body></html>"""


def broken_site() -> FastAPI:
    app = FastAPI()

    @app.get("/broken", response_class=HTMLResponse)
    def broken(other: str) -> str:
        return BROKEN.format(other=other)

    @app.get("/only-a-missing-script", response_class=HTMLResponse)
    def missing_script() -> str:
        return '<!doctype html><html><head><script src="/missing.js"></script></head></html>'

    return app


def counting_site(hits: list[str]) -> FastAPI:
    app = FastAPI()

    @app.get("/{path:path}")
    def anything(request: Request) -> Response:
        hits.append(str(request.url))
        return Response(b"", media_type="image/png")

    return app


def watch_of(request: pytest.FixtureRequest) -> PageWatch:
    [watch] = request.node.stash[WATCHES]
    return watch


async def test_every_kind_of_trouble_is_seen_and_another_origin_is_never_reached(
    open_page: OpenPage, request: pytest.FixtureRequest
) -> None:
    hits: list[str] = []
    with running(broken_site()) as url, running(counting_site(hits)) as other:
        page = await open_page(url)
        await page.goto(f"/broken?other={other}")
        await page.wait_for_load_state("networkidle")
        seen = watch_of(request).unexpected()  # taken, so this test itself passes
    assert hits == [], "a request reached the other origin"
    assert f"request to another origin (blocked): {other}/pixel.png" in seen
    assert f"HTTP 404: GET {url}/missing.js" in seen
    assert any(p.startswith("console error: boom from the page") for p in seen)
    assert "uncaught exception: uncaught on purpose" in seen
    with pytest.raises(pytest.fail.Exception, match="boom from the page"):
        fail_on_problems([PageWatch(url, [], problems=seen)], "during the test")


async def test_what_a_test_allows_does_not_fail_it(
    open_page: OpenPage, request: pytest.FixtureRequest
) -> None:
    with running(broken_site()) as url:
        page = await open_page(url, allow=[r"missing\.js"])
        await page.goto("/only-a-missing-script")
        await page.wait_for_load_state("networkidle")
    watch = watch_of(request)
    assert any("HTTP 404" in p for p in watch.problems)
    assert watch.unexpected() == []
