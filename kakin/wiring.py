"""Builds the real dependencies from settings. Only the edges (worker, CLI) call this."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.billing import BillingActivities
from kakin.adapters.mailer import Mailer, OutboxMailer, SendGridMailer
from kakin.adapters.rendering import make_template_env
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.platform import codec
from kakin.platform.settings import EMBEDDED_LINK_SECRET, ConfigurationError, Settings
from kakin.services.invoice_documents import Seller
from models.db import make_engine, make_session_factory


def session_factory(settings: Settings) -> sessionmaker[Session]:
    return make_session_factory(make_engine(settings.database_url))


def stripe_gateway(settings: Settings) -> StripeGateway:
    return StripeGateway(
        api_key=settings.stripe_api_key,
        api_base=settings.stripe_api_base,
        confirm_off_session=settings.stripe_confirm_off_session,
    )


def mailer(settings: Settings) -> Mailer:
    if settings.email_backend == "sendgrid":
        if not settings.sendgrid_api_key:
            raise ConfigurationError(
                "KAKIN_SENDGRID_API_KEY must be set when KAKIN_EMAIL_BACKEND=sendgrid"
            )
        return SendGridMailer(api_key=settings.sendgrid_api_key, host=settings.sendgrid_host)
    return OutboxMailer(settings.outbox_dir)


def seller(settings: Settings) -> Seller:
    if settings.live_mode and settings.link_secret == EMBEDDED_LINK_SECRET:
        raise ConfigurationError(
            "KAKIN_LINK_SECRET: set it to a long random value before using a live key"
        )
    return Seller(
        name=settings.seller_name,
        address=settings.seller_address,
        registration_number=settings.seller_registration_number,
        payment_update_url=settings.payment_update_url,
        email_from=settings.email_from,
        email_from_name=settings.email_from_name,
        link_secret=settings.link_secret,
        tax_rounding=settings.tax_rounding,
        attach_invoice_pdf=settings.attach_invoice_pdf,
    )


def billing_activities(
    settings: Settings,
    *,
    sessions: sessionmaker[Session] | None = None,
    stripe: StripeGateway | None = None,
    mail: Mailer | None = None,
) -> BillingActivities:
    """The invoicing, payment and notification activities, built from the settings."""
    return BillingActivities(
        session_factory=sessions or session_factory(settings),
        stripe=stripe or stripe_gateway(settings),
        mailer=mail or mailer(settings),
        templates=make_template_env(),
        seller=seller(settings),
    )


async def temporal_client(settings: Settings) -> Client:
    """A client whose payloads are encrypted with the configured keys (kakin/codec.py).

    Raises ``EncryptionKeyError`` (a ValueError) naming what to set when no key is configured.
    """
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=codec.data_converter_from_settings(settings),
    )


# -- serving HTTP (kakin api, kakin codec-server, kakin up, the bench's API servers) ------


def uvicorn_options(*, log_level: str = "info") -> dict[str, Any]:
    """The uvicorn options every kakin HTTP server runs with.

    uvicorn's access log writes the client's address and the raw path with its query
    string: card numbers and emails typed into a URL. ``kakin.api.access``
    (api.middleware) writes the fields it may instead, so uvicorn's is off
    (``access_log=False``), and ``log_config=None`` leaves logging as the process set it
    up: uvicorn's default config, applied when the server starts, would switch
    ``uvicorn.access`` back on after ``build_app`` switched it off.
    """
    return {"access_log": False, "log_config": None, "log_level": log_level}


class HttpServer(uvicorn.Server):
    """uvicorn whose SIGTERM or Ctrl-C stops the server and ends the process with 0.

    uvicorn raises the signal it caught again once it has shut down, so a clean stop
    (``docker stop``, systemd, Ctrl-C) ended as "killed by SIGTERM" (-15, or 143 in a
    container) and looked like a crash. Here the signal only asks the server to stop.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach the main thread only; whoever runs us there handles them
            return
        stopping = (signal.SIGINT, signal.SIGTERM)
        previous = {signum: signal.signal(signum, self.handle_exit) for signum in stopping}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def serve_http(app: Any, *, host: str, port: int) -> None:
    """Serve ``app`` until SIGTERM or Ctrl-C (``kakin api``, ``kakin codec-server``)."""
    HttpServer(uvicorn.Config(app, host=host, port=port, **uvicorn_options())).run()
