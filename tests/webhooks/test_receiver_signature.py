"""The loopback receiver judges a signature as a receiver did when the request arrived:
the chaos run checks its deliveries minutes later, past the timestamp's five minutes."""

from __future__ import annotations

from dataclasses import replace

from kakin.adapters.webhook_sender import send
from kakin.services.webhook_endpoints import new_secret
from tests.support.webhook_receiver import (
    SIGNATURE_TOLERANCE_SECONDS,
    Answer,
    Receiver,
    receiving,
)


def test_a_signature_is_judged_as_of_its_arrival() -> None:
    old, current = new_secret(), new_secret()
    body = '{"type":"customer.created","timestamp":"2026-12-02T00:00:00+00:00","data":{}}'
    with receiving(Receiver([Answer(200)])) as receiver:
        answer = send(receiver.url, event_id="evt_1", body=body, secrets=[current, old],
                      timeout=5)  # fmt: skip
    assert answer.outcome == "delivered"
    (request,) = receiver.received
    # Signed with both secrets while the old one is still honoured (a rotation).
    assert request.signature_problem(current) is None
    assert request.signature_problem(old) is None
    assert request.signature_problem(new_secret()) == "no signature matches the secret"
    tampered = replace(request, body=body.replace("customer", "invoice"))
    assert tampered.signature_problem(current) == "no signature matches the secret"
    # Checked long after it arrived, it is still judged at arrival...
    assert request.signature_problem(current) is None
    # ... but a request that arrived with a stale timestamp is refused.
    stale = replace(request, wall=request.wall + SIGNATURE_TOLERANCE_SECONDS + 60)
    assert "off when it arrived" in (stale.signature_problem(current) or "")
