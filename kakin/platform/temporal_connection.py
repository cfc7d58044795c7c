"""How kakin connects to Temporal beyond the dev server: TLS, API keys, interceptors.

``connect_options`` turns the ``KAKIN_TEMPORAL_*`` settings into keyword arguments of
``temporalio.client.Client.connect`` (kakin.runtime.temporal_client adds the address,
the namespace and the encrypting data converter):

* the dev server and a plain cluster: nothing (no TLS);
* a self-hosted cluster with mTLS: ``KAKIN_TEMPORAL_TLS_CERT_FILE`` and
  ``KAKIN_TEMPORAL_TLS_KEY_FILE`` (the client's certificate and key), with
  ``KAKIN_TEMPORAL_TLS_CA_FILE`` when the server's certificate is signed by your own CA
  and ``KAKIN_TEMPORAL_TLS_SERVER_NAME`` when its name is not the address's host;
* Temporal Cloud: ``KAKIN_TEMPORAL_API_KEY`` (TLS with the system's CAs), or the mTLS
  files above with the CA certificate uploaded to the namespace.

TLS is on whenever an API key or a certificate is given (``KAKIN_TEMPORAL_TLS`` unset),
and can be forced on for a server-authenticated cluster with ``KAKIN_TEMPORAL_TLS=true``.
An API key or a client certificate without TLS is refused: the key would cross the
network in the clear.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio.service import TLSConfig

from kakin.platform import tracing
from kakin.platform.settings import ConfigurationError, Settings


def _read(path: str, setting: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as error:
        raise ConfigurationError(f"{setting}: cannot read {path}: {error.strerror}") from None


def tls_config(settings: Settings) -> TLSConfig | bool:
    """``Client.connect``'s ``tls``: False, True (the system's CAs) or the files' config."""
    cert, key = settings.temporal_tls_cert_file, settings.temporal_tls_key_file
    if bool(cert) != bool(key):
        raise ConfigurationError(
            "KAKIN_TEMPORAL_TLS_CERT_FILE and KAKIN_TEMPORAL_TLS_KEY_FILE go together: "
            "set both for mTLS, or neither"
        )
    files = bool(cert or settings.temporal_tls_ca_file or settings.temporal_tls_server_name)
    wanted = settings.temporal_tls
    if wanted is None:
        wanted = bool(settings.temporal_api_key or files)
    if not wanted:
        if settings.temporal_api_key:
            raise ConfigurationError(
                "KAKIN_TEMPORAL_API_KEY needs TLS: unset KAKIN_TEMPORAL_TLS (or set it true)"
            )
        if files:
            raise ConfigurationError(
                "KAKIN_TEMPORAL_TLS=false, but KAKIN_TEMPORAL_TLS_* files or a server name are "
                "set: unset KAKIN_TEMPORAL_TLS to use them"
            )
        return False
    if not files:
        return True
    return TLSConfig(
        server_root_ca_cert=_read(settings.temporal_tls_ca_file, "KAKIN_TEMPORAL_TLS_CA_FILE")
        if settings.temporal_tls_ca_file
        else None,
        domain=settings.temporal_tls_server_name or None,
        client_cert=_read(cert, "KAKIN_TEMPORAL_TLS_CERT_FILE") if cert else None,
        client_private_key=_read(key, "KAKIN_TEMPORAL_TLS_KEY_FILE") if key else None,
    )


def connect_options(settings: Settings) -> dict[str, Any]:
    """TLS, the API key and the interceptors (tracing) for ``Client.connect``."""
    options: dict[str, Any] = {
        "tls": tls_config(settings),
        "interceptors": tracing.temporal_interceptors(settings),
    }
    if settings.temporal_api_key:
        options["api_key"] = settings.temporal_api_key
    return options
