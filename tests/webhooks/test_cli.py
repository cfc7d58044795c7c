"""``kakin webhooks``: add (the secret printed once), list, disable, enable, rotate,
deliveries, and refusals as one line with exit 2."""

from __future__ import annotations

import json
import re

from tests.cli.test_cli import kakin


def test_add_list_disable_enable_rotate_and_deliveries(postgres_url: str) -> None:
    events = "invoice.paid,subscription.canceled"
    added = kakin(
        postgres_url, "webhooks", "add", "http://127.0.0.1:9/cli-hook", "--events", events
    )
    assert added.returncode == 0, added.stderr
    found = re.search(r"^(we_\w+)", added.stdout, re.MULTILINE)
    assert found is not None, added.stdout
    endpoint_id = found.group(1)
    assert re.search(r"signing secret: whsec_[A-Za-z0-9+/=]{32}", added.stdout)
    assert "shown this once" in added.stdout

    listed = kakin(postgres_url, "webhooks", "list")
    assert endpoint_id in listed.stdout and "whsec_" not in listed.stdout
    assert "invoice.paid, subscription.canceled" in listed.stdout

    disabled = kakin(postgres_url, "webhooks", "disable", endpoint_id, "--json")
    assert json.loads(disabled.stdout)["enabled"] is False
    assert json.loads(disabled.stdout)["disabled_reason"] == "disabled by cli"
    enabled = kakin(postgres_url, "webhooks", "enable", endpoint_id)
    assert "[enabled]" in enabled.stdout

    rotated = kakin(postgres_url, "webhooks", "rotate", endpoint_id, "--overlap-hours", "2")
    assert "signing secret: whsec_" in rotated.stdout
    assert "the old secret signs beside it until" in rotated.stdout

    none = kakin(postgres_url, "webhooks", "deliveries", endpoint_id)
    assert none.returncode == 0 and "no deliveries" in none.stdout


def test_refusals_are_one_line_and_exit_2(postgres_url: str) -> None:
    unknown = kakin(postgres_url, "webhooks", "add", "http://127.0.0.1:9/x", "--events", "nope")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: unknown event type(s) nope")
    ssrf = kakin(postgres_url, "webhooks", "add", "http://169.254.169.254/", "--events", "*")
    assert ssrf.returncode == 2 and "link-local" in ssrf.stderr and "Traceback" not in ssrf.stderr
    missing = kakin(postgres_url, "webhooks", "disable", "we_missing")
    assert missing.returncode == 2 and "we_missing" in missing.stderr
