"""Email delivery: the outbox folder and SendGrid (the real SDK against a loopback API)."""

from __future__ import annotations

import base64
import email
import email.policy
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from kakin.adapters.mailer import (
    Attachment,
    OutboxMailer,
    OutgoingEmail,
    PermanentEmailError,
    SendGridMailer,
    TransientEmailError,
)
from tests.support.sendgrid_loopback import SendGridLoopback

API_KEY = "SG.test-key-do-not-leak"

MESSAGE = OutgoingEmail(
    key="email:receipt:inv_abc:0",
    to_address="taro@example.com",
    to_name="山田 太郎",
    from_address="billing@kakin.example",
    from_name="kakin 請求担当",
    subject="【kakin】お支払い完了のお知らせ（請求書番号 INV-0001）",
    html="<p>山田 太郎様</p><p>お支払い金額：12,000円</p>",
    text="山田 太郎様\n\nお支払い金額：12,000円\n",
)


# -- outbox -----------------------------------------------------------------------------


def parse(path: Path) -> email.message.EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_outbox_writes_a_real_multipart_email_and_its_html(tmp_path):
    provider_id = OutboxMailer(tmp_path).send(MESSAGE)

    assert provider_id == "outbox:email_receipt_inv_abc_0"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "email_receipt_inv_abc_0.eml",
        "email_receipt_inv_abc_0.html",
    ]
    assert (tmp_path / "email_receipt_inv_abc_0.html").read_text("utf-8") == MESSAGE.html

    message = parse(tmp_path / "email_receipt_inv_abc_0.eml")
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == MESSAGE.subject  # Japanese survives header encoding
    assert message["To"].addresses[0].display_name == "山田 太郎"
    assert message["To"].addresses[0].addr_spec == "taro@example.com"
    assert message["From"].addresses[0].addr_spec == "billing@kakin.example"
    assert message["X-Kakin-Key"] == MESSAGE.key
    assert message["Message-ID"].endswith("@kakin.example>")
    assert message["Date"]
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    # CRLF on the wire (RFC 5322); the same lines once decoded.
    assert plain.get_content().replace("\r\n", "\n") == MESSAGE.text
    assert html.get_content().strip() == MESSAGE.html
    assert plain.get_content_charset() == "utf-8"


def test_outbox_message_id_is_derived_from_the_key(tmp_path):
    first = OutboxMailer(tmp_path / "a")
    second = OutboxMailer(tmp_path / "b")
    first.send(MESSAGE)
    second.send(MESSAGE)
    first.send(replace(MESSAGE, key="email:receipt:inv_abc:1"))

    id_a = parse(tmp_path / "a" / "email_receipt_inv_abc_0.eml")["Message-ID"]
    id_b = parse(tmp_path / "b" / "email_receipt_inv_abc_0.eml")["Message-ID"]
    other = parse(tmp_path / "a" / "email_receipt_inv_abc_1.eml")["Message-ID"]
    assert id_a == id_b != other


def test_outbox_sending_the_same_key_twice_leaves_one_email(tmp_path):
    mailer = OutboxMailer(tmp_path)
    first = mailer.send(MESSAGE)
    # A retried activity re-renders; the email that was "sent" stays as it was.
    second = mailer.send(replace(MESSAGE, subject="second rendering"))

    assert first == second
    assert len(list(tmp_path.iterdir())) == 2  # one .eml + one .html, no temp files
    assert parse(tmp_path / "email_receipt_inv_abc_0.eml")["Subject"] == MESSAGE.subject


def test_outbox_refuses_a_different_key_that_maps_to_the_same_file(tmp_path):
    mailer = OutboxMailer(tmp_path)
    mailer.send(MESSAGE)
    with pytest.raises(PermanentEmailError, match="email:receipt:inv_abc:0"):
        mailer.send(replace(MESSAGE, key="email_receipt_inv_abc_0"))


# -- SendGrid ---------------------------------------------------------------------------


@pytest.fixture
def sendgrid_api():
    with SendGridLoopback() as server:
        yield server


def test_sendgrid_sends_the_whole_email_and_returns_the_message_id(sendgrid_api):
    message_id = SendGridMailer(API_KEY, host=sendgrid_api.url).send(MESSAGE)

    [request] = sendgrid_api.requests
    assert request.method == "POST" and request.path == "/v3/mail/send"
    assert request.authorization == f"Bearer {API_KEY}"
    assert request.status == 202
    body = request.body
    assert body["personalizations"][0]["to"] == [{"email": "taro@example.com", "name": "山田 太郎"}]
    assert body["from"] == {"email": "billing@kakin.example", "name": "kakin 請求担当"}
    assert body["subject"] == MESSAGE.subject
    assert body["content"] == [
        {"type": "text/plain", "value": MESSAGE.text},
        {"type": "text/html", "value": MESSAGE.html},
    ]
    assert body["custom_args"] == {"kakin_key": MESSAGE.key}
    assert message_id == "loopback000001.filter0001.0.0"


def test_attachments_reach_sendgrid_and_the_outbox(sendgrid_api, tmp_path):
    pdf = b"%PDF-1.7 invoice"
    message = replace(MESSAGE, attachments=(Attachment("INV-0001.pdf", "application/pdf", pdf),))

    SendGridMailer(API_KEY, host=sendgrid_api.url).send(message)
    [request] = sendgrid_api.requests
    assert request.body["attachments"] == [
        {
            "content": base64.b64encode(pdf).decode(),
            "filename": "INV-0001.pdf",
            "type": "application/pdf",
            "disposition": "attachment",
        }
    ]

    OutboxMailer(tmp_path).send(message)
    parsed = parse(next(tmp_path.glob("*.eml")))
    (attached,) = list(parsed.iter_attachments())
    assert (attached.get_filename(), attached.get_content()) == ("INV-0001.pdf", pdf)
    assert "12,000円" in parsed.get_body(preferencelist=("plain",)).get_content()


@pytest.mark.parametrize("status", [429, 500, 503])
def test_sendgrid_overload_and_server_errors_are_transient(sendgrid_api, status):
    mailer = SendGridMailer(API_KEY, host=sendgrid_api.url)
    sendgrid_api.fail_next(1, status)

    with pytest.raises(TransientEmailError, match=str(status)) as caught:
        mailer.send(MESSAGE)
    assert API_KEY not in str(caught.value)
    # The next try goes through: nothing in the mailer stays broken.
    assert mailer.send(MESSAGE).startswith("loopback")


@pytest.mark.parametrize("status", [400, 401, 403, 413])
def test_sendgrid_client_errors_are_permanent(sendgrid_api, status):
    sendgrid_api.fail_next(1, status)
    with pytest.raises(PermanentEmailError, match=str(status)) as caught:
        SendGridMailer(API_KEY, host=sendgrid_api.url).send(MESSAGE)
    assert API_KEY not in str(caught.value)


def test_sendgrid_rejection_message_says_what_was_wrong(sendgrid_api):
    # A real 400 from the loopback's own validation, with SendGrid's error body.
    with pytest.raises(PermanentEmailError, match="400: The subject is required"):
        SendGridMailer(API_KEY, host=sendgrid_api.url).send(replace(MESSAGE, subject=""))


def test_sendgrid_unreachable_is_transient():
    with socket.socket() as sock:  # find a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TransientEmailError, match="could not reach SendGrid") as caught:
        SendGridMailer(API_KEY, host=f"http://127.0.0.1:{port}").send(MESSAGE)
    assert API_KEY not in str(caught.value)


def test_sendgrid_timeout_is_applied_and_transient(sendgrid_api):
    # Without the timeout reaching urllib, this send would wait and then succeed.
    sendgrid_api.stall_next(1, 2.0)
    with pytest.raises(TransientEmailError, match=r"did not answer within 0\.2 s"):
        SendGridMailer(API_KEY, host=sendgrid_api.url, timeout=0.2).send(MESSAGE)


def test_sendgrid_needs_an_api_key():
    with pytest.raises(ValueError, match="API key"):
        SendGridMailer("")


def test_sendgrid_finds_a_sent_message_by_its_key(sendgrid_api):
    mailer = SendGridMailer(API_KEY, host=sendgrid_api.url)
    assert mailer.find(MESSAGE.key) is None
    message_id = mailer.send(MESSAGE)
    assert mailer.find(MESSAGE.key) == message_id
    assert mailer.find("email:receipt:in_other:0") is None


def test_outbox_finds_a_written_message_by_its_key(tmp_path):
    mailer = OutboxMailer(tmp_path)
    assert mailer.find(MESSAGE.key) is None
    sent = mailer.send(MESSAGE)
    assert mailer.find(MESSAGE.key) == sent
