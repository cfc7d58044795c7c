"""Readiness checks the faces run (the API's ``/v1/ready``)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from models import repositories as repo


def ping_database(sessions: sessionmaker[Session]) -> None:
    """Raises when the database does not answer ``SELECT 1``."""
    with sessions() as session:
        repo.ping(session)
