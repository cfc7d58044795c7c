"""Console forms act once: each page's forms carry a one-time token, spent by its first POST.

A double click, a form resent by the browser's back-and-reload or a retried request
would otherwise start a second subscription (a second charge) or issue a second credit
note. A form the console refuses (a wrong field, a role, an error) gives its token back
(``release``): corrected and sent again, it acts then. The CSRF check
(``api/console/auth.py``) already proves the token came from this console for this
browser; this module remembers which tokens were spent.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from models.staff_tables import ConsoleFormSubmission

# A page's forms are good for this long; the longest session (12 hours) fits in it.
LIFETIME = timedelta(hours=24)


def spend(sessions: sessionmaker[Session], nonce: str, *, now: datetime) -> bool:
    """Record the form token ``nonce`` as spent; False when it was spent before."""
    with sessions() as session:
        session.add(ConsoleFormSubmission(nonce=nonce, submitted_at=now))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return False
        # Older tokens are refused by their own time, so their rows can go.
        session.execute(
            delete(ConsoleFormSubmission).where(ConsoleFormSubmission.submitted_at < now - LIFETIME)
        )
        session.commit()
        return True


def release(sessions: sessionmaker[Session], nonce: str) -> None:
    """Forget that ``nonce`` was spent: its form was refused and did nothing."""
    with sessions() as session:
        session.execute(delete(ConsoleFormSubmission).where(ConsoleFormSubmission.nonce == nonce))
        session.commit()
