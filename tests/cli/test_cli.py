"""The ``kakin`` operations commands (invoices, customers, subscriptions, usage billing),
run as a person would: ``python -m kakin.cli ...`` in a subprocess against PostgreSQL."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.bundle import Activities
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.cli import build_parser
from kakin.cli.subscriptions import build_starter_parser
from kakin.platform.settings import get_settings
from kakin.runtime import settings_from
from kakin.services import subscriptions as subscriptions_service
from models.payloads import CreateInvoiceRequest, FinalizeInvoiceRequest, RenderInvoiceRequest
from models.repositories.common import new_id
from models.tables import Subscription
from tests.helpers import customer_and_price

ROOT = Path(__file__).resolve().parents[2]


def kakin(postgres_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAKIN_DATABASE_URL": postgres_url, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "-m", "kakin.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )


@dataclass
class Billed:
    customer_id: str
    subscription_id: str
    invoice_id: str
    number: str


@pytest.fixture
def billed(
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    activities: Activities,
) -> Billed:
    """A ja/JPY customer with a subscription and one finalized, rendered 3,980円 invoice."""
    customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway, unit_amount=3980)
    subscription_id = new_id("sub")
    with pg_sessions() as session:
        session.add(
            Subscription(
                id=subscription_id,
                customer_id=customer_id,
                price_id=price_id,
                status="active",
                workflow_id=subscriptions_service.workflow_id(subscription_id),
            )
        )
        session.commit()
    start = datetime(2027, 1, 31, 0, 0, tzinfo=UTC)
    env = ActivityEnvironment()
    ref = env.run(
        activities.invoicing.create_invoice,
        CreateInvoiceRequest(
            subscription_id=subscription_id,
            period_index=0,
            period_start=start,
            period_end=start + timedelta(days=28),
            issued_at=start,
        ),
    )
    ref = env.run(
        activities.invoicing.finalize_invoice,
        FinalizeInvoiceRequest(invoice_id=ref.invoice_id, finalized_at=start),
    )
    env.run(activities.invoicing.render_invoice, RenderInvoiceRequest(invoice_id=ref.invoice_id))
    assert ref.number is not None
    return Billed(customer_id, subscription_id, ref.invoice_id, ref.number)


def test_invoices_list_and_show(postgres_url: str, billed: Billed) -> None:
    listed = kakin(postgres_url, "invoices", "list", "--customer", billed.customer_id)
    assert listed.returncode == 0, listed.stderr
    header, rule, row, *rest = listed.stdout.splitlines()
    assert header.split()[:5] == ["number", "id", "status", "total", "paid"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert billed.number in row and billed.invoice_id in row
    assert "3,980円" in row and "open" in row and "山田 太郎" in row
    assert rest == []
    # aligned: every column starts where its header does
    assert row.index(billed.invoice_id) == header.index("id")

    shown = kakin(postgres_url, "invoices", "show", billed.invoice_id)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert billed.number in text and "Pro plan" in text
    assert "2027-01-31 – 2027-02-28 (Asia/Tokyo)" in text  # 09:00 in Tokyo
    totals = {
        line.split()[0]: line.split()[1]
        for line in text.splitlines()
        if line.split()[:1] in (["subtotal"], ["total"], ["due"])
    }
    assert totals == {"subtotal": "3,980円", "total": "3,980円", "due": "3,980円"}


def test_json_output_parses(postgres_url: str, billed: Billed) -> None:
    listed = kakin(
        postgres_url, "invoices", "list", "--subscription", billed.subscription_id, "--json"
    )
    assert listed.returncode == 0, listed.stderr
    page = json.loads(listed.stdout)
    assert page["object"] == "list" and page["has_more"] is False
    [invoice] = page["data"]
    assert (invoice["id"], invoice["number"], invoice["status"]) == (
        billed.invoice_id,
        billed.number,
        "open",
    )
    assert (invoice["total"], invoice["currency"]) == (3980, "JPY")

    shown = json.loads(kakin(postgres_url, "invoices", "show", billed.invoice_id, "--json").stdout)
    assert [(line["quantity"], line["amount"]) for line in shown["lines"]] == [(1, 3980)]
    assert shown["amount_due"] == 3980 and shown["customer"]["locale"] == "ja"

    customers = json.loads(
        kakin(postgres_url, "customers", "list", "--limit", "100", "--json").stdout
    )
    assert billed.customer_id in [c["id"] for c in customers["data"]]
    subscriptions = kakin(
        postgres_url, "subscriptions", "list", "--customer", billed.customer_id, "--json"
    )
    [subscription] = json.loads(subscriptions.stdout)["data"]
    assert (subscription["id"], subscription["status"]) == (billed.subscription_id, "active")


def test_customers_and_subscriptions_tables(postgres_url: str, billed: Billed) -> None:
    customers = kakin(postgres_url, "customers", "list", "--limit", "100")
    assert customers.returncode == 0, customers.stderr
    assert customers.stdout.splitlines()[0].split()[:3] == ["id", "name", "email"]
    assert any(
        billed.customer_id in line and "山田 太郎" in line for line in customers.stdout.splitlines()
    )

    subscriptions = kakin(
        postgres_url,
        "subscriptions",
        "list",
        "--customer",
        billed.customer_id,
        "--status",
        "active",
    )
    assert subscriptions.returncode == 0, subscriptions.stderr
    [row] = subscriptions.stdout.splitlines()[2:]
    assert billed.subscription_id in row and "3,980円 / month" in row and "Pro plan" in row
    none = kakin(
        postgres_url,
        "subscriptions",
        "list",
        "--customer",
        billed.customer_id,
        "--status",
        "paused",
    )
    assert none.stdout.strip() == "no subscriptions"


def test_invoice_html_is_written_to_a_file(postgres_url: str, billed: Billed) -> None:
    written = kakin(postgres_url, "invoices", "html", billed.invoice_id)
    assert written.returncode == 0, written.stderr
    path = Path(written.stdout.strip())
    assert path.is_file() and path.suffix == ".html"
    assert billed.number in path.read_text(encoding="utf-8")
    path.unlink()


@pytest.mark.parametrize("command", ["show", "html"])
def test_an_unknown_invoice_is_one_line_on_stderr_and_exit_2(
    postgres_url: str, command: str
) -> None:
    result = kakin(postgres_url, "invoices", command, "in_nope")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == ["error: invoice 'in_nope' does not exist"]


def test_a_limit_out_of_range_exits_2(postgres_url: str) -> None:
    result = kakin(postgres_url, "customers", "list", "--limit", "1000")
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: --limit must be between 1 and 100"]


# -- usage billing: metrics, prices of any model, usage, PDFs, credit notes ----------------


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_from_metric_to_usage_so_far_and_a_pdf(
    postgres_url: str, billed: Billed, tmp_path: Path
) -> None:
    code = f"storage_{secrets.token_hex(3)}"
    metric = kakin(postgres_url, "metric", "create", "--code", code, "--aggregation", "sum",
                   "--property", "gb")  # fmt: skip
    assert ok(metric).startswith("bm_")
    rate = ok(kakin(postgres_url, "tax-rate", "create", "--name", "消費税", "--percentage", "10"))
    price = ok(
        kakin(postgres_url, "price", "create", "--product", "Storage", "--model", "graduated",
              "--metric", code, "--tier", "10:0", "--tier", "inf:5", "--tax-rate", rate)
    )  # fmt: skip
    assert price.startswith("price_")
    assert ok(kakin(postgres_url, "item", "add", billed.subscription_id, price)).startswith("si_")

    # The billed subscription's open period is 2027-01-31 to 2027-02-28.
    one = kakin(postgres_url, "usage", "report", "--event-id", "e1", "--metric", code,
                "--subscription", billed.subscription_id,
                "--timestamp", "2027-02-01T00:00:00+00:00", "--property", "gb=12")  # fmt: skip
    assert ok(one).split() == ["accepted", "e1"]
    events = [
        {"event_id": "e1", "metric": code, "timestamp": "2027-02-02T00:00:00+00:00",
         "subscription_id": billed.subscription_id, "properties": {"gb": 99}},
        {"event_id": "e2", "metric": "nope", "timestamp": "2027-02-02T00:00:00+00:00",
         "subscription_id": billed.subscription_id},
    ]  # fmt: skip
    lines = tmp_path / "events.jsonl"
    lines.write_text("\n".join(json.dumps(event) for event in events))
    batch = kakin(postgres_url, "usage", "report", "--file", str(lines))
    assert batch.returncode == 1  # something was rejected
    assert batch.stdout.splitlines() == [
        "duplicate  e1  already received; counted once",
        "rejected   e2  unknown metric 'nope'",
    ]

    shown = json.loads(ok(kakin(postgres_url, "usage", "show", billed.subscription_id, "--json")))
    assert [(x["quantity"], x["amount"]) for x in shown["lines"]] == [("12", 10)]
    table = ok(kakin(postgres_url, "usage", "show", billed.subscription_id))
    assert "Storage" in table and "10円" in table

    pdf = tmp_path / "invoice.pdf"
    assert ok(kakin(postgres_url, "invoices", "pdf", billed.invoice_id, "--output", str(pdf)))
    assert pdf.read_bytes().startswith(b"%PDF")


def test_refused_billing_requests_are_one_line_and_exit_2(
    postgres_url: str, billed: Billed
) -> None:
    refused = kakin(postgres_url, "credit-note", "create", billed.invoice_id, "--reason",
                    "duplicate", "--method", "credit", "--requested-by", "support:ken")  # fmt: skip
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: invoice ") and "only paid invoices" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    bad = kakin(postgres_url, "price", "create", "--product", "x", "--model", "volume",
                "--tier", "10:1")  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: the last tier must be open-ended (up_to=None)"


# -- the connection options, before or after the command --------------------------------

CONNECTION = ["--temporal-address", "temporal.internal:7233", "--namespace", "billing-prod",
              "--task-queue", "billing-blue"]  # fmt: skip
SUBSCRIPTION_COMMANDS = [
    ["start", "--customer", "cus_1", "--price", "price_1", "--trial-days", "14"],
    ["cancel", "sub_1", "--reason", "asked", "--requested-by", "support:ken", "--at-period-end"],
    ["pause", "sub_1", "--reason", "travel", "--requested-by", "support:ken"],
    ["resume", "sub_1", "--requested-by", "support:ken"],
    ["status", "sub_1", "--json"],
    ["update-card", "sub_1", "--card", "4242424242424242"],
]


@pytest.mark.parametrize("command", SUBSCRIPTION_COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("program", ["kakin", "starter.py"])
def test_connection_options_parse_the_same_before_and_after_the_command(
    program: str, command: list[str]
) -> None:
    parser = build_parser if program == "kakin" else build_starter_parser
    before = parser().parse_args([*CONNECTION, *command])
    after = parser().parse_args([*command, *CONNECTION])
    assert vars(before) == vars(after)
    settings = settings_from(after)
    assert (settings.temporal_address, settings.temporal_namespace, settings.task_queue) == (
        "temporal.internal:7233", "billing-prod", "billing-blue",
    )  # fmt: skip
    # Given in both places, the one after the command wins; given in neither, the setting.
    both = parser().parse_args(["--namespace", "first", *command, "--namespace", "second"])
    assert settings_from(both).temporal_namespace == "second"
    neither = settings_from(parser().parse_args(command))
    assert neither.temporal_address == get_settings().temporal_address


@pytest.mark.parametrize("command", [["worker"], ["api", "--port", "8001"]], ids=["worker", "api"])
def test_the_worker_and_the_api_take_the_connection_options_too(command: list[str]) -> None:
    before = build_parser().parse_args([*CONNECTION, *command])
    after = build_parser().parse_args([*command, *CONNECTION])
    assert vars(before) == vars(after)
    assert after.temporal_address == "temporal.internal:7233" and after.task_queue == "billing-blue"


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "kakin.cli", "--temporal-address", "{address}", "status", "sub_x"],
        ["-m", "kakin.cli", "status", "sub_x", "--temporal-address", "{address}"],
        ["starter.py", "status", "sub_x", "--temporal-address", "{address}"],
        [
            "starter.py",
            "cancel",
            "sub_x",
            "--temporal-address",
            "{address}",
            "--reason",
            "r",
            "--requested-by",
            "support:ken",
        ],
    ],
    ids=["kakin-before", "kakin-after", "starter-after", "starter-between"],
)
def test_the_address_given_after_the_command_is_the_one_dialled(argv: list[str]) -> None:
    from tests.helpers import free_ports

    address = f"127.0.0.1:{free_ports(1)[0]}"  # nothing listens there
    result = subprocess.run(
        [sys.executable, *(part.format(address=address) for part in argv)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: cannot reach Temporal at {address}: "), result.stderr
