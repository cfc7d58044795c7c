"""One settings object, read from ``KAKIN_*`` environment variables and an optional ``.env``.

Every variable is documented in the README's configuration table; the defaults are
the embedded setup that ``kakin up`` starts on one machine.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from billing.calendar import zone
from billing.dunning import DunningPolicy, parse_policy
from billing.tax import normalize_registration_number

EMBEDDED_LINK_SECRET = "kakin-embedded-link-secret"
EMBEDDED_CONSOLE_SECRET = "kakin-embedded-console-secret"
ENV_PREFIX = "KAKIN_"
DEFAULT_DUNNING = "3:retry,7:retry,14:suspend,21:retry,30:cancel"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = "sqlite:///var/kakin.db"
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "billing"
    # What `python worker.py` runs: workflows and activities (all), or one of them, so
    # activity work (PDFs, Stripe, email) can be spread over more processes or hosts
    # polling the same task queue(s). Every queue needs both kinds of worker somewhere.
    worker_role: Literal["all", "workflows", "activities"] = "all"
    temporal_ui_url: str = "http://localhost:8233"
    # Prometheus metrics of a worker process: kakin's own (prometheus-client,
    # kakin.platform.metrics) on metrics_port and the Temporal SDK's runtime metrics
    # (temporal_*) on temporal_metrics_port, both served at /metrics on metrics_host
    # (0.0.0.0 in a container, for Prometheus to reach). 0 turns each off. The API serves
    # its own on its port (GET /metrics).
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=0, ge=0, le=65535)
    temporal_metrics_port: int = Field(default=0, ge=0, le=65535)

    stripe_api_key: str = Field(default="sk_test_kakin", repr=False)
    # None talks to api.stripe.com; the embedded default points at localstripe.
    stripe_api_base: str | None = None
    # Real Stripe needs off_session=true on confirm for charges made while the customer
    # is away; the localstripe emulator rejects the parameter, so `kakin up` sets false.
    stripe_confirm_off_session: bool = True
    # The webhook endpoint's signing secret (whsec_...); webhooks are refused while empty.
    stripe_webhook_secret: str = Field(default="", repr=False)
    # How old (seconds) a signed webhook may be before it counts as a replay.
    stripe_webhook_tolerance: int = 300
    # Charges run on this task queue when set, by workers that keep them under
    # stripe_rate_limit (requests per second; Stripe allows 100 live, 25 in test mode).
    stripe_task_queue: str = ""
    stripe_rate_limit: float = Field(default=25.0, gt=0)
    # The share of stripe_rate_limit kakin uses: every Stripe request of a worker
    # process waits on one token bucket at stripe_limiter_share × stripe_rate_limit
    # requests/s (kakin.adapters.stripe_pacing), and the charge task queue's server-side
    # rate is the same share in charges (÷ requests per charge). The bucket is per
    # process: with P processes sending to Stripe at once, set the share to about 0.9 ÷ P.
    stripe_limiter_share: float = Field(default=0.9, gt=0, le=1)
    # 429s a Stripe request retries after Retry-After before the activity fails (and
    # Temporal retries it with backoff).
    stripe_rate_limited_retries: int = Field(default=3, ge=0)

    email_backend: Literal["outbox", "sendgrid"] = "outbox"
    outbox_dir: Path = Path("var/outbox")
    sendgrid_api_key: str = Field(default="", repr=False)
    sendgrid_host: str = "https://api.sendgrid.com"
    email_from: str = "billing@kakin.example"
    email_from_name: str = "kakin billing"

    seller_name: str = "kakin demo K.K."
    seller_address: str = "1-1 Chiyoda, Chiyoda-ku, Tokyo"
    # 適格請求書発行事業者登録番号 (T + 13 digits); printed on invoices when set.
    seller_registration_number: str = ""
    # Consumption tax is computed once per rate per invoice and rounded this way:
    # down (切り捨て, the usual choice), half_up (四捨五入), half_even or up (切り上げ).
    tax_rounding: Literal["down", "half_up", "half_even", "up"] = "down"
    # Attach the invoice PDF to every email about an invoice (about 20 ms of CPU each).
    attach_invoice_pdf: bool = True
    payment_update_url: str = "http://localhost:8000/pay/update"
    # The customer's own billing page (api/billing_page.py), linked from every email.
    billing_page_url: str = "http://localhost:8000/billing"
    # May customers cancel at period end from their billing page? Unset: yes in test
    # mode, no with a live key (a seller turns it on deliberately): see portal_cancel.
    portal_allow_cancel: bool | None = None
    # Signs the card-update links in emails. The default is for the embedded setup
    # only: kakin refuses it with a live Stripe key.
    link_secret: str = Field(default=EMBEDDED_LINK_SECRET, repr=False)

    dunning_schedule: str = DEFAULT_DUNNING

    # The calendar the revenue reports' days, weeks and months follow (an IANA zone):
    # the seller's, not each customer's, so every currency's month ends at one moment.
    # Tokyo, as the seller defaults above; "UTC" for a seller who closes books in UTC.
    reporting_time_zone: str = "Asia/Tokyo"

    # Temporal payload encryption (AES-GCM, see kakin/codec.py): "id:base64key" entries,
    # comma-separated; the first (or encryption_key_id) encrypts, all of them decrypt.
    encryption_keys: str = Field(default="", repr=False)
    # A file of the same entries, one per line (e.g. a mounted secret); merged with the above.
    encryption_keys_file: str = ""
    # The id of the key that encrypts new payloads; empty: the first key listed.
    encryption_key_id: str = ""

    # Temporal beyond the dev server (kakin/platform/temporal_connection.py): TLS, on by
    # default when an API key or a certificate is given (a self-hosted cluster with mTLS:
    # the client certificate and key files, the CA file when the server's certificate is
    # not from a public CA, the server name when it differs from the address's host);
    # Temporal Cloud: its endpoint as the address, <namespace>.<account> as the
    # namespace, and an API key (or the mTLS files).
    temporal_tls: bool | None = None
    temporal_tls_ca_file: str = ""
    temporal_tls_cert_file: str = ""
    temporal_tls_key_file: str = ""
    temporal_tls_server_name: str = ""
    temporal_api_key: str = Field(default="", repr=False)

    # Tracing (kakin/platform/tracing.py): an OTLP/HTTP collector's base URL (e.g.
    # http://otel-collector:4318); empty: off, and no OpenTelemetry SDK is loaded. The
    # service name is the resource's service.name on this process's spans.
    otlp_endpoint: str = ""
    otlp_service_name: str = "kakin"

    # The HTTP API's limits (api/middleware.py, api/rate_limit.py): the largest request
    # body in bytes (413 beyond), and per API key a token bucket refilled at
    # api_rate_limit ("100/s", "6000/min", "1000/h" or "off") holding api_rate_burst
    # requests (429 with Retry-After beyond). The buckets are per API process.
    api_max_body_bytes: int = Field(default=1_048_576, ge=1024)
    api_rate_limit: str = Field(
        default="100/s",
        pattern=r"^\s*(off|\d+(\.\d+)?\s*/\s*(s|sec|second|m|min|minute|h|hour))\s*$",
    )
    api_rate_burst: int = Field(default=200, ge=1)

    # The staff console (/console): two-factor sign-in for every staff member (it cannot
    # be turned off with a live Stripe key); the key that signs its cookies (the default
    # is for the embedded setup only: refused with a live key; `kakin up` generates one);
    # how long a session lasts without a request and at most; and after how many failed
    # sign-ins in KAKIN_CONSOLE_LOCKOUT_MINUTES an account (or an address) is locked
    # for that long.
    console_require_2fa: bool = True
    console_secret: str = Field(default=EMBEDDED_CONSOLE_SECRET, repr=False)
    console_idle_minutes: int = Field(default=30, ge=1)
    console_session_hours: int = Field(default=12, ge=1)
    console_lockout_failures: int = Field(default=10, ge=1)
    console_address_lockout_failures: int = Field(default=50, ge=1)
    console_lockout_minutes: int = Field(default=15, ge=1)

    # Outgoing webhooks: how long a receiver has to answer a try (Standard Webhooks
    # suggests 15 s), and how often the dispatcher looks at the ledger for new events.
    webhook_timeout_seconds: float = Field(default=15.0, gt=0, le=30)
    webhook_poll_seconds: float = Field(default=2.0, gt=0, le=300)

    @model_validator(mode="after")
    def _distinct_metrics_ports(self) -> Settings:
        if self.metrics_port and self.metrics_port == self.temporal_metrics_port:
            raise ValueError(
                "KAKIN_METRICS_PORT and KAKIN_TEMPORAL_METRICS_PORT must differ "
                "(two servers cannot listen on one port)"
            )
        return self

    @field_validator("seller_registration_number")
    @classmethod
    def _valid_registration_number(cls, value: str) -> str:
        # T + 13 digits with a valid check digit; printed on every qualified invoice.
        return normalize_registration_number(value) if value.strip() else ""

    @field_validator("reporting_time_zone")
    @classmethod
    def _valid_reporting_zone(cls, value: str) -> str:
        zone(value)  # ValueError: not a zone the tz database knows
        return value

    @field_validator("dunning_schedule")
    @classmethod
    def _valid_dunning(cls, value: str) -> str:
        parse_policy(value)  # raises ValueError naming the bad step
        return value

    @property
    def portal_cancel(self) -> bool:
        """Whether the billing page offers cancelling at period end (KAKIN_PORTAL_ALLOW_CANCEL)."""
        if self.portal_allow_cancel is None:
            return not self.live_mode
        return self.portal_allow_cancel

    @property
    def live_mode(self) -> bool:
        """True with a live Stripe key: test clocks and test cards are refused."""
        return self.stripe_api_key.startswith(("sk_live_", "rk_live_"))

    @property
    def dunning_policy(self) -> DunningPolicy:
        return parse_policy(self.dunning_schedule)


class ConfigurationError(ValueError):
    """A ``KAKIN_*`` setting is missing or invalid: one line naming the setting and why.

    Every entry point (the ``kakin`` commands, ``worker.py``, ``starter.py``) prints it
    as ``error: <message>`` and exits with 2, as for any other refused request.
    """


def describe(error: ValidationError) -> str:
    """``KAKIN_<NAME>: <why>`` for each invalid field, on one line (never the input:
    it may be a secret)."""
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        field = str(item["loc"][0]) if item["loc"] else ""
        name = f"{ENV_PREFIX}{field.upper()}" if field else f"the {ENV_PREFIX}* settings"
        why = " ".join(str(item["msg"]).removeprefix("Value error, ").split())
        problems.append(f"{name}: {why}")
    return "; ".join(problems) or " ".join(str(error).split())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings from the environment and ``.env``.

    Raises:
        ConfigurationError: a setting is invalid; the message names it in one line,
            instead of pydantic's many-line report around the same sentence.
    """
    try:
        return Settings()
    except ValidationError as error:
        raise ConfigurationError(describe(error)) from None
