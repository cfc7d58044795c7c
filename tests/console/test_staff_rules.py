"""The rules under sign-in, without a server: throttling, passwords, sealing, the words."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from api.console.messages import MESSAGES
from kakin.platform.codec import Keyring
from kakin.platform.sealing import SealedValueError, seal, unseal
from kakin.services import staff
from kakin.services.staff import StaffInputError
from kakin.services.staff_throttle import refusal
from kakin.services.staff_two_factor import hash_recovery_code, looks_like_recovery_code
from tests.support.encryption import TEST_KEY, TEST_KEY_ID

NOW = datetime(2031, 1, 1, 9, tzinfo=UTC)
RULES = {"slow_after": 3, "lock_after": 10, "lock_for": timedelta(minutes=15),
         "longest_wait": timedelta(seconds=30)}  # fmt: skip


def failures(*seconds_ago: int) -> list[datetime]:
    return sorted((NOW - timedelta(seconds=s) for s in seconds_ago), reverse=True)


def test_two_failures_are_not_slowed() -> None:
    assert refusal(failures(0, 1), now=NOW, **RULES) is None  # type: ignore[arg-type]


def test_from_the_third_failure_each_try_waits_twice_as_long() -> None:
    for count, wait in ((3, 1), (4, 2), (5, 4), (8, 30), (9, 30)):
        just_failed = failures(*range(count))
        found = refusal(just_failed, now=NOW, **RULES)  # type: ignore[arg-type]
        assert found is not None and not found.locked
        assert found.until == NOW + timedelta(seconds=wait)
        assert refusal(just_failed, now=found.until, **RULES) is None  # type: ignore[arg-type]


def test_ten_failures_lock_until_the_tenth_latest_is_fifteen_minutes_old() -> None:
    ten = failures(*(60 * minute for minute in range(10)))  # one a minute, the last now
    found = refusal(ten, now=NOW, **RULES)  # type: ignore[arg-type]
    assert found is not None and found.locked
    assert found.until == NOW - timedelta(minutes=9) + timedelta(minutes=15)


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short-one", "password_short"),
        ("x" * 257, "password_long"),
        ("Password1234", "password_common"),  # common ones are refused whatever the case
        ("1qaz2wsx3edc", "password_common"),
        ("hanako-secret-2031", "password_personal"),
    ],
)
def test_weak_passwords_are_refused_with_a_reason(password: str, reason: str) -> None:
    with pytest.raises(StaffInputError) as refused:
        staff.check_password(password, email="hanako@example.jp", name="Hanako")
    assert refused.value.reason == reason


def test_a_long_unusual_password_is_accepted() -> None:
    staff.check_password("violet-harbour-lantern-42", email="hanako@example.jp", name="Hanako")


def test_a_sealed_secret_opens_only_for_its_purpose() -> None:
    keyring = Keyring(keys={TEST_KEY_ID: TEST_KEY}, current=TEST_KEY_ID)
    sealed = seal(keyring, b"JBSWY3DPEHPK3PXP", purpose="staff-totp:staff_1")
    assert "JBSWY3DPEHPK3PXP" not in sealed and sealed.startswith(f"v1:{TEST_KEY_ID}:")
    assert unseal(keyring, sealed, purpose="staff-totp:staff_1") == b"JBSWY3DPEHPK3PXP"
    with pytest.raises(SealedValueError):  # copied onto another staff member's row
        unseal(keyring, sealed, purpose="staff-totp:staff_2")
    with pytest.raises(SealedValueError):
        unseal(keyring, sealed[:-4] + "AAAA", purpose="staff-totp:staff_1")


def test_recovery_codes_are_read_however_they_are_typed() -> None:
    code = "abcd-efgh-jkmn-pqrs"
    assert looks_like_recovery_code("ABCD EFGH JKMN PQRS")
    assert not looks_like_recovery_code("123456")
    typed = "ABCDEFGHJKMNPQRS"
    assert hash_recovery_code("s1", code) == hash_recovery_code("s1", typed)
    assert hash_recovery_code("s1", code) != hash_recovery_code("s2", code)


def test_both_languages_have_every_message_with_the_same_placeholders() -> None:
    assert set(MESSAGES["ja"]) == set(MESSAGES["en"])

    def placeholders(text: str) -> set[str]:
        return set(re.findall(r"\{(\w+)\}", text))

    for key, english in MESSAGES["en"].items():
        assert placeholders(english) == placeholders(MESSAGES["ja"][key]), key
