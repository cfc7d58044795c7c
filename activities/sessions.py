"""Database sessions for activities, out of reach of the SDK's cancellation.

A sync activity runs in a thread, and the Temporal SDK cancels it (a worker stopping on
SIGTERM, a cancelled activity) by raising ``CancelledError`` inside that thread at
whatever line it is running. Landing inside psycopg, between sending a statement and
reading its answer, it leaves the connection busy: closing the session then fails with
"another command is already in progress", a broken connection goes back to the pool,
and the activity's error says nothing of why it stopped.

A session made here holds the cancellation back while it is open (the SDK's
``shield_thread_cancel_exception``) and lets it go once the session is closed, so the
activity still stops, just between database steps. Every step is a transaction, and a
retry starts from what the last committed one left, as it does after a crash.
"""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity


class ActivitySession(Session):
    """A Session whose ``with`` block defers an activity's cancellation to its end."""

    _shield: contextlib.ExitStack | None = None

    def __enter__(self) -> ActivitySession:
        if activity.in_activity():
            self._shield = contextlib.ExitStack()
            self._shield.enter_context(activity.shield_thread_cancel_exception())
        return self

    def __exit__(self, *exc: Any) -> None:
        shield, self._shield = self._shield, None
        try:
            self.close()
        finally:
            if shield is not None:
                shield.close()  # a cancellation held back is raised here, the session closed


def activity_sessions(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """``factory``'s sessions (same engine and options) as ActivitySessions."""
    if issubclass(factory.class_, ActivitySession):
        return factory
    return sessionmaker(class_=ActivitySession, **factory.kw)
