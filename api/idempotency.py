"""``Idempotency-Key`` on POST: a retried request gets the first response, not a second effect.

Keys are scoped per API key. The key's row is inserted and committed *before* the
work runs (the pair API key + Idempotency-Key is unique), so of two concurrent
duplicates exactly one runs the work; the other finds the row still processing and
gets 409. When the work succeeds its response is stored, and replays with the same
key, method, path and body get it back (same status, same body, header
``Idempotent-Replayed: true``). A different body or path with a used key is a 409.
A refusal (any 4xx), a 5xx or an unexpected error removes the row, so the client may
retry with the key: the corrected request, or the same one once the server is back.
Every endpoint checks before it acts, so a refusal has changed nothing and there is
no effect to protect from a second run (as Stripe does not keep a result for a
request that failed validation).

Keys are kept for ``RETENTION`` (24 hours, as Stripe does): a retry comes within
minutes, and a table that only grew would keep every response body forever. An
expired key is free again the moment it is reused (one DELETE by the unique key); the
rest are deleted by ``prune``, which ``once`` runs at most every ``PRUNE_EVERY`` per
database, so the sweep is one DELETE now and then rather than one per request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from api.errors import ApiError, ErrorBody
from kakin.services import idempotency as store
from kakin.services.api_keys import KeyInfo
from kakin.services.idempotency import RETENTION as RETENTION  # the tests and docs name them here
from kakin.services.idempotency import prune as prune

log = logging.getLogger("kakin.api")

MAX_KEY_LENGTH = 255
PRUNE_EVERY = 600.0  # seconds between sweeps of expired keys, per database
RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorBody,
        "description": "the Idempotency-Key was used for another request, or is in progress",
    }
}

# The response: a model, or (for large bodies built in bulk) its JSON-ready dict.
Work = Callable[[], Awaitable[BaseModel | dict[str, Any]]]


def _json_content(result: BaseModel | dict[str, Any]) -> Any:
    return result if isinstance(result, dict) else result.model_dump(mode="json")


def request_digest(body: bytes) -> str:
    """SHA-256 of the body; JSON is canonicalized first, so spacing and key order don't count."""
    try:
        canonical = json.dumps(
            json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
    except ValueError:
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


# When each database (by its session factory) is next due a sweep, in monotonic time.
_next_prune: weakref.WeakKeyDictionary[sessionmaker[Session], float] = weakref.WeakKeyDictionary()
_prune_lock = threading.Lock()


def _prune_now_and_then(sessions: sessionmaker[Session]) -> None:
    """``prune`` if this database has not been swept for ``PRUNE_EVERY`` seconds.

    Best effort: a failed sweep is logged and tried again later; it never fails the
    request that happened to trigger it.
    """
    with _prune_lock:
        due = _next_prune.get(sessions, 0.0)
        if time.monotonic() < due:
            return
        _next_prune[sessions] = time.monotonic() + PRUNE_EVERY
    try:
        deleted = store.prune(sessions)
    except Exception:
        log.warning("expired idempotency keys were not pruned", exc_info=True)
        return
    if deleted:
        log.info("pruned %d expired idempotency keys", deleted)


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
        return JSONResponse(_json_content(await work()), status_code=status)
    method, path = request.method, request.url.path
    digest = request_digest(await request.body())
    await run_in_threadpool(_prune_now_and_then, sessions)
    held = await run_in_threadpool(store.claim, sessions, api_key, key, method, path, digest)
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
        content = _json_content(await work())
    except BaseException:  # a refusal (ApiError) changed nothing: the key is free again
        await run_in_threadpool(store.release, sessions, api_key, key)
        raise
    await run_in_threadpool(store.finish, sessions, api_key, key, status, content)
    return JSONResponse(content, status_code=status)
