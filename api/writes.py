"""What every write (POST) shares: the caller's key, its ``Idempotency-Key``, and the
work, run at most once per key (``api.idempotency``).

An endpoint takes ``write: WriteDep`` and hands its work to ``write.run`` (a coroutine)
or ``write.run_sync`` (blocking service calls, through the thread pool).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker

from api.deps import KEY, Deps, DepsDep, IdemKey, requester
from api.idempotency import Work, once
from kakin.services.api_keys import KeyInfo


class Write:
    """One write request: the app's ``Deps``, the caller's key and Idempotency-Key."""

    def __init__(
        self, request: Request, deps: Deps, key: KeyInfo, idempotency_key: str | None
    ) -> None:
        self.request = request
        self.deps = deps
        self.key = key
        self.idempotency_key = idempotency_key

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self.deps.sessions

    @property
    def requested_by(self) -> str:
        """Who asked, as the audit log and the workflow keep it."""
        return requester(self.key)

    async def run(self, work: Work, *, status: int = 200) -> JSONResponse:
        """Answer ``status`` with what ``work`` returns, at most once per Idempotency-Key."""
        return await once(
            self.request,
            self.deps.sessions,
            self.key,
            self.idempotency_key,
            status=status,
            work=work,
        )

    async def run_sync(
        self, call: Callable[..., Any], *args: Any, status: int = 200
    ) -> JSONResponse:
        """``run`` for blocking work: ``call(*args)`` in the thread pool."""
        return await self.run(lambda: run_in_threadpool(call, *args), status=status)


async def write_of(
    request: Request, deps: DepsDep, idempotency_key: IdemKey = None, key: KeyInfo = KEY
) -> Write:
    """The request as a ``Write``; ``async`` so it costs no trip through the thread pool."""
    return Write(request, deps, key, idempotency_key)


WriteDep = Annotated[Write, Depends(write_of)]
