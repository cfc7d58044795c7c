"""Payload encryption: the codec, its keys, a real workflow's history, the codec endpoint.

The workflow test runs SubscriptionWorkflow on the time-skipping server with the
encrypting clients every fixture uses (tests/support/encryption.py) and then reads
the history back from the server as raw protobuf: personal data typed by support
(a cancel reason naming the customer) must not appear anywhere in it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf.message import Message
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from api.codec_server import COOKIE, create_codec_app
from kakin import contracts
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.platform import codec
from kakin.platform.codec import (
    ENCODING,
    METADATA_KEY_ID,
    DecryptionError,
    EncryptionCodec,
    EncryptionKeyError,
    Keyring,
    UnknownKeyError,
)
from kakin.platform.settings import Settings
from kakin.services import api_keys, subscriptions
from kakin.services.api_keys import CreatedKey
from models.payloads import SubscriptionStatus
from tests.helpers import HISTORIES, customer_and_price
from tests.support.encryption import TEST_KEY, TEST_KEY_ID, codec_for_tests, converter_for_tests
from workflows.subscription import SubscriptionWorkflow

EMAIL = "taro@example.jp"  # the customer tests.helpers.customer_and_price creates
NAME = "山田 太郎"
UI = "http://localhost:8233"
KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))


def payload(text: str) -> Payload:
    return DataConverter.default.payload_converter.to_payload(text)


def plain(p: Payload) -> str:
    value = DataConverter.default.payload_converter.from_payload(p, str)
    assert isinstance(value, str)
    return value


def make_codec(keys: dict[str, bytes], current: str) -> EncryptionCodec:
    return EncryptionCodec(Keyring(keys=keys, current=current))


# -- the codec ------------------------------------------------------------------------


async def test_roundtrip_encrypts_with_the_key_id_in_metadata() -> None:
    c = make_codec({"a": KEY_A}, "a")
    original = payload(f"{NAME} <{EMAIL}>")
    [sealed] = await c.encode([original])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[METADATA_KEY_ID] == b"a"
    assert set(sealed.metadata) == {"encoding", METADATA_KEY_ID}  # json/plain is hidden too
    assert EMAIL.encode() not in sealed.SerializeToString()
    assert NAME.encode() not in sealed.SerializeToString()
    [opened] = await c.decode([sealed])
    assert opened == original
    assert plain(opened) == f"{NAME} <{EMAIL}>"
    # A fresh nonce each time: the same value never encrypts to the same bytes.
    [again] = await c.encode([original])
    assert again.data != sealed.data and again.data[:12] != sealed.data[:12]


async def test_key_rotation_keeps_old_payloads_readable() -> None:
    old = make_codec({"k1": KEY_A}, "k1")
    [sealed_before] = await old.encode([payload("before rotation")])

    rotated = EncryptionCodec(Keyring(keys={"k1": KEY_A}, current="k1").rotated("k2", KEY_B))
    assert rotated.key_id == "k2"
    [opened] = await rotated.decode([sealed_before])
    assert plain(opened) == "before rotation"
    [sealed_after] = await rotated.encode([payload("after rotation")])
    assert sealed_after.metadata[METADATA_KEY_ID] == b"k2"
    # The old worker, not yet given the new key, says exactly which key it lacks.
    with pytest.raises(UnknownKeyError, match="'k2'"):
        await old.decode([sealed_after])


async def test_a_payload_under_an_unknown_key_id_fails_naming_it() -> None:
    [sealed] = await make_codec({"retired-2025": KEY_A}, "retired-2025").encode([payload("x")])
    with pytest.raises(UnknownKeyError, match="'retired-2025'") as raised:
        await make_codec({"k2": KEY_B}, "k2").decode([sealed])
    assert raised.value.key_id == "retired-2025"
    assert KEY_A.hex() not in str(raised.value)


async def test_tampered_payloads_fail_authentication() -> None:
    c = make_codec({"a": KEY_A, "b": KEY_B}, "a")
    [sealed] = await c.encode([payload("amount 3980")])
    flipped = bytearray(sealed.data)
    flipped[20] ^= 0x01
    tampered = Payload(metadata=dict(sealed.metadata), data=bytes(flipped))
    with pytest.raises(DecryptionError, match="failed authentication"):
        await c.decode([tampered])
    # Relabelled with the other key's id: the id is bound to the ciphertext.
    relabelled = Payload(metadata={**sealed.metadata, METADATA_KEY_ID: b"b"}, data=sealed.data)
    with pytest.raises(DecryptionError):
        await c.decode([relabelled])
    # Same id, another key under it (a misconfiguration): refused, not garbage.
    with pytest.raises(DecryptionError):
        await make_codec({"a": KEY_B}, "a").decode([sealed])
    with pytest.raises(DecryptionError, match="truncated"):
        await c.decode([Payload(metadata=dict(sealed.metadata), data=sealed.data[:10])])


async def test_unencrypted_payloads_pass_through_unchanged() -> None:
    original = payload("recorded before encryption")
    [opened] = await make_codec({"a": KEY_A}, "a").decode([original])
    assert opened is original


# -- keys from settings ---------------------------------------------------------------


def entry(key_id: str, key: bytes) -> str:
    return f"{key_id}:{base64.b64encode(key).decode()}"


def settings(**values: Any) -> Settings:
    base: dict[str, Any] = {"encryption_keys": "", "encryption_keys_file": ""}
    return Settings(_env_file=None, **(base | values))  # type: ignore[call-arg]


def test_keys_from_the_environment_and_a_file(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# retired keys\n{entry('old', KEY_B)}\n\n")
    s = settings(
        encryption_keys=f"{entry('new', KEY_A)}, {entry('other', KEY_B[::-1])}",
        encryption_keys_file=str(keys_file),
    )
    ring = codec.keyring_from_settings(s)
    assert ring.current == "new"
    assert set(ring.keys) == {"new", "other", "old"}
    assert (
        codec.keyring_from_settings(
            settings(encryption_keys=s.encryption_keys, encryption_key_id="other")
        ).current
        == "other"
    )
    # Secrets stay out of reprs (and so out of logs that print settings or codecs).
    for shown in (repr(s), repr(ring), repr(EncryptionCodec(ring)), str(s)):
        assert base64.b64encode(KEY_A).decode() not in shown
        assert "new:" not in shown


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("nokey", "not 'id:base64key'"),
        ("a:not-base64!", "'a' is not valid base64"),
        (f"a:{base64.b64encode(b'short').decode()}", "'a' is 5 bytes"),
        (f"bad id:{base64.b64encode(KEY_A).decode()}", "'bad id' must be"),
        (f"{entry('a', KEY_A)},{entry('a', KEY_B)}", "'a' is given twice"),
    ],
)
def test_bad_key_configuration_is_refused_without_echoing_keys(keys: str, message: str) -> None:
    with pytest.raises(EncryptionKeyError, match=message) as raised:
        codec.keyring_from_settings(settings(encryption_keys=keys))
    assert base64.b64encode(KEY_A).decode() not in str(raised.value)


def test_current_key_must_be_configured() -> None:
    with pytest.raises(EncryptionKeyError, match="'missing' is not among"):
        codec.keyring_from_settings(
            settings(encryption_keys=entry("a", KEY_A), encryption_key_id="missing")
        )


def test_without_keys_test_mode_uses_the_dev_key_and_live_mode_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EncryptionKeyError, match="KAKIN_ENCRYPTION_KEYS"):
        codec.keyring_from_settings(settings())
    made = codec.ensure_dev_key_file(Path("var/encryption.keys"))
    assert stat.S_IMODE(os.stat(made).st_mode) == 0o600
    first = made.read_text()
    assert codec.ensure_dev_key_file(made).read_text() == first  # never overwritten
    assert codec.keyring_from_settings(settings()).current == "dev1"
    with pytest.raises(EncryptionKeyError, match="no payload encryption key"):
        codec.keyring_from_settings(settings(stripe_api_key="sk_live_x"))


async def test_wiring_builds_an_encrypting_client_and_refuses_without_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kakin import runtime as wiring

    monkeypatch.chdir(tmp_path)
    with pytest.raises(EncryptionKeyError):
        await wiring.temporal_client(settings(stripe_api_key="sk_live_x"))
    converter = codec.data_converter_from_settings(settings(encryption_keys=entry("a", KEY_A)))
    assert isinstance(converter.payload_codec, EncryptionCodec)
    assert converter.payload_codec.key_id == "a"


async def test_histories_recorded_before_encryption_still_replay() -> None:
    # The .v1 set is the one recorded before payloads were encrypted (plain JSON payloads).
    path = HISTORIES / "cancel_now.v1.run00.json"
    # (Payload metadata is base64 in a history's JSON.)
    assert base64.b64encode(b"binary/encrypted").decode() not in path.read_text()
    replayer = Replayer(workflows=[SubscriptionWorkflow], data_converter=converter_for_tests())
    history = WorkflowHistory.from_json("x", path.read_text())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None


# -- a real workflow's history --------------------------------------------------------


def all_payloads(message: Message) -> Iterator[Payload]:
    """Every Payload inside a protobuf message (history events nest them deeply)."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            for item in value.values():
                if isinstance(item, Message):
                    yield from all_payloads(item)
        elif isinstance(value, Message):
            yield from all_payloads(value)
        else:  # a repeated field
            for item in value:
                yield from all_payloads(item)


# The workflow's patch ids (workflow.patched): public names, in the clear by design.
PATCH_IDS = set(contracts.PATCHES)


def patch_marker_payloads(history: WorkflowHistory) -> list[Payload]:
    """The details of the SDK's patch markers (``workflow.patched``)."""
    return [
        p
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and event.marker_recorded_event_attributes.marker_name == "core_patch"
        for p in all_payloads(event)
    ]


def search_attribute_payloads(history: WorkflowHistory) -> list[Payload]:
    found: list[Payload] = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            attrs = event.workflow_execution_started_event_attributes.search_attributes
        elif event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            attrs = event.upsert_workflow_search_attributes_event_attributes.search_attributes
        else:
            continue
        found.extend(attrs.indexed_fields.values())
    return found


@pytest.fixture
def keys(pg_sessions: sessionmaker[Session]) -> dict[str, CreatedKey]:
    return {
        role: api_keys.create_key(pg_sessions, name=f"codec test {role}", role=role)
        for role in ("service", "support", "admin")
    }


@pytest.fixture
async def codec_http(pg_sessions: sessionmaker[Session]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_codec_app(codec=codec_for_tests(), sessions=pg_sessions, ui_origin=UI + "/")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8000") as http:
        yield http


def as_json(payloads: list[Payload]) -> dict[str, Any]:
    return {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                "data": base64.b64encode(p.data).decode(),
            }
            for p in payloads
        ]
    }


def from_json(body: dict[str, Any]) -> list[Payload]:
    return [
        Payload(
            metadata={k: base64.b64decode(v) for k, v in p.get("metadata", {}).items()},
            data=base64.b64decode(p.get("data", "")),
        )
        for p in body["payloads"]
    ]


async def test_history_from_the_server_holds_only_ciphertext(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
    keys: dict[str, CreatedKey],
    codec_http: httpx.AsyncClient,
) -> None:
    customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway)
    start = (await time_env.get_current_time()) + timedelta(hours=1)
    subscription_id = await subscriptions.start_subscription(
        time_env.client, pg_sessions, task_queue=task_queue,
        customer_id=customer_id, price_id=price_id, start_at=start,
    )  # fmt: skip
    # Support types what the customer said, name and email included: free text that
    # travels in the cancel signal and the audit activity's arguments.
    reason = f"{NAME} ({EMAIL}) asked by phone to stop"
    await subscriptions.cancel_subscription(
        time_env.client, subscription_id,
        reason=reason, at_period_end=False, requested_by="support:ken",
    )  # fmt: skip
    handle = subscriptions.handle(time_env.client, subscription_id)
    assert await handle.result() == "canceled"  # the workflow works, through the codec

    # What the server stores, read with a client that has no keys at all.
    plain_client = await Client.connect(time_env.client.service_client.config.target_host)
    history = await plain_client.get_workflow_handle(handle.id).fetch_history()
    raw = b"".join(event.SerializeToString() for event in history.events)
    for secret in (EMAIL, NAME, json.dumps(NAME)[1:-1]):  # JSON escapes the name: \\u5c71...
        assert secret.encode() not in raw, secret
    assert b"asked by phone" not in raw
    assert b"support:ken" not in raw

    attributes = search_attribute_payloads(history)
    # The SDK itself writes a patch marker's details ({"id": <patch id>, "deprecated"})
    # without the codec: they hold a public patch id, nothing else.
    markers = patch_marker_payloads(history)
    assert {json.loads(p.data)["id"] for p in markers} <= PATCH_IDS
    payloads = [
        p
        for event in history.events
        for p in all_payloads(event)
        if not any(p is a or p == a for a in [*attributes, *markers])
    ]
    assert len(payloads) >= 5
    assert all(p.metadata["encoding"] == ENCODING for p in payloads), [
        dict(p.metadata) for p in payloads if p.metadata.get("encoding") != ENCODING
    ]
    assert {p.metadata[METADATA_KEY_ID] for p in payloads} == {TEST_KEY_ID.encode()}

    # Search attributes are not encrypted, so they hold ids, statuses and dates only.
    upserts = [
        event.upsert_workflow_search_attributes_event_attributes.search_attributes
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    ]
    names = {name for upsert in upserts for name in upsert.indexed_fields}
    # TemporalChangeVersion is the SDK's own, listing the patch ids the workflow took.
    names_allowed = {key.name for key in contracts.SEARCH_ATTRIBUTES} | {"TemporalChangeVersion"}
    assert names and names <= names_allowed
    converter = DataConverter.default.payload_converter
    statuses = {str(s) for s in SubscriptionStatus}
    for p in attributes:
        value = converter.from_payload(p)
        values = value if isinstance(value, list) else [value]
        for v in values:
            assert (
                v is None
                or v in statuses
                or v in (customer_id, price_id)
                or v in PATCH_IDS
                or _is_datetime(v)
            ), v

    # Decrypted, the signal carries the reason: the check above was not vacuous.
    signals = [
        e.workflow_execution_signaled_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    [signal] = signals
    [opened] = await codec_for_tests().decode(list(signal.input.payloads))
    assert json.loads(opened.data)["reason"] == reason
    assert EMAIL.encode() in opened.data and json.dumps(NAME)[1:-1].encode() in opened.data

    # The codec endpoint decrypts that payload for support, and for nobody else.
    body = as_json(list(signal.input.payloads))
    refused = await codec_http.post("/decode", json=body, headers={"X-Namespace": "default"})
    assert refused.status_code == 401
    assert EMAIL not in refused.text
    as_service = await codec_http.post(
        "/decode", json=body, headers={"Authorization": f"Bearer {keys['service'].secret}"}
    )
    assert as_service.status_code == 403
    decoded = await codec_http.post(
        "/default/decode",
        json=body,
        headers={"Authorization": f"Bearer {keys['support'].secret}", "X-Namespace": "default"},
    )
    assert decoded.status_code == 200, decoded.text
    [shown] = from_json(decoded.json())
    assert json.loads(shown.data)["reason"] == reason
    assert shown.metadata["encoding"] == b"json/plain"

    # And the Replayer, given the keys, replays the encrypted history; without them it cannot.
    replayed = await Replayer(
        workflows=[SubscriptionWorkflow], data_converter=converter_for_tests()
    ).replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None
    blind = await Replayer(workflows=[SubscriptionWorkflow]).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert blind.replay_failure is not None


def _is_datetime(value: object) -> bool:
    if isinstance(value, datetime):
        return True
    try:
        datetime.fromisoformat(str(value)).astimezone(UTC)
    except ValueError:
        return False
    return True


# -- the codec endpoint ---------------------------------------------------------------


async def sealed_json(text: str) -> dict[str, Any]:
    return as_json(await codec_for_tests().encode([payload(text)]))


async def test_endpoint_decodes_for_support_and_admin_keys_only(
    codec_http: httpx.AsyncClient, keys: dict[str, CreatedKey], pg_sessions: sessionmaker[Session]
) -> None:
    body = await sealed_json(EMAIL)
    for role in ("support", "admin"):
        answer = await codec_http.post(
            "/decode", json=body, headers={"Authorization": f"Bearer {keys[role].secret}"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        assert plain(from_json(answer.json())[0]) == EMAIL
    for headers, status in [
        ({}, 401),
        ({"Authorization": "Bearer kk_support_not-a-real-key"}, 401),
        ({"Authorization": f"Basic {keys['support'].secret}"}, 401),
        ({"Authorization": f"Bearer {keys['service'].secret}"}, 403),
    ]:
        answer = await codec_http.post("/decode", json=body, headers=headers)
        assert answer.status_code == status, headers
        assert EMAIL not in answer.text
        assert answer.json()["error"]["type"] in ("authentication_error", "permission_error")
    # A revoked key is refused from then on.
    api_keys.revoke_key(pg_sessions, keys["admin"].info.id)
    answer = await codec_http.post(
        "/decode", json=body, headers={"Authorization": f"Bearer {keys['admin'].secret}"}
    )
    assert answer.status_code == 401


async def test_endpoint_encodes_and_reports_bad_input_as_400(
    codec_http: httpx.AsyncClient, keys: dict[str, CreatedKey]
) -> None:
    auth = {"Authorization": f"Bearer {keys['support'].secret}"}
    encoded = await codec_http.post("/encode", json=as_json([payload("hello")]), headers=auth)
    assert encoded.status_code == 200
    [sealed] = from_json(encoded.json())
    assert sealed.metadata["encoding"] == ENCODING
    assert plain((await codec_for_tests().decode([sealed]))[0]) == "hello"

    bad = await codec_http.post("/decode", content=b"{not json", headers=auth)
    assert bad.status_code == 400
    other_key = as_json(await make_codec({"gone": KEY_A}, "gone").encode([payload("x")]))
    unknown = await codec_http.post("/decode", json=other_key, headers=auth)
    assert unknown.status_code == 400
    assert "'gone'" in unknown.json()["error"]["message"]
    too_big = await codec_http.post("/decode", content=b"x" * (8 * 1024 * 1024 + 1), headers=auth)
    assert too_big.status_code == 413
    # Unencrypted payloads come back as they are (histories from before encryption).
    passthrough = await codec_http.post("/decode", json=as_json([payload("old")]), headers=auth)
    assert plain(from_json(passthrough.json())[0]) == "old"


async def test_cors_answers_the_ui_origin_only(
    codec_http: httpx.AsyncClient, keys: dict[str, CreatedKey]
) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace",
    }
    ok = await codec_http.options("/decode", headers={"Origin": UI, **preflight})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == UI
    assert ok.headers["access-control-allow-credentials"] == "true"
    assert "POST" in ok.headers["access-control-allow-methods"]
    assert "x-namespace" in ok.headers["access-control-allow-headers"].lower()

    evil = await codec_http.options(
        "/decode", headers={"Origin": "https://evil.example", **preflight}
    )
    assert evil.status_code >= 400
    assert "access-control-allow-origin" not in evil.headers

    body = await sealed_json("x")
    auth = {"Authorization": f"Bearer {keys['support'].secret}"}
    from_ui = await codec_http.post("/decode", json=body, headers={"Origin": UI, **auth})
    assert from_ui.headers["access-control-allow-origin"] == UI
    from_evil = await codec_http.post(
        "/decode", json=body, headers={"Origin": "https://evil.example", **auth}
    )
    assert "access-control-allow-origin" not in from_evil.headers
    # The UI can read a refusal too (and show "sign in"), still only from its origin.
    unauthorized = await codec_http.post("/decode", json=body, headers={"Origin": UI})
    assert unauthorized.status_code == 401
    assert unauthorized.headers["access-control-allow-origin"] == UI


async def test_signing_in_sets_a_cookie_the_ui_sends(
    codec_http: httpx.AsyncClient, keys: dict[str, CreatedKey]
) -> None:
    page = await codec_http.get("/login")
    assert page.status_code == 200 and "<form" in page.text
    refused = await codec_http.post("/login", data={"key": keys["service"].secret})
    assert refused.status_code == 403
    assert COOKIE not in refused.headers.get("set-cookie", "")
    cross_site = await codec_http.post(
        "/login", data={"key": keys["support"].secret}, headers={"Origin": "https://evil.example"}
    )
    assert cross_site.status_code == 403

    signed_in = await codec_http.post("/login", data={"key": keys["support"].secret})
    assert signed_in.status_code == 200
    cookie = signed_in.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert keys["support"].secret not in signed_in.text

    body = await sealed_json(NAME)
    answer = await codec_http.post("/decode", json=body, headers={"Origin": UI})
    assert answer.status_code == 200
    assert plain(from_json(answer.json())[0]) == NAME

    await codec_http.post("/logout")
    codec_http.cookies.clear()
    assert (await codec_http.post("/decode", json=body)).status_code == 401


def test_the_test_keys_are_the_ones_the_fixtures_use() -> None:
    ring = codec.keyring_from_settings(Settings())
    assert ring.current == TEST_KEY_ID and ring.keys[TEST_KEY_ID] == TEST_KEY


async def test_mounted_under_a_path_it_serves_the_protocol_and_scopes_its_cookie(
    pg_sessions: sessionmaker[Session], keys: dict[str, CreatedKey]
) -> None:
    """`kakin up` mounts the endpoint at /codec on the API port."""
    from fastapi import FastAPI

    app = FastAPI()
    app.mount(
        "/codec",
        create_codec_app(codec=codec_for_tests(), sessions=pg_sessions, ui_origin=UI),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8000") as http:
        signed_in = await http.post("/codec/login", data={"key": keys["admin"].secret})
        assert "Path=/codec" in signed_in.headers["set-cookie"]
        answer = await http.post("/codec/default/decode", json=await sealed_json("mounted"))
        assert answer.status_code == 200
        assert plain(from_json(answer.json())[0]) == "mounted"


@pytest.mark.devserver
async def test_the_embedded_dev_server_points_its_ui_at_the_codec_endpoint(
    tmp_path: Path,
) -> None:
    """What `kakin up` starts: the Web UI's own settings name the codec endpoint."""
    from kakin.dev.embedded import start_temporal_dev_server
    from tests.helpers import free_ports

    port, ui_port = free_ports(2)
    endpoint = "http://localhost:8000/codec"
    process = await start_temporal_dev_server(
        data_dir=tmp_path, port=port, ui_port=ui_port, log_dir=tmp_path / "logs",
        ui_codec_endpoint=endpoint,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(100):  # the UI may answer a moment after the frontend
                try:
                    answer = await http.get(f"http://127.0.0.1:{ui_port}/api/v1/settings")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("the Temporal UI never answered")
        assert answer.json()["Codec"]["Endpoint"] == endpoint
    finally:
        process.stop()
