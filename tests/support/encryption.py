"""The payload-encryption keys the test suite runs with, like production does.

Fixed test-only keys (never used anywhere else): conftest exports them as
``KAKIN_ENCRYPTION_KEYS`` so subprocesses (starter.py, ``python -m kakin.cli``) and the
in-process fixtures (workers, clients, the Replayer) encrypt and decrypt alike.
"""

from __future__ import annotations

import base64

from temporalio.converter import DataConverter

from kakin.platform.codec import EncryptionCodec, Keyring, data_converter

TEST_KEY_ID = "test1"
TEST_KEY = base64.b64decode("dGVzdC1vbmx5LWtha2luLWtleS0zMi1ieXRlcyEhISE=")  # 32 bytes
TEST_KEYS = f"{TEST_KEY_ID}:{base64.b64encode(TEST_KEY).decode()}"


def codec_for_tests() -> EncryptionCodec:
    return EncryptionCodec(Keyring(keys={TEST_KEY_ID: TEST_KEY}, current=TEST_KEY_ID))


def converter_for_tests() -> DataConverter:
    return data_converter(codec_for_tests())
