"""Readiness checks the faces run (the API's ``/v1/ready``)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from models.repositories.common import ping


def ping_database(sessions: sessionmaker[Session]) -> None:
    """Raises when the database does not answer ``SELECT 1``."""
    with sessions() as session:
        ping(session)
