"""Recorded histories of the webhook workflows replay against today's code, so a change
that would break deliveries in flight fails here. Re-record (keeping the old files) with

    KAKIN_RECORD_HISTORIES=1 .venv/bin/python -m pytest tests/webhooks/test_delivery.py -k schedule
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from kakin.runtime import WEBHOOK_WORKFLOWS
from tests.support.encryption import converter_for_tests
from tests.webhooks.conftest import HISTORIES

RECORDED = sorted(HISTORIES.glob("*.json"))


def test_the_retry_path_and_the_dispatcher_are_recorded() -> None:
    assert {path.stem for path in RECORDED} >= {"retries", "dispatch"}


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
async def test_a_recorded_history_replays(path: Path) -> None:
    replayer = Replayer(workflows=WEBHOOK_WORKFLOWS, data_converter=converter_for_tests())
    history = WorkflowHistory.from_json(f"webhook-replay-{path.stem}", path.read_text())
    await replayer.replay_workflow(history)
