"""``/v1/webhook-endpoints`` over HTTP: admin keys only, the secret shown once, event types
checked against the known list, enable/disable, rotation and deletion audited."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from kakin.services.api_keys import CreatedKey
from tests.helpers import client, error_of

PATHS = [
    ("GET", "/v1/webhook-endpoints"),
    ("POST", "/v1/webhook-endpoints"),
    ("GET", "/v1/webhook-endpoints/we_x"),
    ("PATCH", "/v1/webhook-endpoints/we_x"),
    ("DELETE", "/v1/webhook-endpoints/we_x"),
    ("POST", "/v1/webhook-endpoints/we_x/rotate_secret"),
    ("GET", "/v1/webhook-endpoints/we_x/deliveries"),
    ("GET", "/v1/webhook-deliveries/wd_x"),
    ("POST", "/v1/webhook-deliveries/wd_x/resend"),
]


@pytest.mark.parametrize("role", ["service", "support", "finance"])
def test_only_admin_keys_reach_the_webhook_endpoints(
    url: str, made_keys: dict[str, CreatedKey], role: str
) -> None:
    with client(url, made_keys[role].secret) as http:
        for method, path in PATHS:
            response = http.request(method, path, json={} if method != "GET" else None)
            assert error_of(response, 403)["type"] == "permission_error", (method, path)


def test_an_admin_registers_updates_rotates_and_deletes_an_endpoint(
    url: str, made_keys: dict[str, CreatedKey], pg_sessions: sessionmaker[Session]
) -> None:
    hook = "http://127.0.0.1:9/hooks"
    with client(url, made_keys["admin"].secret) as http:
        created = http.post(
            "/v1/webhook-endpoints",
            json={
                "url": hook,
                "enabled_events": ["invoice.paid", "invoice.paid", "customer.created"],
            },
        )
        assert created.status_code == 201, created.text
        body = created.json()
        secret = body["secret"]
        assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 24
        assert body["enabled_events"] == ["invoice.paid", "customer.created"]
        assert body["enabled"] is True
        endpoint_id = body["id"]

        # Never read back, and not stored in the clear.
        listed = http.get("/v1/webhook-endpoints").json()["data"]
        assert [e["id"] for e in listed] == [endpoint_id]
        assert "secret" not in listed[0] and secret not in http.get(
            f"/v1/webhook-endpoints/{endpoint_id}").text  # fmt: skip
        with pg_sessions() as session:
            dump = repr(session.execute(text("SELECT * FROM webhook_endpoints")).all())
        assert secret not in dump and secret[6:] not in dump

        unknown = http.patch(
            f"/v1/webhook-endpoints/{endpoint_id}", json={"enabled_events": ["invoice.pwned"]}
        )
        assert "unknown event type(s) invoice.pwned" in error_of(unknown, 422)["message"]
        every = http.patch(
            f"/v1/webhook-endpoints/{endpoint_id}",
            json={"enabled_events": ["invoice.paid", "*"], "enabled": False},
        ).json()
        assert every["enabled_events"] == ["*"] and every["enabled"] is False
        assert every["disabled_reason"].startswith("disabled by api-key:")
        enabled = http.patch(f"/v1/webhook-endpoints/{endpoint_id}", json={"enabled": True})
        assert enabled.json()["enabled"] is True and enabled.json()["disabled_reason"] == ""

        rotated = http.post(
            f"/v1/webhook-endpoints/{endpoint_id}/rotate_secret", json={"overlap_hours": 24}
        ).json()
        assert rotated["secret"] != secret and rotated["secret"].startswith("whsec_")
        assert rotated["secret_rotating_until"] is not None

        assert http.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries").json()["data"] == []
        deleted = http.delete(f"/v1/webhook-endpoints/{endpoint_id}")
        assert deleted.json() == {"object": "webhook_endpoint", "id": endpoint_id, "deleted": True}
        gone = http.get(f"/v1/webhook-endpoints/{endpoint_id}")
        assert "Webhook endpoint" in error_of(gone, 404)["message"]

        actor = f"api-key:{made_keys['admin'].info.id}"
        audit = http.get("/v1/audit-log", params={"actor": actor, "limit": 100}).json()["data"]
        actions = sorted(e["action"] for e in audit if e["entity_id"] == endpoint_id)
    assert actions == sorted([
        # The refused change (422) is not in it: nothing changed.
        "webhook_endpoint_created", "webhook_endpoint_updated", "webhook_endpoint_updated",
        "webhook_secret_rotated", "webhook_endpoint_deleted",
    ])  # fmt: skip


def test_a_metadata_url_is_refused_by_name_in_the_answer_even_in_test_mode(
    url: str, made_keys: dict[str, CreatedKey]
) -> None:
    with client(url, made_keys["admin"].secret) as http:
        refused = http.post(
            "/v1/webhook-endpoints",
            json={"url": "http://169.254.169.254/latest", "enabled_events": ["*"]},
        )
    message = error_of(refused, 422)["message"]
    assert "http://169.254.169.254/latest" in message and "link-local" in message
