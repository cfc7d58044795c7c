"""Shared fixtures: real PostgreSQL and SQLite, the localstripe emulator, Temporal.

PostgreSQL is required: when it is missing the tests fail (they do not skip), because
a billing system that was never run on its production database is not tested.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import settings
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.bundle import Activities, build_activities
from kakin import contracts
from kakin.adapters.mailer import OutboxMailer
from kakin.adapters.rendering import make_template_env
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.dev.embedded import start_localstripe
from kakin.platform.binaries import find_binary
from kakin.services.invoice_documents import Seller
from models.db import make_engine, make_session_factory, migrate
from tests.helpers import connect_to, free_ports, running, serving_worker
from tests.support.encryption import TEST_KEYS, converter_for_tests

# No per-example time limit: Hypothesis' default (200 ms) is a timed assertion, and a
# busy machine failed property tests of the billing calendar with it. Speed lives in bench/.
settings.register_profile("kakin", deadline=None)
settings.load_profile("kakin")

# The browser fixtures (browser, open_page, screenshot): a plugin, so playwright's names
# stay in their own module and every test folder can use them.
pytest_plugins = ("tests.support.browser",)

PG_ADMIN_URL = os.environ.get("KAKIN_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")
# Payloads are encrypted in tests as in production: the fixtures' clients use these
# keys, and subprocesses (starter.py, kakin.cli) inherit them from the environment.
os.environ["KAKIN_ENCRYPTION_KEYS"] = TEST_KEYS
os.environ.pop("KAKIN_ENCRYPTION_KEYS_FILE", None)
os.environ.pop("KAKIN_ENCRYPTION_KEY_ID", None)

_SA_TYPES = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
}


# -- databases ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated to head."""
    name = f"kakin_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(
            f"PostgreSQL is required at {PG_ADMIN_URL} (set KAKIN_TEST_POSTGRES): {error}",
            pytrace=False,
        )
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    migrate(url)
    yield url
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'kakin.db'}"
    migrate(url)
    return url


@pytest.fixture(params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs a test once on PostgreSQL and once on SQLite."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture(scope="session")
def pg_sessions(postgres_url: str) -> sessionmaker[Session]:
    return make_session_factory(make_engine(postgres_url))


# -- Stripe emulator ------------------------------------------------------------------


@pytest.fixture(scope="session")
async def localstripe_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A private localstripe (its state in memory, not the shared /tmp pickle)."""
    port = free_ports(1)[0]
    process = await start_localstripe(port=port, log_dir=tmp_path_factory.mktemp("localstripe"))
    yield f"http://127.0.0.1:{port}"
    process.stop()


@pytest.fixture(scope="session")
def stripe_gateway(localstripe_url: str) -> StripeGateway:
    return StripeGateway(
        api_key="sk_test_kakin", api_base=localstripe_url, confirm_off_session=False
    )


# -- Temporal -------------------------------------------------------------------------


async def register_search_attributes(client: Client) -> None:
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace="default",
            search_attributes={
                key.name: _SA_TYPES[_type_name(key)] for key in contracts.SEARCH_ATTRIBUTES
            },
        )
    )


def _type_name(key: object) -> str:
    return "Datetime" if key is contracts.NEXT_RENEWAL_AT else "Keyword"


@pytest.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server: a year of renewals in seconds.

    One server per test: a subscription left running by one test would otherwise
    hold the shared clock while the next test skips time.
    """
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"),
        data_converter=converter_for_tests(),
    )
    await register_search_attributes(env.client)
    async with env:
        yield env


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server: visibility (list by search attribute), real signals."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        search_attributes=list(contracts.SEARCH_ATTRIBUTES),
        ui=False,
        data_converter=converter_for_tests(),
    )
    async with env:
        yield env


# -- kakin's own pieces ------------------------------------------------------------------

SELLER = Seller(
    name="kakin test K.K.",
    address="1-1 Chiyoda, Tokyo",
    registration_number="T9234567890123",
    payment_update_url="http://localhost:8000/pay/update",
    billing_page_url="http://localhost:8000/billing",
)


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


def make_activities(
    sessions: sessionmaker[Session], stripe: StripeGateway, outbox: Path
) -> Activities:
    return build_activities(
        session_factory=sessions,
        stripe=stripe,
        mailer=OutboxMailer(outbox),
        templates=make_template_env(),
        seller=SELLER,
    )


@pytest.fixture
def activities(
    pg_sessions: sessionmaker[Session], stripe_gateway: StripeGateway, outbox: Path
) -> Activities:
    return make_activities(pg_sessions, stripe_gateway, outbox)


@pytest.fixture
def task_queue() -> str:
    return f"billing-test-{secrets.token_hex(4)}"


@pytest.fixture
async def time_worker(
    time_env: WorkflowEnvironment, activities: Activities, task_queue: str
) -> AsyncIterator[Worker]:
    async with serving_worker(time_env.client, task_queue, activities) as worker:
        yield worker


@pytest.fixture
async def dev_worker(
    dev_env: WorkflowEnvironment, activities: Activities, task_queue: str
) -> AsyncIterator[Worker]:
    async with serving_worker(dev_env.client, task_queue, activities) as worker:
        yield worker


# -- a running API with its own worker, one per test module -------------------------------


@pytest.fixture(scope="module")
def module_task_queue(request: pytest.FixtureRequest) -> str:
    """A task queue of the module's own, so its workflows reach only its worker."""
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    return f"billing-{name}-{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def url(
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    dev_env: WorkflowEnvironment,
    module_task_queue: str,
) -> Iterator[str]:
    """The HTTP API, served for real (uvicorn in a thread), on the dev server."""
    from api.app import create_app
    from kakin.platform.settings import Settings

    settings = Settings(
        stripe_api_key="sk_test_kakin",
        database_url="sqlite:///unused.db",
        task_queue=module_task_queue,
    )
    app = create_app(
        settings=settings,
        sessions=pg_sessions,
        temporal=connect_to(dev_env.client.service_client.config.target_host),
        stripe=stripe_gateway,
    )
    with running(app) as base:
        yield base


@pytest.fixture(scope="module")
async def module_worker(
    dev_env: WorkflowEnvironment,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    tmp_path_factory: pytest.TempPathFactory,
    module_task_queue: str,
) -> AsyncIterator[Worker]:
    """A worker for the module's task queue, so subscriptions started by the API bill."""
    activities = make_activities(pg_sessions, stripe_gateway, tmp_path_factory.mktemp("outbox"))
    async with serving_worker(dev_env.client, module_task_queue, activities) as worker:
        yield worker


@pytest.fixture(scope="module")
def made_keys(request: pytest.FixtureRequest, pg_sessions: sessionmaker[Session]) -> dict[str, Any]:
    """One API key per role, named after the module that uses them."""
    from kakin.services import api_keys

    module = request.module.__name__.rsplit(".", 1)[-1]
    return {
        str(role): api_keys.create_key(pg_sessions, name=f"{module} {role}", role=role)
        for role in api_keys.Role
    }
