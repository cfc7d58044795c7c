"""The id of the request being served, for log lines written while serving it."""

from __future__ import annotations

from contextvars import ContextVar

request_id: ContextVar[str] = ContextVar("kakin_request_id", default="-")
