"""Alembic environment: the URL comes from the config (set by models.db.migrate) or settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

# The staff console's tables live in their own module on the same Base: imported so
# target_metadata holds them too.
import models.alert_tables
import models.staff_tables
import models.webhook_tables  # noqa: F401
from kakin.platform.settings import get_settings
from models.db import normalize_url
from models.tables import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    return normalize_url(get_settings().database_url)


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    section = config.get_section(config.config_ini_section) or {}
    section["sqlalchemy.url"] = _url()
    connectable = engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
