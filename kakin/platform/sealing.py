"""Small secrets sealed at rest with the payload keys (AES-GCM), e.g. a staff TOTP secret.

The database holds ``v1:<key id>:<base64(nonce || ciphertext)>``. The key id and a
``purpose`` (what the value is and whose: ``staff-totp:<staff id>``) are the associated
data, so a sealed value copied onto another row, or relabelled with another key id,
does not open. The keys are the ones that encrypt Temporal payloads
(``kakin.platform.codec``), so they rotate the same way: the current key seals, every
configured key opens by id.
"""

from __future__ import annotations

import base64
import binascii
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kakin.platform.codec import NONCE_BYTES, Keyring, UnknownKeyError

VERSION = "v1"


class SealedValueError(ValueError):
    """A sealed value is malformed, altered, or sealed for another purpose."""


def _associated(key_id: str, purpose: str) -> bytes:
    return f"kakin-sealed:{VERSION}:{key_id}:{purpose}".encode()


def seal(keyring: Keyring, plaintext: bytes, *, purpose: str) -> str:
    """``plaintext`` sealed with the keyring's current key, bound to ``purpose``."""
    key_id = keyring.current
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(keyring.keys[key_id]).encrypt(nonce, plaintext, _associated(key_id, purpose))
    return f"{VERSION}:{key_id}:{base64.b64encode(nonce + sealed).decode('ascii')}"


def unseal(keyring: Keyring, value: str, *, purpose: str) -> bytes:
    """The plaintext of ``seal``; raises ``SealedValueError`` or ``UnknownKeyError``."""
    version, _, rest = value.partition(":")
    key_id, _, encoded = rest.partition(":")
    if version != VERSION or not key_id or not encoded:
        raise SealedValueError("not a sealed value")
    if key_id not in keyring.keys:
        raise UnknownKeyError(key_id)
    try:
        data = base64.b64decode(encoded, validate=True)
        return AESGCM(keyring.keys[key_id]).decrypt(
            data[:NONCE_BYTES], data[NONCE_BYTES:], _associated(key_id, purpose)
        )
    except (binascii.Error, ValueError, InvalidTag):
        raise SealedValueError("the sealed value was altered or is for another use") from None
