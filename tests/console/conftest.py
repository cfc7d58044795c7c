"""A console served in-process against PostgreSQL, with a clock the tests move.

The sign-in consoles (``console_url`` and its kin) never call Temporal or Stripe, so
their app gets addresses nothing listens on: a page that reached for either would fail
loudly. The back office (``office``) is wired to both, as ``kakin api`` is.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import create_app
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.platform.settings import Settings
from tests.console.browsing import Clock
from tests.console.office import Office
from tests.helpers import connect_to, running
from tests.support.encryption import TEST_KEYS

UNREACHABLE = "127.0.0.1:9"  # discard: nothing answers


def console_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "stripe_api_key": "sk_test_kakin",
        "database_url": "sqlite:///unused.db",
        "encryption_keys": TEST_KEYS,
        "console_secret": "console-test-secret",
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


ServeConsole = Callable[..., str]


@pytest.fixture(scope="session")
def console_clock() -> Clock:
    return Clock()


_days = itertools.count()


@pytest.fixture
def clock(console_clock: Clock) -> Clock:
    """A fresh day per test, so one test's failed sign-ins never throttle another's."""
    console_clock.now = datetime(2031, 1, 1, 9, tzinfo=UTC) + timedelta(days=next(_days))
    return console_clock


def _app_url(sessions: sessionmaker[Session], clock: Clock, settings: Settings) -> Iterator[str]:
    app = create_app(
        settings=settings,
        sessions=sessions,
        temporal=connect_to(UNREACHABLE),
        stripe=StripeGateway(api_key="sk_test_kakin", api_base=f"http://{UNREACHABLE}"),
        clock=clock,
    )
    with running(app) as url:
        yield url


@pytest.fixture(scope="session")
def console_url(pg_sessions: sessionmaker[Session], console_clock: Clock) -> Iterator[str]:
    """The console with the default settings (two-factor required)."""
    yield from _app_url(pg_sessions, console_clock, console_settings())


@pytest.fixture(scope="session")
def relaxed_console_url(pg_sessions: sessionmaker[Session], console_clock: Clock) -> Iterator[str]:
    """A console where two-factor is not required (test mode only)."""
    yield from _app_url(pg_sessions, console_clock, console_settings(console_require_2fa=False))


@pytest.fixture(scope="session")
def guarded_console_url(pg_sessions: sessionmaker[Session], console_clock: Clock) -> Iterator[str]:
    """A console that locks an address after 5 failed sign-ins."""
    settings = console_settings(console_address_lockout_failures=5)
    yield from _app_url(pg_sessions, console_clock, settings)


@pytest.fixture(scope="module")
def office(
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    dev_env: WorkflowEnvironment,
    module_task_queue: str,
    module_worker: Worker,
) -> Iterator[Office]:
    """The back office: the console wired to Temporal, localstripe and a worker, with
    signed-in staff of each role (``tests/console/office.py``)."""
    clock = Clock()
    clock.now = datetime.now(UTC).replace(microsecond=0)
    settings = console_settings(task_queue=module_task_queue)
    app = create_app(
        settings=settings,
        sessions=pg_sessions,
        temporal=connect_to(dev_env.client.service_client.config.target_host),
        stripe=stripe_gateway,
        clock=clock,
    )
    with running(app) as url:
        office = Office(
            url=url, sessions=pg_sessions, clock=clock, task_queue=module_task_queue, app=app
        )
        yield office
        office.close()
