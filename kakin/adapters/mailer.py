"""Sending email: an outbox folder for the embedded setup, SendGrid in production.

Both backends raise only two error types, so the email activity can decide without
knowing the backend: ``TransientEmailError`` (try again later) and
``PermanentEmailError`` (retrying cannot help; mark the email failed). Exactly-once is
the caller's job (a unique business key in the database); the outbox is also
idempotent by file name, while SendGrid has no idempotency key at all: ``find`` asks
it whether a message with the key went out, for a try that died after sending.
"""

from __future__ import annotations

import base64
import email.policy
import hashlib
import http.client
import json
import logging
import os
import re
import tempfile
import urllib.error
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import formatdate
from pathlib import Path
from typing import Any, Protocol

import python_http_client.exceptions
import sendgrid
from sendgrid.helpers.mail import Attachment as SendGridAttachment
from sendgrid.helpers.mail import (
    CustomArg,
    Disposition,
    FileContent,
    FileName,
    FileType,
    From,
    Mail,
    To,
)

log = logging.getLogger("activities.mailer")  # the name operators filter on


@dataclass(frozen=True)
class Attachment:
    """A file sent with an email, e.g. the invoice PDF."""

    filename: str
    content_type: str  # "application/pdf"
    data: bytes


@dataclass(frozen=True)
class OutgoingEmail:
    """One rendered email. ``key`` is its exactly-once business key, e.g.
    ``email:receipt:inv_abc:0``."""

    key: str
    to_address: str
    to_name: str
    from_address: str
    from_name: str
    subject: str
    html: str
    text: str
    attachments: tuple[Attachment, ...] = ()


class TransientEmailError(Exception):
    """The provider could not take the email now (network, timeout, 429, 5xx): retry."""


class PermanentEmailError(Exception):
    """The provider refused the email (bad address, bad key, bad request): do not retry."""


class Mailer(Protocol):
    def send(self, message: OutgoingEmail) -> str:
        """Send ``message`` and return the provider's message id."""
        ...

    def find(self, key: str) -> str | None:
        """The provider's id of the message sent with business key ``key``, if it was."""
        ...


def safe_key(key: str) -> str:
    """The business key as a file name: anything outside ``[A-Za-z0-9._-]`` becomes ``_``."""
    if not key:
        raise ValueError("an email needs a non-empty business key")
    return re.sub(r"[^A-Za-z0-9._-]", "_", key)


class OutboxMailer:
    """Writes each email to ``<directory>/<safe-key>.eml`` and ``.html`` instead of sending.

    The ``.eml`` is a complete RFC 5322 message (open it in any mail client); the
    ``.html`` is the HTML part, for a browser. Both are written atomically, the
    ``.eml`` last, so an existing ``.eml`` means the email was fully "sent" and a
    retried send with the same key changes nothing.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def send(self, message: OutgoingEmail) -> str:
        name = safe_key(message.key)
        eml_path = self.directory / f"{name}.eml"
        try:
            if eml_path.exists():
                self._check_same_key(eml_path, message.key)
            else:
                self.directory.mkdir(parents=True, exist_ok=True)
                _write_atomically(self.directory / f"{name}.html", message.html.encode())
                _write_atomically(eml_path, to_rfc5322(message))
        except OSError as error:
            raise TransientEmailError(
                f"could not write {name} to the outbox {self.directory}: {error.strerror}"
            ) from error
        return f"outbox:{name}"

    def find(self, key: str) -> str | None:
        name = safe_key(key)
        path = self.directory / f"{name}.eml"
        if not path.exists():
            return None
        self._check_same_key(path, key)
        return f"outbox:{name}"

    @staticmethod
    def _check_same_key(path: Path, key: str) -> None:
        # Two keys can map to one file name ("a:b" and "a_b"); never let the second
        # one pass as already sent.
        with path.open("rb") as file:
            existing = BytesHeaderParser(policy=email.policy.default).parse(file)["X-Kakin-Key"]
        if existing != key:
            raise PermanentEmailError(
                f"outbox file {path.name} already holds the email {existing!r}, not {key!r}"
            )


def to_rfc5322(message: OutgoingEmail) -> bytes:
    """A multipart/alternative (text, then HTML) UTF-8 message, with CRLF line ends.

    Message-ID derives from the key, so every rendering of one email carries the
    same id and mail clients collapse accidental duplicates.
    """
    msg = EmailMessage()
    msg["From"] = Address(message.from_name, addr_spec=message.from_address)
    msg["To"] = Address(message.to_name, addr_spec=message.to_address)
    msg["Subject"] = message.subject
    msg["Date"] = formatdate(usegmt=True)  # when it was written; not a billing date
    domain = message.from_address.rpartition("@")[2] or "kakin.invalid"
    digest = hashlib.sha256(message.key.encode()).hexdigest()[:32]
    msg["Message-ID"] = f"<{digest}@{domain}>"
    msg["X-Kakin-Key"] = message.key
    msg.set_content(message.text, charset="utf-8")
    msg.add_alternative(message.html, subtype="html", charset="utf-8")
    for attachment in message.attachments:  # the message becomes multipart/mixed
        maintype, _, subtype = attachment.content_type.partition("/")
        msg.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    return msg.as_bytes(policy=email.policy.SMTP)


def _write_atomically(path: Path, data: bytes) -> None:
    # A reader (or a crash) never sees half a file: write a temp file next to the
    # target, flush it to disk, then rename over the target in one step.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class SendGridMailer:
    """Sends through the SendGrid v3 API with the official ``sendgrid`` SDK.

    ``host`` lets tests and staging point the real client at a stand-in server.
    """

    def __init__(
        self, api_key: str, host: str = "https://api.sendgrid.com", timeout: float = 10
    ) -> None:
        if not api_key:
            # The SDK would silently fall back to $SENDGRID_API_KEY; be explicit instead.
            raise ValueError("SendGrid needs an API key (KAKIN_SENDGRID_API_KEY)")
        self._api_key = api_key
        self.host = host.rstrip("/")
        self.timeout = timeout
        self._client = sendgrid.SendGridAPIClient(api_key=api_key, host=self.host)
        # SendGridAPIClient takes no timeout, and urllib waits forever by default. The
        # python_http_client.Client underneath passes its ``timeout`` attribute to
        # every child client it builds (client.mail.send...) and on to urlopen.
        self._client.client.timeout = timeout

    def send(self, message: OutgoingEmail) -> str:
        mail = Mail(
            from_email=From(message.from_address, message.from_name),
            to_emails=To(message.to_address, message.to_name),
            subject=message.subject,
            plain_text_content=message.text,
            html_content=message.html,
        )
        # Comes back in SendGrid's event webhooks, tying events to our email row.
        mail.custom_arg = CustomArg("kakin_key", message.key)
        for attachment in message.attachments:
            mail.add_attachment(
                SendGridAttachment(
                    FileContent(base64.b64encode(attachment.data).decode("ascii")),
                    FileName(attachment.filename),
                    FileType(attachment.content_type),
                    Disposition("attachment"),
                )
            )
        try:
            response = self._client.send(mail)
        except python_http_client.exceptions.HTTPError as error:
            raise self._http_error(error) from error
        except urllib.error.URLError as error:
            # urlopen wraps failures to connect, a connect timeout included.
            if isinstance(error.reason, TimeoutError):
                raise self._timed_out() from error
            raise TransientEmailError(
                f"could not reach SendGrid at {self.host}: {self._scrub(error.reason)}"
            ) from error
        except TimeoutError as error:  # socket.timeout is TimeoutError: a read timed out
            raise self._timed_out() from error
        except (ConnectionError, http.client.HTTPException) as error:
            raise TransientEmailError(
                f"the connection to SendGrid at {self.host} failed: {self._scrub(error)}"
            ) from error
        return str(response.headers.get("X-Message-Id") or "")

    def find(self, key: str) -> str | None:
        """Ask SendGrid's Email Activity API for a message carrying ``kakin_key``.

        Used when an earlier try may have sent the email and died before recording
        it. Without the Email Activity add-on (403/404), or while SendGrid has not
        indexed the message yet, the answer is None and the email is sent again: the
        window for a duplicate narrows to what SendGrid has not indexed.
        """
        query = {"query": f"unique_args['kakin_key']=\"{key}\"", "limit": 1}
        try:
            response = self._client.client.messages.get(query_params=query)
        except python_http_client.exceptions.HTTPError as error:
            failure = self._http_error(error)
            if isinstance(failure, TransientEmailError):
                raise failure from error
            log.warning("SendGrid message search unavailable: %s", failure)
            return None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            raise TransientEmailError(
                f"could not search SendGrid at {self.host}: {self._scrub(error)}"
            ) from error
        messages = json.loads(response.body or b"{}").get("messages") or []
        if not messages:
            return None
        return str(messages[0].get("msg_id") or "") or None

    def _timed_out(self) -> TransientEmailError:
        return TransientEmailError(
            f"SendGrid at {self.host} did not answer within {self.timeout:g} s"
        )

    def _http_error(self, error: python_http_client.exceptions.HTTPError) -> Exception:
        status = int(error.status_code)
        detail = self._scrub(_error_messages(error.body)) or str(error.reason)
        text = f"SendGrid answered {status}: {detail}"
        if status == 429 or status >= 500:
            return TransientEmailError(f"{text}; try again later")
        return PermanentEmailError(text)

    def _scrub(self, value: Any) -> str:
        """Text of ``value`` with the API key masked, in case a message echoes it."""
        return str(value).replace(self._api_key, "***")


def _error_messages(body: bytes | str | None) -> str:
    """SendGrid's ``{"errors": [{"message": ...}]}`` as one line, at most 300 chars."""
    if not body:
        return ""
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        errors = json.loads(raw).get("errors") or []
        text = "; ".join(str(e.get("message", "")) for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError):
        text = raw
    text = " ".join(text.split())
    return text[:297] + "..." if len(text) > 300 else text
