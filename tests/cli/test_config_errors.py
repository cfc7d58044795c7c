"""A refused ``KAKIN_*`` setting is one line naming it and exit code 2, from every entry point.

Each entry point runs as a person or a container runs it, in a subprocess: the ``kakin``
commands (database, Temporal, HTTP), ``python worker.py``, ``python starter.py``.
pydantic's own report is 18 to 22 lines around the one sentence that matters.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from billing.tax import corporate_number_check_digit
from kakin.services.invoice_documents import Seller
from tests.conftest import SELLER
from tests.helpers import free_ports

ROOT = Path(__file__).resolve().parents[2]
KAKIN = str(Path(sys.executable).with_name("kakin"))  # the console script pip installs
PY = sys.executable
BAD_NUMBER = "T1234567890123"  # the check digit should be 9

ENTRY_POINTS = {
    "kakin invoices list": [KAKIN, "invoices", "list"],
    "kakin migrate": [PY, "-m", "kakin.cli", "migrate"],
    "kakin worker": [PY, "-m", "kakin.cli", "worker"],
    "worker.py": [PY, "worker.py"],
    "worker.py --role activities": [PY, "worker.py", "--role", "activities"],
    "kakin api": [PY, "-m", "kakin.cli", "api", "--port", "{port}"],
    "kakin codec-server": [PY, "-m", "kakin.cli", "codec-server", "--port", "{port}"],
    "kakin up": [PY, "-m", "kakin.cli", "up", "--data-dir", "{tmp}", "--no-demo",
                 "--exit-after-demo", "--api-port", "{port}"],
    "kakin status": [PY, "-m", "kakin.cli", "status", "sub_x"],
    "kakin start (options after)": [PY, "-m", "kakin.cli", "start", "--customer", "cus_x",
                                    "--price", "price_x", "--temporal-address", "127.0.0.1:1"],
    "starter.py cancel": [PY, "starter.py", "cancel", "sub_x", "--reason", "r",
                          "--requested-by", "support:ken"],
}  # fmt: skip


def run(command: list[str], tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    port = str(free_ports(1)[0])
    argv = [part.format(port=port, tmp=tmp_path / "data") for part in command]
    env = {
        **os.environ,
        "KAKIN_DATABASE_URL": f"sqlite:///{tmp_path / 'kakin.db'}",
        # Nothing listens here: a command that got past the settings would fail otherwise.
        "KAKIN_TEMPORAL_ADDRESS": "127.0.0.1:1",
        **settings,
    }
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, encoding="utf-8", timeout=120
    )


def assert_one_line(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert len(lines) == 1, result.stderr
    [line] = lines
    assert line.startswith("error: "), line
    for needle in needles:
        assert needle in line, line
    assert "Traceback" not in result.stdout + result.stderr
    return line


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_a_wrong_registration_number_is_one_line_and_exit_2(tmp_path: Path, name: str) -> None:
    result = run(ENTRY_POINTS[name], tmp_path, KAKIN_SELLER_REGISTRATION_NUMBER=BAD_NUMBER)
    line = assert_one_line(result, "KAKIN_SELLER_REGISTRATION_NUMBER", "check digit", BAD_NUMBER)
    assert "validation error" not in line and "pydantic" not in line
    assert not (tmp_path / "data").exists(), "kakin up started something before refusing"


@pytest.mark.parametrize(
    "name", ["kakin invoices list", "worker.py", "kakin api", "starter.py cancel"]
)
def test_every_bad_setting_is_named_on_the_same_line(tmp_path: Path, name: str) -> None:
    result = run(
        ENTRY_POINTS[name], tmp_path,
        KAKIN_STRIPE_RATE_LIMIT="fast", KAKIN_EMAIL_BACKEND="pigeon",
        KAKIN_STRIPE_API_KEY="sk_test_do_not_echo_me",
    )  # fmt: skip
    line = assert_one_line(result, "KAKIN_STRIPE_RATE_LIMIT", "KAKIN_EMAIL_BACKEND", "'sendgrid'")
    assert "fast" not in line and "pigeon" not in line  # the values are never echoed


@pytest.mark.parametrize("name", ["kakin worker", "worker.py", "kakin up"])
def test_a_setting_that_needs_another_is_refused_before_anything_starts(
    tmp_path: Path, name: str
) -> None:
    result = run(ENTRY_POINTS[name], tmp_path, KAKIN_EMAIL_BACKEND="sendgrid")
    assert_one_line(result, "KAKIN_SENDGRID_API_KEY")
    assert "127.0.0.1:1" not in result.stderr  # refused before connecting to Temporal


def test_the_seller_is_checked_wherever_it_is_built() -> None:
    with pytest.raises(ValueError, match="wrong check digit"):
        Seller(name="kakin K.K.", address="Tokyo", registration_number=BAD_NUMBER)
    typed = Seller(
        name="kakin K.K.", address="Tokyo", registration_number="ｔ９２３４-５６７８-９０１２３"
    )
    assert typed.registration_number == "T9234567890123"
    assert Seller(name="kakin K.K.", address="Tokyo").registration_number == ""
    # The number the tests and the bench print on invoices is a valid one.
    digits = SELLER.registration_number[1:]
    assert int(digits[0]) == corporate_number_check_digit(digits[1:])
