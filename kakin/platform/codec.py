"""Temporal payload encryption: AES-256-GCM with the key id in each payload's metadata.

Everything kakin hands to Temporal (workflow inputs, activity arguments and results,
signals, updates, queries, failure messages) goes through :class:`EncryptionCodec`
on its way out, so the Temporal server, its database and anyone reading histories
see only ciphertext. Search attributes are not payloads and are never encrypted:
they carry ids and statuses only (see ``kakin/contracts.py``).

An encrypted payload looks like::

    metadata {"encoding": b"binary/encrypted", "encryption-key-id": b"<key id>"}
    data     = nonce (12 random bytes) || AES-GCM(serialized original payload)

The key id (and the encoding) are bound to the ciphertext as associated data, so a
payload cannot be relabelled with another key's id. Keys rotate: the current key
encrypts, every configured key decrypts by id, so old histories stay readable as
long as their key stays configured. A payload without ``binary/encrypted`` passes
through unchanged: histories recorded before encryption still decode and replay.

Plaintext that arrives from outside is passed through too, and logged. A signal sent with
the plain ``temporal`` CLI (no ``--codec-endpoint``) reaches the server unencrypted and is
stored so before any kakin process sees it: refusing it in the worker would protect
nothing already stored, and would fail every workflow task of that subscription (the
payload stays in its history), while the codec cannot tell it from a history recorded
before encryption. So it is applied, and the first plaintext payload of each workflow
in a process is logged as a warning (``kakin.platform.codec``) naming the workflow and the
encoding, never the contents, so operations can find who signalled past the codec.
Staff signal through the codec endpoint instead (README, Encryption).

Keys come from settings (never logged, never in a repr):

* ``KAKIN_ENCRYPTION_KEYS``: ``id1:base64key,id2:base64key`` (commas or newlines);
* ``KAKIN_ENCRYPTION_KEYS_FILE``: a file of the same entries, one per line, ``#``
  comments allowed (a mounted secret);
* ``KAKIN_ENCRYPTION_KEY_ID``: the key that encrypts; default the first one listed.

Without any configured key, a test-mode process uses the development key that
``kakin up`` keeps in its data directory (``var/encryption.keys``) if it exists;
otherwise, and always with a live Stripe key, building a client fails with a
message saying what to set.
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import logging
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
)

from kakin.platform.payload_json import CompactPayloadConverter

if TYPE_CHECKING:
    from kakin.platform.settings import Settings

ENCODING = b"binary/encrypted"
METADATA_ENCODING = "encoding"
METADATA_KEY_ID = "encryption-key-id"
NONCE_BYTES = 12
KEY_BYTES = (16, 24, 32)  # AES-128/192/256; generated keys are 32 bytes
# Where `kakin up` keeps its development key (relative to the working directory,
# like the default database var/kakin.db); a test-mode process falls back to it.
DEV_KEYS_FILE = Path("var/encryption.keys")

_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
log = logging.getLogger("kakin.codec")
# Workflows whose plaintext payloads this process has reported (each once; bounded).
_REPORTED_PLAINTEXT: set[str] = set()
_MAX_REPORTED = 10_000


class EncryptionKeyError(ValueError):
    """The key configuration is unusable, or a payload names a key we do not have."""


class UnknownKeyError(EncryptionKeyError):
    """A payload was encrypted with a key id that is not configured."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(
            f"payload is encrypted with key id {key_id!r}, which is not configured; "
            "keep retired keys in KAKIN_ENCRYPTION_KEYS (or the keys file) while "
            "histories encrypted with them are still read"
        )


class DecryptionError(ValueError):
    """The ciphertext, nonce or key id was altered, or the key under that id is another."""


@dataclass(frozen=True)
class Keyring:
    """Keys by id and the id of the one that encrypts. The keys never appear in a repr."""

    keys: Mapping[str, bytes] = field(repr=False)
    current: str

    def __post_init__(self) -> None:
        if not self.keys:
            raise EncryptionKeyError("no encryption keys")
        if self.current not in self.keys:
            raise EncryptionKeyError(
                f"the current encryption key id {self.current!r} is not among the "
                f"configured keys ({', '.join(sorted(self.keys))})"
            )
        for key_id, key in self.keys.items():
            _check_entry(key_id, key)

    def rotated(self, key_id: str, key: bytes) -> Keyring:
        """A keyring that encrypts with ``key_id`` and still decrypts with every old key."""
        return Keyring(keys={**self.keys, key_id: key}, current=key_id)


def _check_entry(key_id: str, key: bytes) -> None:
    if not _KEY_ID.fullmatch(key_id):
        raise EncryptionKeyError(
            f"encryption key id {key_id!r} must be 1 to 64 letters, digits, '.', '_' or '-'"
        )
    if len(key) not in KEY_BYTES:
        raise EncryptionKeyError(
            f"encryption key {key_id!r} is {len(key)} bytes; AES-GCM needs 16, 24 or 32 "
            "(generate one with: kakin encryption-key)"
        )


def parse_keys(text: str, *, source: str = "KAKIN_ENCRYPTION_KEYS") -> dict[str, bytes]:
    """``id:base64key`` entries separated by commas or newlines, in order.

    Blank entries and ``#`` comment lines are skipped. Errors name the source and the
    key id, never the key.
    """
    keys: dict[str, bytes] = {}
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        for entry in line.split(","):
            entry = entry.strip()
            if not entry:
                continue
            key_id, sep, encoded = entry.partition(":")
            key_id = key_id.strip()
            if not sep:
                # Not echoed: without a colon the entry may be a bare key.
                raise EncryptionKeyError(f"{source}: an entry is not 'id:base64key'")
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise EncryptionKeyError(
                    f"{source}: the key {key_id!r} is not valid base64"
                ) from None
            _check_entry(key_id, key)
            if key_id in keys and keys[key_id] != key:
                raise EncryptionKeyError(f"{source}: key id {key_id!r} is given twice")
            keys[key_id] = key
    return keys


def new_key_entry(key_id: str | None = None) -> str:
    """A fresh ``id:base64key`` line: 32 random bytes, id from today's date by default."""
    key_id = key_id or f"k{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(2)}"
    key = secrets.token_bytes(32)
    _check_entry(key_id, key)
    return f"{key_id}:{base64.b64encode(key).decode('ascii')}"


def ensure_dev_key_file(path: Path) -> Path:
    """Create ``path`` with one fresh key (mode 0600) unless it exists; return it.

    Used by ``kakin up`` for the embedded setup, so payloads are encrypted there too.
    """
    path = Path(path)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (
        "# kakin development payload-encryption keys (created by `kakin up`).\n"
        "# Anyone with this file can read the Temporal payloads of this data dir.\n"
        f"{new_key_entry('dev1')}\n"
    )
    # O_EXCL: two processes starting at once never overwrite each other's key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)
    return path


def _read_keys_file(path: Path) -> dict[str, bytes]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise EncryptionKeyError(
            f"cannot read the encryption keys file {path}: {error.strerror or error}"
        ) from None
    return parse_keys(text, source=str(path))


def keyring_from_settings(settings: Settings) -> Keyring:
    """The configured keyring; raises :class:`EncryptionKeyError` saying what to set.

    Order: ``KAKIN_ENCRYPTION_KEYS``, then ``KAKIN_ENCRYPTION_KEYS_FILE``; without
    either, in test mode only, the development key file of ``kakin up``.
    """
    keys = parse_keys(settings.encryption_keys) if settings.encryption_keys.strip() else {}
    if settings.encryption_keys_file.strip():
        for key_id, key in _read_keys_file(Path(settings.encryption_keys_file)).items():
            if keys.get(key_id, key) != key:
                raise EncryptionKeyError(
                    f"key id {key_id!r} differs between KAKIN_ENCRYPTION_KEYS and "
                    "KAKIN_ENCRYPTION_KEYS_FILE"
                )
            keys.setdefault(key_id, key)
    if not keys and not settings.live_mode and DEV_KEYS_FILE.is_file():
        keys = _read_keys_file(DEV_KEYS_FILE)
    if not keys:
        raise EncryptionKeyError(
            "no payload encryption key: set KAKIN_ENCRYPTION_KEYS to 'id:base64key' "
            "(32 random bytes; `kakin encryption-key` prints one) or "
            "KAKIN_ENCRYPTION_KEYS_FILE to a file of such lines"
            + ("" if settings.live_mode else "; `kakin up` creates a development key")
        )
    current = settings.encryption_key_id.strip() or next(iter(keys))
    return Keyring(keys=keys, current=current)


class EncryptionCodec(PayloadCodec, WithSerializationContext):
    """AES-GCM payload codec with key ids in the metadata, for key rotation."""

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keyring.keys.items()}
        self._workflow_id: str | None = None  # set by with_context, for the warning only

    def with_context(self, context: SerializationContext) -> EncryptionCodec:
        """This codec (same keys and ciphers) knowing which workflow its payloads are for."""
        workflow_id = getattr(context, "workflow_id", None)
        if not workflow_id or workflow_id == self._workflow_id:
            return self
        bound = copy.copy(self)
        bound._workflow_id = workflow_id
        return bound

    def __repr__(self) -> str:
        return f"EncryptionCodec(current={self._keyring.current!r}, keys={len(self._ciphers)})"

    @property
    def key_id(self) -> str:
        """The id of the key new payloads are encrypted with."""
        return self._keyring.current

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._ciphers)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self._keyring.current
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(
            nonce, payload.SerializeToString(deterministic=True), _associated(key_id)
        )
        return Payload(
            metadata={METADATA_ENCODING: ENCODING, METADATA_KEY_ID: key_id.encode("utf-8")},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        """The original payload; one that is not encrypted is returned unchanged (and
        reported: see the module's docstring)."""
        if payload.metadata.get(METADATA_ENCODING) != ENCODING:
            self._report_plaintext(payload)
            return payload
        raw_id = payload.metadata.get(METADATA_KEY_ID)
        if raw_id is None:
            raise DecryptionError("encrypted payload without an encryption-key-id")
        key_id = raw_id.decode("utf-8", errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownKeyError(key_id)
        if len(payload.data) < NONCE_BYTES + 16:
            raise DecryptionError(f"encrypted payload (key id {key_id!r}) is truncated")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, _associated(key_id))
        except InvalidTag:
            raise DecryptionError(
                f"encrypted payload (key id {key_id!r}) failed authentication: it was "
                "altered, or the key under that id is not the one that encrypted it"
            ) from None
        return Payload.FromString(plain)

    def _report_plaintext(self, payload: Payload) -> None:
        where = self._workflow_id or "(no workflow)"
        if where in _REPORTED_PLAINTEXT:
            return
        if len(_REPORTED_PLAINTEXT) >= _MAX_REPORTED:
            _REPORTED_PLAINTEXT.clear()
        _REPORTED_PLAINTEXT.add(where)
        encoding = payload.metadata.get(METADATA_ENCODING, b"").decode("ascii", "replace")
        log.warning(
            "an unencrypted payload (encoding %s) was read for workflow %s: the Temporal "
            "server stores it as plaintext. Unless it is from a history recorded before "
            "encryption, someone sent it past the codec: signal with `temporal workflow "
            "signal ... --codec-endpoint <codec URL> --codec-auth 'Bearer kk_support_...'` "
            "or kakin's own commands (README, Encryption)",
            encoding[:40] or "(none)",
            where,
        )


def _associated(key_id: str) -> bytes:
    return ENCODING + b"\x00" + key_id.encode("utf-8")


def data_converter(codec: PayloadCodec) -> DataConverter:
    """The default converter with ``codec``; failure messages and stack traces are
    moved into encoded attributes, so they are encrypted too. JSON is written without
    empty defaults (``kakin.platform.payload_json``), to keep histories small."""
    return dataclasses.replace(
        DataConverter.default,
        payload_converter_class=CompactPayloadConverter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def data_converter_from_settings(settings: Settings) -> DataConverter:
    return data_converter(EncryptionCodec(keyring_from_settings(settings)))
