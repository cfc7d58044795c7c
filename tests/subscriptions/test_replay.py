"""Recorded histories of every workflow path still replay against today's code.

A change to SubscriptionWorkflow that would make running subscriptions fail (a new
activity, a reordered step, a removed timer) fails here, in CI, instead of in
production. Re-record after an intended, patched change with:

    KAKIN_RECORD_HISTORIES=1 python3 dev.py test tests/subscriptions/test_subscription_workflow.py

and keep the old files too: histories from before the change must still replay.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.helpers import HISTORIES
from tests.support.encryption import converter_for_tests
from workflows.subscription import SubscriptionWorkflow

RECORDED = sorted(HISTORIES.glob("*.json"))
PATHS = (
    "renewals", "dunning_to_cancel", "recovery_from_past_due", "recovery_from_suspended",
    "cancel_now", "cancel_at_period_end", "trial", "pause_resume", "payment_received",
    "upgrade", "downgrade", "grace", "waive", "final_usage",
    # Periods on the customer's calendar (patch "local-calendar"): Tokyo month ends, a
    # trial across a DST change in Los Angeles.
    "local_calendar", "local_trial",
)  # fmt: skip


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json("subscription-replay", path.read_text())


def test_every_workflow_path_has_a_recorded_history() -> None:
    recorded = {path.name.split(".")[0] for path in RECORDED}
    assert set(PATHS) <= recorded, f"missing histories: {sorted(set(PATHS) - recorded)}"


@pytest.mark.parametrize("path", RECORDED, ids=[p.name for p in RECORDED])
async def test_recorded_history_replays(path: Path) -> None:
    # Histories recorded since payloads are encrypted need the test keys; older ones
    # are plain and pass through the codec unchanged.
    replayer = Replayer(workflows=[SubscriptionWorkflow], data_converter=converter_for_tests())
    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
