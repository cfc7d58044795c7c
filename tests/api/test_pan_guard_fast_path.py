"""The card-number guard's fast path (``pan_guard.plainly_clean``) never lets through
what the full scan refuses: it only ever skips bodies the full scan would pass."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api import pan_guard
from api.middleware import scan_body, scan_body_fully

CARD = "4242424242424242"  # Luhn-valid
PATH = "/v1/usage"

# Pieces strings are made of: card numbers in every spelling, near misses, and the
# characters that make raw JSON differ from the parsed text.
FRAGMENTS = [
    CARD,
    "4242 4242 4242 4242",
    "4242-4242-4242-4242",
    "4242+4242+4242+4242",
    "4242  4242 4242 4242",
    "1732400000000",  # 13 digits: an epoch-millisecond id
    "1234567890123",
    "12345678901234567890123",
    "2026-11-01T00:00:00+09:00",
    "cus_",
    "_",
    "a",
    " ",
    "-",
    "+",
    "%34",
    "%",
    "\\",
    '"',
    "\n",
    "\x00",
    "é",
    "日本",
    "[",
    "{",
    "}",
    "]",
    ":",
    ",",
]
KEYS = ["id", "customer_id", "event_id", "starting_after", "note", "n", "x_id", "ids", CARD]
text = st.lists(st.sampled_from(FRAGMENTS), max_size=6).map("".join)
scalar = st.one_of(
    text,
    st.integers(),
    st.sampled_from([int(CARD), -int(CARD), 1732400000000]),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False),
)
documents = st.recursive(
    scalar,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), text), children, max_size=4),
    ),
    max_leaves=20,
)


def encodings(document: Any) -> list[bytes]:
    """The document as clients send it: compact or spaced, escaped or as UTF-8."""
    return [
        json.dumps(document).encode(),
        json.dumps(document, ensure_ascii=False).encode(),
        json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode(),
        json.dumps(document, indent=2, ensure_ascii=False).encode(),
    ]


def agrees(body: bytes) -> None:
    full = scan_body_fully(body, method="POST", path=PATH)
    if pan_guard.plainly_clean(body):
        assert full is None, body
    assert scan_body(body, method="POST", path=PATH) == full


@settings(max_examples=400, deadline=None)
@given(document=documents)
def test_the_fast_path_passes_only_what_the_full_scan_passes(document: Any) -> None:
    for body in encodings(document):
        agrees(body)
        agrees(body[: len(body) // 2])  # cut short: not JSON, scanned as text


@settings(max_examples=200, deadline=None)
@given(pieces=st.lists(st.sampled_from([*FRAGMENTS, '{"a":', '"x_id": "']), max_size=12))
def test_the_fast_path_agrees_on_bodies_that_are_not_json(pieces: list[str]) -> None:
    agrees("".join(pieces).encode())


def usage_batch(event_id: Any) -> bytes:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    customers = [f"cus_{secrets.token_hex(10)}" for _ in range(100)]
    events = [
        {
            "event_id": event_id(n),
            "metric": "calls",
            "timestamp": (start + timedelta(seconds=n * 2591)).isoformat(),
            "customer_id": customers[n % 100],
            "properties": {"gb": n, "region": "ap-northeast-1"},
        }
        for n in range(1000)
    ]
    return json.dumps({"events": events}).encode()


@pytest.mark.parametrize(
    "event_id", [lambda n: f"evt-{n}", lambda n: str(1_732_400_000_000 + n)], ids=["text", "ms"]
)
def test_a_batch_of_usage_events_takes_the_fast_path(event_id: Any) -> None:
    # Random hex ids and epoch-millisecond event ids hold 13-digit runs now and then;
    # identifiers are not scanned, so they do not send the batch to the full scan.
    assert pan_guard.plainly_clean(usage_batch(event_id))


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        (json.dumps({"events": [{"properties": {"card": CARD}}]}), "events.0.properties.card"),
        (json.dumps({"note": "4242 4242 4242 4242"}), "note"),
        (json.dumps({"note": CARD}, ensure_ascii=True).replace("4", "\\u0034"), "note"),
        (json.dumps({"n": int(CARD)}), "n"),
        (json.dumps({"ids": [CARD]}), "ids.0"),  # a list under an id key is scanned
        (json.dumps({"customer_id": {"x": CARD}}), "customer_id.x"),
        (json.dumps({CARD + " id": "x"}), "a field name"),
        (f'{{"customer_id": "{CARD}"', "The request body"),  # not JSON: all text scanned
        (f"number=4242+4242+4242+4242&id={CARD}", "The request body"),
        ("card=%34242424242424242", "The request body"),
        (json.dumps({"note": CARD}).encode("utf-16").decode("latin-1"), "note"),
    ],
)
def test_what_the_full_scan_refuses_is_refused(body: str, refused: str) -> None:
    raw = body.encode("latin-1") if "\x00" in body else body.encode()
    assert not pan_guard.plainly_clean(raw)
    message = scan_body(raw, method="POST", path=PATH)
    assert message == pan_guard.refusal(refused)


def test_nul_characters_and_deep_nesting_are_still_refused() -> None:
    nul = json.dumps({"events": [{"event_id": "a\x00b"}]}).encode()
    assert not pan_guard.plainly_clean(nul)
    assert "NUL" in (scan_body(nul, method="POST", path=PATH) or "")
    for depth, refused in ((pan_guard.MAX_DEPTH, False), (pan_guard.MAX_DEPTH + 1, True)):
        deep = ("[" * depth + "1" + "]" * depth).encode()
        message = scan_body(deep, method="POST", path=PATH)
        assert (message is not None) is refused, depth
        assert pan_guard.plainly_clean(deep) is not refused
    for depth in (pan_guard.MAX_DEPTH, pan_guard.MAX_DEPTH + 1):  # lists and objects mixed
        document: Any = 1
        for level in range(depth):
            document = [document, 2] if level % 2 else {"k": document, "e": 3}
        body = json.dumps(document).encode()
        assert pan_guard.plainly_clean(body) is (depth <= pan_guard.MAX_DEPTH)
        agrees(body)
    brackets_in_strings = json.dumps({"note": "[" * 100, "more": "{{" * 100}).encode()
    assert pan_guard.plainly_clean(brackets_in_strings)


def test_identifier_values_are_skipped_but_nothing_else() -> None:
    ids = json.dumps({"id": CARD, "customer_id": CARD, "starting_after": CARD}).encode()
    assert pan_guard.plainly_clean(ids)
    assert scan_body(ids, method="POST", path=PATH) is None
    escaped = json.dumps({"customer_id": CARD + '"\\'}).encode()
    assert not pan_guard.plainly_clean(escaped)  # an escape: the full scan decides
    assert scan_body(escaped, method="POST", path=PATH) is None
