"""KAKIN_TEMPORAL_TLS*, KAKIN_TEMPORAL_API_KEY: the options kakin connects to Temporal with.

The dev server takes none; a cluster with mTLS takes the certificate files; Temporal
Cloud takes an API key over TLS. What would send a key or a certificate in the clear is
refused with the setting named, as every other refused setting is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.service import TLSConfig

from kakin.platform.settings import ConfigurationError, Settings
from kakin.platform.temporal_connection import connect_options


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        if name.startswith(("temporal_", "otlp_")):
            monkeypatch.delenv(f"KAKIN_{name.upper()}", raising=False)


def test_the_dev_server_gets_no_tls_and_no_key() -> None:
    options = connect_options(settings())
    assert options == {"tls": False, "interceptors": []}


def test_temporal_cloud_with_an_api_key_uses_tls_with_the_system_cas() -> None:
    options = connect_options(
        settings(
            temporal_address="ap-northeast-1.aws.api.temporal.io:7233",
            temporal_namespace="kakin-prod.a1b2c",
            temporal_api_key="cloud-api-key",
        )
    )
    assert options["tls"] is True
    assert options["api_key"] == "cloud-api-key"
    assert "cloud-api-key" not in repr(settings(temporal_api_key="cloud-api-key"))


def test_mtls_reads_the_certificate_files(tmp_path: Path) -> None:
    files = {}
    for name in ("ca", "cert", "key"):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_bytes(f"-----{name}-----".encode())
    options = connect_options(
        settings(
            temporal_tls_ca_file=str(files["ca"]),
            temporal_tls_cert_file=str(files["cert"]),
            temporal_tls_key_file=str(files["key"]),
            temporal_tls_server_name="temporal.internal",
        )
    )
    tls = options["tls"]
    assert isinstance(tls, TLSConfig)
    assert tls.server_root_ca_cert == b"-----ca-----"
    assert (tls.client_cert, tls.client_private_key) == (b"-----cert-----", b"-----key-----")
    assert tls.domain == "temporal.internal"
    assert "api_key" not in options


def test_tls_can_be_forced_on_for_a_server_authenticated_cluster() -> None:
    assert connect_options(settings(temporal_tls=True))["tls"] is True


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"temporal_api_key": "k", "temporal_tls": False}, "KAKIN_TEMPORAL_API_KEY"),
        ({"temporal_tls_cert_file": "/x/cert.pem"}, "KAKIN_TEMPORAL_TLS_KEY_FILE"),
        ({"temporal_tls_ca_file": "/x/ca.pem", "temporal_tls": False}, "KAKIN_TEMPORAL_TLS=false"),
        ({"temporal_tls_ca_file": "/nonexistent/ca.pem"}, "KAKIN_TEMPORAL_TLS_CA_FILE"),
    ],
)
def test_what_would_go_out_in_the_clear_or_cannot_be_read_is_refused(
    values: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        connect_options(settings(**values))
