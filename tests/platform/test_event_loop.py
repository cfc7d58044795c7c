"""No async code of kakin opens a database session on the event loop.

The API serves every request of a process from one event loop. A sync session opened
inside an ``async def`` runs its queries on that loop, and while one waits (a row lock,
a database restarting) every other request of the process waits too: the Stripe
webhook endpoint did this until the 10,000-renewal chaos run showed its backlog. The
database work of async code goes through ``asyncio.to_thread`` (services) or
``run_in_threadpool`` (routes).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("kakin", "api", "activities")


def _sessions_on_the_loop(path: Path, root: Path = REPO) -> list[str]:
    """``with sessions() ...`` blocks directly inside an ``async def`` (not inside a
    nested sync function, which runs wherever it is called from)."""
    found: list[str] = []

    def visit(node: ast.AST, in_async: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.AsyncFunctionDef):
                visit(child, child.name)
            elif isinstance(child, (ast.FunctionDef, ast.Lambda, ast.ClassDef)):
                visit(child, None)
            else:
                if in_async and isinstance(child, (ast.With, ast.AsyncWith)):
                    for item in child.items:
                        opened = ast.unparse(item.context_expr)
                        if isinstance(child, ast.With) and "session" in opened.lower():
                            relative = path.relative_to(root)
                            found.append(f"{relative}:{child.lineno} {in_async}: with {opened}")
                visit(child, in_async)

    visit(ast.parse(path.read_text(encoding="utf-8")), None)
    return found


def test_no_async_function_opens_a_database_session_on_the_event_loop() -> None:
    files = [f for package in PACKAGES for f in sorted((REPO / package).rglob("*.py"))]
    assert len(files) > 50  # the packages are where this test thinks they are
    offenders = [line for f in files for line in _sessions_on_the_loop(f)]
    assert offenders == [], "sync sessions on the event loop:\n" + "\n".join(offenders)


def test_the_check_sees_a_session_opened_on_the_loop(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "async def bad(sessions):\n"
        "    with sessions() as session:\n"
        "        return session\n"
        "async def fine(sessions):\n"
        "    def work():\n"
        "        with sessions() as session:\n"
        "            return session\n"
        "    return work\n",
        encoding="utf-8",
    )
    assert _sessions_on_the_loop(sample, tmp_path) == ["sample.py:2 bad: with sessions()"]
