"""The dunning ladder: its default, the KAKIN_DUNNING_SCHEDULE syntax, and its emails."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from billing.dunning import (
    FIRST_FAILURE_EMAIL,
    DunningAction,
    DunningPolicy,
    DunningStep,
    parse_policy,
)
from kakin.platform.settings import DEFAULT_DUNNING, Settings

DEFAULT_LADDER = [
    DunningStep(3, DunningAction.RETRY),
    DunningStep(7, DunningAction.RETRY),
    DunningStep(14, DunningAction.SUSPEND),
    DunningStep(21, DunningAction.RETRY),
    DunningStep(30, DunningAction.CANCEL),
]


def step_index(policy: DunningPolicy, day: int) -> int:
    return next(i for i, step in enumerate(policy.steps) if step.day == day)


def render(policy: DunningPolicy) -> str:
    return ",".join(f"{step.day}:{step.action.value}" for step in policy.steps)


# --- the default ladder ----------------------------------------------------------------


def test_default_policy_is_the_documented_ladder() -> None:
    assert DunningPolicy().steps == DEFAULT_LADDER


def test_default_policy_equals_the_default_setting() -> None:
    assert DunningPolicy() == parse_policy(DEFAULT_DUNNING)


def test_settings_default_schedule_is_the_default_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAKIN_DUNNING_SCHEDULE", raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.dunning_schedule == DEFAULT_DUNNING
    assert settings.dunning_policy == DunningPolicy()


def test_schedule_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAKIN_DUNNING_SCHEDULE", "2:retry,10:suspend,20:cancel")
    policy = Settings(_env_file=None).dunning_policy  # type: ignore[call-arg]
    assert policy.steps == [
        DunningStep(2, DunningAction.RETRY),
        DunningStep(10, DunningAction.SUSPEND),
        DunningStep(20, DunningAction.CANCEL),
    ]


# --- emails after a failed retry ----------------------------------------------------


def test_default_ladder_emails() -> None:
    policy = DunningPolicy()
    assert policy.email_after_failed_retry(step_index(policy, 3)) == "payment_reminder"
    assert policy.email_after_failed_retry(step_index(policy, 7)) == "payment_reminder"
    assert policy.email_after_failed_retry(step_index(policy, 21)) == "final_notice"
    assert FIRST_FAILURE_EMAIL == "payment_failed"


def test_a_single_retry_is_the_last_one() -> None:
    policy = parse_policy("5:retry,30:cancel")
    assert policy.email_after_failed_retry(0) == "final_notice"


# --- parsing -------------------------------------------------------------------------


def test_whitespace_case_and_empty_parts_are_tolerated() -> None:
    text = " 3 : Retry , 7:RETRY,,14:suspend, 21:retry ,30:Cancel ,"
    assert parse_policy(text) == DunningPolicy()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3-retry", r"'3-retry'.*DAY:ACTION"),
        ("x:retry", r"'x:retry'.*whole number"),
        ("3.5:retry,30:cancel", r"'3.5:retry'"),
        ("3:explode", r"'3:explode'.*retry, suspend, cancel"),
        ("3:retry:now,30:cancel", r"'3:retry:now'"),
        ("7:retry,3:retry,30:cancel", r"increasing"),
        ("7:retry,3:retry", r"increasing"),
        ("3:retry,3:suspend,30:cancel", r"distinct"),
        ("0:retry,30:cancel", r"after day 0"),
        ("-1:retry,30:cancel", r"after day 0"),
        ("3:retry", r"cancel"),
        ("3:retry,30:cancel,40:retry", r"end with a cancel"),
        ("3:cancel,30:cancel", r"exactly one cancel"),
        ("", r"cancel"),
    ],
)
def test_bad_schedules_are_refused_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_policy(text)


def test_bad_schedule_in_settings_is_refused_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAKIN_DUNNING_SCHEDULE", "3:retry,14:explode,30:cancel")
    with pytest.raises(ValidationError, match="'14:explode'"):
        Settings(_env_file=None)  # type: ignore[call-arg]


# --- properties of any valid ladder ---------------------------------------------------


@st.composite
def policies(draw: st.DrawFn) -> DunningPolicy:
    days = sorted(draw(st.sets(st.integers(1, 365), min_size=1, max_size=12)))
    middle = draw(
        st.lists(
            st.sampled_from([DunningAction.RETRY, DunningAction.SUSPEND]),
            min_size=len(days) - 1,
            max_size=len(days) - 1,
        )
    )
    actions = [*middle, DunningAction.CANCEL]
    return DunningPolicy(steps=[DunningStep(d, a) for d, a in zip(days, actions, strict=True)])


@given(policies())
def test_rendered_policy_parses_back(policy: DunningPolicy) -> None:
    assert parse_policy(render(policy)) == policy


@given(policies())
def test_only_the_last_retry_sends_the_final_notice(policy: DunningPolicy) -> None:
    retries = [i for i, s in enumerate(policy.steps) if s.action == DunningAction.RETRY]
    emails = [policy.email_after_failed_retry(i) for i in retries]
    if retries:
        assert emails[-1] == "final_notice"
    assert all(email == "payment_reminder" for email in emails[:-1])


@given(policies())
def test_a_valid_ladder_ends_in_its_only_cancel(policy: DunningPolicy) -> None:
    assert policy.steps[-1].action == DunningAction.CANCEL
    assert [s.action for s in policy.steps].count(DunningAction.CANCEL) == 1
    days = [s.day for s in policy.steps]
    assert days == sorted(set(days)) and days[0] > 0
