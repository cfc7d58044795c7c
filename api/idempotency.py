"""``Idempotency-Key`` on POST: a retried request gets the first response, not a second effect.

Keys are scoped per API key. The key's row is inserted and committed *before* the
work runs (the pair API key + Idempotency-Key is unique), so of two concurrent
duplicates exactly one runs the work; the other finds the row still processing and
gets 409. When the work ends with a response below 500 it is stored, and replays with
the same key, method, path and body get it back (same status, same body, header
``Idempotent-Replayed: true``). A different body or path with a used key is a 409.
A 5xx or an unexpected error removes the row, so the client may retry with the key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from api.errors import ApiError, ErrorBody, error_body
from kakin.api_keys import KeyInfo
from models import repositories as repo
from models.tables import IdempotencyKey

MAX_KEY_LENGTH = 255
RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorBody,
        "description": "the Idempotency-Key was used for another request, or is in progress",
    }
}

Work = Callable[[], Awaitable[BaseModel]]


def request_digest(body: bytes) -> str:
    """SHA-256 of the body; JSON is canonicalized first, so spacing and key order don't count."""
    try:
        canonical = json.dumps(
            json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
    except ValueError:
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


def _claim(
    sessions: sessionmaker[Session], api_key: KeyInfo, key: str, method: str, path: str, digest: str
) -> IdempotencyKey | None:
    """Insert the processing row; if the key is taken, return the row that holds it."""
    for _ in range(3):  # the holder may release the key between our insert and our lookup
        with sessions() as session:
            session.add(
                IdempotencyKey(
                    api_key_id=api_key.id,
                    key=key,
                    method=method,
                    path=path,
                    request_hash=digest,
                )
            )
            try:
                session.commit()
                return None
            except IntegrityError:
                session.rollback()
            existing = repo.idempotency_key(session, api_key.id, key)
            if existing is not None:
                session.expunge(existing)
                return existing
    raise ApiError(409, "A request with this Idempotency-Key is still in progress")


def _finish(
    sessions: sessionmaker[Session], api_key: KeyInfo, key: str, status: int, body: Any
) -> None:
    with sessions() as session:
        row = repo.idempotency_key(session, api_key.id, key)
        if row is not None:
            row.response_status = status
            row.response_body = body
            session.commit()


def _release(sessions: sessionmaker[Session], api_key: KeyInfo, key: str) -> None:
    with sessions() as session:
        row = repo.idempotency_key(session, api_key.id, key)
        if row is not None and row.response_status is None:
            session.delete(row)
            session.commit()


async def once(
    request: Request,
    sessions: sessionmaker[Session],
    api_key: KeyInfo,
    key: str | None,
    *,
    status: int,
    work: Work,
) -> JSONResponse:
    """Run ``work`` and answer ``status`` with its result, at most once per ``key``."""
    if key is None:
        return JSONResponse((await work()).model_dump(mode="json"), status_code=status)
    method, path = request.method, request.url.path
    digest = request_digest(await request.body())
    held = await run_in_threadpool(_claim, sessions, api_key, key, method, path, digest)
    if held is not None:
        if (held.method, held.path) != (method, path):
            raise ApiError(
                409,
                f"This Idempotency-Key was used for {held.method} {held.path}; "
                "use a new key for a different request",
            )
        if held.request_hash != digest:
            raise ApiError(
                409,
                "This Idempotency-Key was used with a different request body; "
                "use a new key for a different request",
            )
        if held.response_status is None:
            raise ApiError(409, "A request with this Idempotency-Key is still in progress")
        return JSONResponse(
            held.response_body,
            status_code=held.response_status,
            headers={"Idempotent-Replayed": "true"},
        )
    try:
        content = (await work()).model_dump(mode="json")
    except ApiError as error:
        if error.status >= 500:
            await run_in_threadpool(_release, sessions, api_key, key)
            raise
        body = error_body(error.status, error.message, type=error.type)
        await run_in_threadpool(_finish, sessions, api_key, key, error.status, body)
        raise
    except BaseException:
        await run_in_threadpool(_release, sessions, api_key, key)
        raise
    await run_in_threadpool(_finish, sessions, api_key, key, status, content)
    return JSONResponse(content, status_code=status)
