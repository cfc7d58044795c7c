"""``kakin alerts``: set a capped usage alert, see the cap refuse usage reported by
``kakin usage report``, raise it (audited), remove the alert."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.tables import AuditLog
from tests.cli.test_cli import kakin, ok
from tests.usage.test_usage_ingestion import at, metered_subscription


def test_add_list_raise_the_cap_and_remove(
    postgres_url: str, pg_sessions: sessionmaker[Session]
) -> None:
    _, subscription_id, code = metered_subscription(pg_sessions)
    added = json.loads(ok(kakin(
        postgres_url, "alerts", "add", "--subscription", subscription_id, "--watches", "usage",
        "--metric", code, "--threshold", "5", "--threshold", "8", "--every", "5",
        "--hard-cap", "10", "--requested-by", "support:ken", "--json",
    )))[0]  # fmt: skip
    assert (added["levels"], added["hard_cap"]) == (["5", "8"], "10")

    def report(event_id: str, gb: int) -> str:
        return kakin(postgres_url, "usage", "report", "--event-id", event_id, "--metric", code,
                     "--subscription", subscription_id, "--timestamp", at(1).isoformat(),
                     "--property", f"gb={gb}").stdout.strip()  # fmt: skip

    assert report("c1", 10).split() == ["accepted", "c1"]  # exactly the cap
    assert report("c2", 1).startswith("rejected   c2  the usage cap of 10")
    table = ok(kakin(postgres_url, "alerts", "list", "--subscription", subscription_id))
    assert added["id"] in table and "10 (reached)" in table and "5, 8, cap:10" in table

    raised = ok(kakin(postgres_url, "alerts", "update", added["id"], "--hard-cap", "20",
                      "--requested-by", "support:ken", "--reason", "asked by phone"))  # fmt: skip
    assert "20" in raised and "(reached)" not in raised
    assert report("c2", 1).split() == ["accepted", "c2"]
    with pg_sessions() as session:
        audit = session.scalars(select(AuditLog).where(AuditLog.entity_id == added["id"],
                                AuditLog.action == "usage_cap_changed")).one()  # fmt: skip
        assert (audit.actor, audit.reason) == ("cli:support:ken", "asked by phone")

    assert ok(kakin(postgres_url, "alerts", "remove", added["id"], "--requested-by", "ken"))
    gone = kakin(postgres_url, "alerts", "show", added["id"])
    assert gone.returncode == 2 and "does not exist" in gone.stderr
