"""The API fuzzed from its own OpenAPI document (schemathesis), against the running app.

Every operation gets generated requests: valid ones (positive), invalid ones
(negative), valid ones aimed at real objects (a customer, price, trialing subscription,
metric, tax rate and coupon made first), and unauthenticated ones. Every answer must:

- never be a 5xx;
- carry no stack trace, source path or exception class name;
- on an error, be exactly ``{"error": {"type": ..., "message": ...}}``;
- on an error (or for any GET), leave the database exactly as it was: a fingerprint
  of every table's content (except API keys, whose ``last_used_at`` moves) is taken
  before and after; idempotency keys are in it, since a refusal must not use one up.

The run prints how many requests, operations and seconds it took. Its size is
``KAKIN_FUZZ_EXAMPLES`` examples per operation and mode (default 3: a few hundred
requests, CI-sized); set it higher for a longer hunt.

The HTML forms, which the OpenAPI document does not describe (the card-update page
that dunning emails link to, and the codec endpoint's sign-in), are fuzzed with
hypothesis-drawn requests at the bottom (``KAKIN_FUZZ_FORM_EXAMPLES`` each, default
40 times ``KAKIN_FUZZ_EXAMPLES``: a few seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.core.result import Ok
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import create_app
from api.codec_server import create_codec_app
from kakin.adapters import links
from kakin.adapters.stripe_gateway import TEST_CARDS, StripeGateway
from kakin.platform.settings import Settings
from kakin.services import api_keys
from tests.api.test_api import CUSTOMER, PRICE
from tests.api.test_api_subscriptions import stored_subscription
from tests.helpers import OK_CARD, connect_to, running
from tests.support.encryption import codec_for_tests

pytestmark = pytest.mark.devserver

EXAMPLES = int(os.environ.get("KAKIN_FUZZ_EXAMPLES", "3"))
# Tables whose rows change on every request by design, not by the request's effect.
NOT_FINGERPRINTED = {"api_keys", "alembic_version"}
LEAKS = re.compile(r"Traceback|File \"|\.py\"|\bline \d+, in\b|sqlalchemy|psycopg|pydantic_core")
EXCEPTION_NAME = re.compile(r"\b[A-Z][A-Za-z]+(?:Error|Exception)\b")
# Path parameters that name real objects in the "seeded" round.
SEEDED_PARAMETERS = (
    "customer_id",
    "price_id",
    "subscription_id",
    "metric_id",
    "tax_rate_id",
    "coupon_id",
)


@pytest.fixture(scope="module")
def fuzz_settings(module_task_queue: str) -> Settings:
    return Settings(
        stripe_api_key="sk_test_kakin",
        database_url="sqlite:///unused.db",
        task_queue=module_task_queue,
        stripe_webhook_secret="whsec_fuzz",
        api_rate_limit="off",  # the fuzzer is one caller sending as fast as it can
    )


@pytest.fixture(scope="module")
def fuzz_url(
    fuzz_settings: Settings,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    dev_env: WorkflowEnvironment,
) -> Iterator[str]:
    app = create_app(
        settings=fuzz_settings,
        sessions=pg_sessions,
        temporal=connect_to(dev_env.client.service_client.config.target_host),
        stripe=stripe_gateway,
    )
    with running(app) as base:
        yield base


@dataclass
class Findings:
    requests: int = 0
    unsendable: int = 0
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def problem(self, case: Case, response: schemathesis.Response, what: str) -> None:
        if len(self.problems) < 50:
            request = f"{case.method} {case.formatted_path} body={case.body!r:.300}"
            self.problems.append(
                f"{what}: {request} -> {response.status_code} {response.text[:300]}"
            )


class Fingerprint:
    """A digest of every table's rows (PostgreSQL), to see whether a request changed data."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        with sessions() as session:
            names = session.scalars(
                text(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
                )
            ).all()
        parts = [
            f"(SELECT md5(coalesce(string_agg(md5(t::text), '' ORDER BY md5(t::text)), '')) "
            f'FROM "{name}" AS t)'
            for name in sorted(set(names) - NOT_FINGERPRINTED)
        ]
        self.tables = len(parts)
        self.query = text("SELECT md5(" + " || ".join(parts) + ")")

    def take(self) -> str:
        with self.sessions() as session:
            return str(session.scalar(self.query))

    def settled(self, *, attempts: int = 25) -> str:
        """The fingerprint once background work (a workflow's activities) has stopped."""
        last = self.take()
        for _ in range(attempts):
            time.sleep(0.2)
            now = self.take()
            if now == last:
                return now
            last = now
        return last


def check(
    case: Case,
    response: schemathesis.Response,
    findings: Findings,
    *,
    label: str,
    changed: bool,
    authenticated: bool,
) -> None:
    status = response.status_code
    counts = findings.statuses.setdefault(label, {})
    counts[status] = counts.get(status, 0) + 1
    body = response.text
    if status >= 500:
        findings.problem(case, response, "server error")
    if LEAKS.search(body):
        findings.problem(case, response, "stack trace or internals in the body")
    if status >= 400:
        sent = json.dumps(case.body, default=str) + str(case.path_parameters) + str(case.query)
        names = [n for n in EXCEPTION_NAME.findall(body) if n not in sent]
        if names:
            findings.problem(case, response, f"exception names {names} in the body")
        if not has_error_shape(response, case):
            findings.problem(case, response, "error body not in the one shape")
        if changed:
            findings.problem(case, response, "an error response, but data changed")
    elif case.method.upper() == "GET" and changed:
        findings.problem(case, response, "a GET changed data")
    public = case.operation.path in ("/v1/health", "/v1/ready", "/v1/webhooks/stripe")
    if not authenticated and not public and status < 400:
        findings.problem(case, response, "answered without an API key")


def has_error_shape(response: schemathesis.Response, case: Case) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return False
    error = body["error"]
    if set(error) != {"type", "message"}:
        return False
    if not all(isinstance(error[k], str) and error[k] for k in ("type", "message")):
        return False
    # Readiness adds its checks beside the error; every other error is the error alone.
    return set(body) == {"error"} or case.operation.path == "/v1/ready"


def fuzz(
    base_url: str,
    admin_secret: str,
    seeded: dict[str, str],
    fingerprint: Fingerprint,
) -> tuple[Findings, int]:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    findings = Findings()
    http = requests.Session()
    admin = {"Authorization": f"Bearer {admin_secret}"}
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Ok):
            operations.append(result.ok())
        else:
            findings.problems.append(f"an operation the fuzzer cannot read: {result.err()}")

    def send(case: Case, label: str, headers: dict[str, str], authenticated: bool) -> None:
        before = fingerprint.take()
        try:
            response = case.call(base_url=base_url, session=http, headers=headers, timeout=30)
        except (requests.exceptions.InvalidHeader, ValueError, UnicodeError):
            findings.unsendable += 1  # a header or URL no HTTP client would send
            return
        findings.requests += 1
        success = response.status_code < 400 and case.method.upper() != "GET"
        after = fingerprint.settled() if success else fingerprint.take()
        check(
            case,
            response,
            findings,
            label=label,
            changed=after != before,
            authenticated=authenticated,
        )

    for operation in operations:
        names = {p.name for p in operation.path_parameters}
        real = {name: seeded[name] for name in names if name in seeded}
        rounds: list[tuple[str, GenerationMode, dict[str, Any], dict[str, str], bool]] = [
            ("valid", GenerationMode.POSITIVE, {}, admin, True),
            ("invalid", GenerationMode.NEGATIVE, {}, admin, True),
            ("no key", GenerationMode.POSITIVE, {}, {}, False),
        ]
        if real:
            rounds.append(("real ids", GenerationMode.POSITIVE, real, admin, True))
        for label, mode, path_parameters, headers, authenticated in rounds:
            strategy = operation.as_strategy(
                generation_mode=mode, path_parameters=path_parameters or None
            )
            examples(
                strategy,
                functools.partial(send, label=label, headers=headers, authenticated=authenticated),
            )
    return findings, len(operations)


def examples(strategy: Any, send: Callable[[Case], None]) -> None:
    """``EXAMPLES`` cases drawn from ``strategy``, each sent; no shrinking (it would resend)."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Case) -> None:
        send(case)

    # Unsatisfiable: nothing to generate, e.g. invalid input for an operation that takes none.
    with contextlib.suppress(Unsatisfiable):
        run()


async def seed(url: str, secret: str) -> dict[str, str]:
    """A customer with a card, a price, a trialing subscription, a metric, a tax rate, a coupon."""
    tag = secrets.token_hex(3)
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:

        async def made(path: str, body: dict[str, Any]) -> str:
            response = await http.post(path, json=body)
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

        customer_id = await made("/v1/customers", {**CUSTOMER, "card_number": OK_CARD})
        price_id = await made("/v1/prices", PRICE)
        return {
            "customer_id": customer_id,
            "price_id": price_id,
            "subscription_id": await made(
                "/v1/subscriptions",
                {"customer_id": customer_id, "price_id": price_id, "trial_days": 30},
            ),
            "metric_id": await made(
                "/v1/metrics", {"code": f"fuzz_{tag}", "name": "Fuzz", "aggregation": "count"}
            ),
            "tax_rate_id": await made("/v1/tax-rates", {"name": "消費税", "percentage": "10"}),
            "coupon_id": await made(
                "/v1/coupons",
                {"code": f"FUZZ{tag}", "name": "Fuzz", "duration": "once", "percent_off": "10"},
            ),
        }


async def test_fuzz_the_api_from_its_openapi_document(
    fuzz_url: str,
    pg_sessions: sessionmaker[Session],
    module_worker: Worker,
) -> None:
    admin = api_keys.create_key(pg_sessions, name="fuzz admin", role="admin")
    seeded = await seed(fuzz_url, admin.secret)
    fingerprint = Fingerprint(pg_sessions)
    await asyncio.to_thread(fingerprint.settled)  # the subscription's workflow has started
    started = time.perf_counter()
    findings, operations = await asyncio.to_thread(
        fuzz, fuzz_url, admin.secret, seeded, fingerprint
    )
    elapsed = time.perf_counter() - started
    print(
        f"\nfuzz: {findings.requests} requests over {operations} operations in "
        f"{elapsed:.1f} s ({EXAMPLES} examples per operation and mode; "
        f"{findings.unsendable} unsendable skipped; {fingerprint.tables} tables "
        f"fingerprinted)"
    )
    for label, counts in findings.statuses.items():
        print(f"  {label}: {dict(sorted(counts.items()))}")
    assert findings.requests > 0
    assert not findings.problems, "\n".join(findings.problems)


# -- the HTML forms: the card-update page and the codec endpoint's sign-in --------------------
#
# Not in the OpenAPI document (they are for people), so hypothesis draws their requests:
# raw bytes, random form fields, huge values, NUL, bad percent-encoding, markup, and the
# genuine link's hidden fields with anything for a card number. Every answer must be
# below 500, carry no stack trace, echo no markup unescaped, and change no data.

FORM_EXAMPLES = int(os.environ.get("KAKIN_FUZZ_FORM_EXAMPLES", str(EXAMPLES * 40)))
MARKUP = "<kk-fuzz>"  # a value that an unescaped page would show as a tag
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass(frozen=True)
class FormRequest:
    method: str
    path: str
    body: bytes = b""
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:
        return f"{self.method} {self.path} query={self.query!r:.200} body={self.body!r:.300}"


def form_values() -> st.SearchStrategy[str]:
    junk = st.sampled_from(
        ["%", "%z", "%zz", "%f", "%ff", "%fe%ff", "%e3%81", "%00", "%%41", "%u00e9", "+", "=", "&"]
    )
    return st.one_of(
        st.text(max_size=40),  # any character, NUL included
        st.lists(st.one_of(junk, st.text(max_size=5)), max_size=6).map("".join),
        st.integers(2, 6).map(lambda n: "9" * (12 * 10**n // 10)),  # 120 to 1.2 million digits
        st.just(MARKUP),
        st.just(""),
    )


def raw_form(
    fields: st.SearchStrategy[dict[str, str]], *, encode: bool
) -> st.SearchStrategy[bytes]:
    if encode:
        return fields.map(lambda f: urlencode(f).encode())
    # As typed, not percent-encoded: a bad escape reaches the parser as it is.
    return fields.map(lambda f: "&".join(f"{k}={v}" for k, v in f.items()).encode())


def card_page_requests(path: str, link: dict[str, str]) -> st.SearchStrategy[FormRequest]:
    names = st.one_of(
        st.sampled_from(["subscription", "expires", "token", "card_number"]), st.text(max_size=8)
    )
    anything = st.dictionaries(names, form_values(), max_size=5)
    # The genuine link with any card number (never a working test card: nothing may change).
    genuine = st.builds(
        lambda card, extra: {**link, "card_number": card, **extra},
        form_values().filter(lambda c: c.replace(" ", "").replace("-", "") not in TEST_CARDS),
        st.dictionaries(st.text(max_size=8), form_values(), max_size=2),
    )
    bodies = st.one_of(
        st.binary(max_size=300),
        raw_form(anything, encode=True),
        raw_form(anything, encode=False),
        raw_form(genuine, encode=True),
        raw_form(genuine, encode=False),
        st.tuples(raw_form(genuine, encode=True), st.binary(max_size=40)).map(b"&".join),
    )
    languages = st.sampled_from(["", "ja", "en-US,en;q=0.9", "ja;q=abc, en;q=", "*", "x" * 300])
    posts = st.builds(
        lambda body, language: FormRequest(
            "POST", path, body=body, headers=(*FORM_HEADERS.items(), ("Accept-Language", language))
        ),
        bodies,
        languages,
    )
    gets = st.builds(
        lambda query: FormRequest("GET", path, query=tuple(query.items())),
        st.one_of(anything, genuine),
    )
    return st.one_of(posts, gets)


def codec_login_requests(keys: list[str]) -> st.SearchStrategy[FormRequest]:
    presented = st.one_of(form_values(), st.sampled_from(keys))
    fields = st.dictionaries(st.one_of(st.just("key"), st.text(max_size=8)), presented, max_size=4)
    bodies = st.one_of(
        st.binary(max_size=300), raw_form(fields, encode=True), raw_form(fields, encode=False)
    )
    origins = st.sampled_from(["", "null", "http://evil.example", "http://127.0.0.1"])
    return st.one_of(
        st.builds(
            lambda body, origin: FormRequest(
                "POST",
                "/login",
                body=body,
                headers=(*FORM_HEADERS.items(), *((("Origin", origin),) if origin else ())),
            ),
            bodies,
            origins,
        ),
        st.builds(lambda body: FormRequest("POST", "/logout", body=body), st.binary(max_size=50)),
        st.builds(
            lambda query: FormRequest("GET", "/login", query=tuple(query.items())),
            st.dictionaries(st.text(max_size=8), form_values(), max_size=3),
        ),
    )


def fuzz_forms(
    base_url: str, strategy: st.SearchStrategy[FormRequest], fingerprint: Fingerprint
) -> tuple[int, dict[int, int], list[str]]:
    """Send ``FORM_EXAMPLES`` drawn requests; (how many, statuses, problems)."""
    statuses: dict[int, int] = {}
    problems: list[str] = []
    sent = 0

    # One kept-alive connection for all of them: a server that drops it after a bad
    # request would show as a transport error here.
    with httpx.Client(base_url=base_url, timeout=30) as http:

        @settings(
            max_examples=FORM_EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(request=strategy)
        def run(request: FormRequest) -> None:
            nonlocal sent
            before = fingerprint.take()
            try:
                response = http.request(
                    request.method,
                    request.path,
                    content=request.body or None,
                    params=list(request.query) or None,
                    headers=dict(request.headers),
                )
            except (httpx.InvalidURL, UnicodeEncodeError, ValueError):
                return  # a URL or header no browser would send
            sent += 1
            status = response.status_code
            statuses[status] = statuses.get(status, 0) + 1
            what = []
            if status >= 500:
                what.append("server error")
            if LEAKS.search(response.text):
                what.append("stack trace or internals in the body")
            if MARKUP in response.text:
                what.append("markup echoed unescaped")
            if fingerprint.take() != before:
                what.append("data changed")
            if what and len(problems) < 30:
                problems.append(f"{', '.join(what)}: {request!r} -> {status} {response.text[:300]}")

        run()
    return sent, statuses, problems


@pytest.fixture(scope="module")
def card_link(pg_sessions: sessionmaker[Session], fuzz_settings: Settings) -> dict[str, str]:
    """A genuine card-update link (its query) for a subscription with no Stripe customer."""
    subscription_id = stored_subscription(pg_sessions)
    emailed = links.payment_update_url(
        fuzz_settings.payment_update_url, subscription_id, expires=int(time.time()) + 3600,
        secret=fuzz_settings.link_secret,
    )  # fmt: skip
    return {k: v[0] for k, v in parse_qs(urlsplit(emailed).query).items()}


def report(what: str, sent: int, statuses: dict[int, int], elapsed: float) -> None:
    print(f"\n{what}: {sent} requests in {elapsed:.1f} s: {dict(sorted(statuses.items()))}")


def test_fuzz_the_card_update_page(
    fuzz_url: str,
    fuzz_settings: Settings,
    card_link: dict[str, str],
    pg_sessions: sessionmaker[Session],
) -> None:
    fingerprint = Fingerprint(pg_sessions)
    fingerprint.settled()
    path = urlsplit(fuzz_settings.payment_update_url).path
    started = time.perf_counter()
    sent, statuses, problems = fuzz_forms(
        fuzz_url, card_page_requests(path, card_link), fingerprint
    )
    report("card-update page", sent, statuses, time.perf_counter() - started)
    assert sent > FORM_EXAMPLES // 2
    assert not problems, "\n".join(problems)
    assert {400, 403, 422} <= set(statuses)  # unreadable, refused link, not a test card


def test_fuzz_the_codec_sign_in(pg_sessions: sessionmaker[Session]) -> None:
    keys = [
        api_keys.create_key(pg_sessions, name=f"fuzz codec {role}", role=role).secret
        for role in ("support", "service")
    ]
    app = create_codec_app(
        codec=codec_for_tests(), sessions=pg_sessions, ui_origin="http://localhost:8233"
    )
    fingerprint = Fingerprint(pg_sessions)
    fingerprint.settled()
    with running(app) as url:
        started = time.perf_counter()
        sent, statuses, problems = fuzz_forms(url, codec_login_requests(keys), fingerprint)
        report("codec sign-in", sent, statuses, time.perf_counter() - started)
    assert sent > FORM_EXAMPLES // 2
    assert not problems, "\n".join(problems)
    assert 200 in statuses and 401 in statuses
