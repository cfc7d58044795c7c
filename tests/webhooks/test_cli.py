"""``kakin webhooks``: add (the secret printed once), list, disable, enable, rotate,
deliveries, and refusals as one line with exit 2."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable

import pytest

from kakin.cli import main
from kakin.platform.settings import get_settings

Kakin = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def kakin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Kakin:
    """``kakin ...`` in this process (as ``python -m kakin.cli`` runs it, without the
    seconds a new interpreter takes), on the test database."""

    def run(postgres_url: str, *args: str) -> subprocess.CompletedProcess[str]:
        monkeypatch.setenv("KAKIN_DATABASE_URL", postgres_url)
        get_settings.cache_clear()
        try:
            code = main(list(args))
        finally:
            get_settings.cache_clear()
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out, err)

    return run


def test_add_list_disable_enable_rotate_and_deliveries(postgres_url: str, kakin: Kakin) -> None:
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


def test_refusals_are_one_line_and_exit_2(postgres_url: str, kakin: Kakin) -> None:
    unknown = kakin(postgres_url, "webhooks", "add", "http://127.0.0.1:9/x", "--events", "nope")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: unknown event type(s) nope")
    ssrf = kakin(postgres_url, "webhooks", "add", "http://169.254.169.254/", "--events", "*")
    assert ssrf.returncode == 2 and "link-local" in ssrf.stderr and "Traceback" not in ssrf.stderr
    missing = kakin(postgres_url, "webhooks", "disable", "we_missing")
    assert missing.returncode == 2 and "we_missing" in missing.stderr
