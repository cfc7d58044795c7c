"""The README's receiver recipe runs as printed: it accepts what kakin signs, refuses an
altered body, and handles a resend (same webhook-id) once."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from kakin.adapters.webhook_sender import sign
from kakin.services.webhook_endpoints import new_secret

README = Path(__file__).parents[2] / "README.md"


def recipe() -> str:
    section = README.read_text(encoding="utf-8").split("## Outgoing webhooks", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None
    return found.group(1)


def test_the_readme_receiver_verifies_kakins_signature(capsys) -> None:  # type: ignore[no-untyped-def]
    secret = new_secret()
    namespace: dict[str, object] = {}
    exec(recipe().replace('"whsec_..."', repr(secret)), namespace)
    http = TestClient(namespace["app"])  # type: ignore[arg-type]
    body = (
        '{"type":"invoice.paid","timestamp":"2027-01-01T00:00:00+00:00",'
        '"data":{"number":"INV-1","total":3300}}'
    )
    now = datetime.now(UTC).replace(microsecond=0)
    headers = {
        "content-type": "application/json",
        "webhook-id": "evt_ledger_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": sign(event_id="evt_ledger_1", sent_at=now, body=body,
                                  secrets=[secret]),
    }  # fmt: skip
    assert http.post("/hooks/kakin", content=body, headers=headers).status_code == 200
    assert http.post("/hooks/kakin", content=body, headers=headers).status_code == 200  # resend
    assert capsys.readouterr().out.count("paid: INV-1 3300") == 1
    altered = body.replace("3300", "1")
    assert http.post("/hooks/kakin", content=altered, headers=headers).status_code == 400
