"""Who is signed in to the console, and what they may do: cookies, CSRF, ``require_staff``.

Every console page takes ``require_staff(...)`` as a dependency::

    @router.get("/console/invoices")
    async def invoices(request: Request, me: Annotated[SignedIn, Depends(require_staff())]):
        ...

    @router.post("/console/staff/{staff_id}/disable")
    async def disable(me: Annotated[SignedIn, Depends(require_staff(StaffRole.ADMIN))]): ...

It admits a signed-in staff member whose role is listed (an admin always: each role may
do what the roles below it may). Otherwise a GET is redirected to sign-in (or to the
step of sign-in that is missing), a POST is a 401 without a session and a 403 without
the form's CSRF token, and a role that may not see the page is a 403 either way.

The session cookie holds the session's random token, signed (itsdangerous) with
``KAKIN_CONSOLE_SECRET``; the database keeps the token's SHA-256, so the cookie alone
decides nothing. Cookies are HttpOnly, SameSite=Strict (a link from another site opens
the console at sign-in) and Secure over https.

CSRF: every form carries ``csrf_token``, an HMAC of the session token (or, before
sign-in, of a random value in a cookie of its own) under the console secret. A page
from another site can neither read the token nor compute it, so a POST it forges
lacks it and is refused with 403 before anything runs. Each page's token is new (its
time and a nonce under the HMAC) and spent by the first form sent with it
(``kakin.services.console_forms``): a form sent twice (a double click, a resend) is a
409 the second time and acts once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from itsdangerous import BadSignature, Signer

from api.deps import deps_of
from api.forms import preferred_locale, read_form
from kakin import runtime
from kakin.platform.codec import Keyring, keyring_from_settings
from kakin.platform.settings import Settings
from kakin.services import console_forms, staff_sessions
from kakin.services.staff import Origin, StaffInfo, StaffRole
from kakin.services.staff_sessions import ConsolePolicy, Current, Stage

SESSION_COOKIE = "kakin_console"
ANCHOR_COOKIE = "kakin_console_csrf"  # before sign-in: what the CSRF token is bound to
COOKIE_PATH = "/console"
CSRF_FIELD = "csrf_token"
SIGN_IN = "/console/sign-in"
HOME = "/console/"
PASSWORD_PAGE = "/console/password"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Where each unfinished stage of sign-in continues.
STAGE_PAGES = {Stage.SECOND_FACTOR: "/console/sign-in/2fa", Stage.ENROL: "/console/2fa/enrol"}


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Console:
    """What the console pages share, on ``app.state.console`` (one per app)."""

    settings: Settings
    policy: ConsolePolicy
    clock: Callable[[], datetime] = utc_now
    _keyring: list[Keyring] = field(default_factory=list)

    def __post_init__(self) -> None:
        secret = self.settings.console_secret
        self.session_signer = Signer(secret, salt="kakin-console-session")
        self.anchor_signer = Signer(secret, salt="kakin-console-anchor")
        self._csrf_key = hashlib.sha256(f"kakin-console-csrf:{secret}".encode()).digest()

    def keyring(self) -> Keyring:
        """The payload keys that seal TOTP secrets (read once; ``EncryptionKeyError``)."""
        if not self._keyring:
            self._keyring.append(keyring_from_settings(self.settings))
        return self._keyring[0]

    def csrf_token(self, anchor: str) -> str:
        """A new one-time token for a page's forms: when it was made, a nonce, and their
        HMAC with the browser's anchor (``form_token``)."""
        issued, nonce = str(int(self.clock().timestamp())), secrets.token_urlsafe(12)
        return f"{issued}.{nonce}.{self._form_mac(anchor, issued, nonce)}"

    def form_token(self, anchor: str, token: str) -> FormToken | None:
        """The nonce and time of ``token`` if this console made it for ``anchor``."""
        issued, _, rest = token.partition(".")
        nonce, _, mac = rest.partition(".")
        if not (issued.isdigit() and nonce and mac):
            return None
        if not hmac.compare_digest(mac, self._form_mac(anchor, issued, nonce)):
            return None
        return FormToken(nonce=nonce, issued=datetime.fromtimestamp(int(issued), UTC))

    def _form_mac(self, anchor: str, issued: str, nonce: str) -> str:
        message = f"{anchor}|{issued}|{nonce}".encode()
        return hmac.new(self._csrf_key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class FormToken:
    nonce: str
    issued: datetime


def build_console(settings: Settings, clock: Callable[[], datetime] | None = None) -> Console:
    """Raises ``ConfigurationError`` for settings a live key forbids (runtime.console_policy)."""
    return Console(
        settings=settings, policy=runtime.console_policy(settings), clock=clock or utc_now
    )


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


class ConsoleRedirect(Exception):
    """Answered with 303 to ``location`` (console.errors)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class ConsoleDenied(Exception):
    """Answered with an HTML page of ``status`` saying ``key`` (a message of the catalog)."""

    def __init__(self, status: int, key: str, **params: Any) -> None:
        super().__init__(key)
        self.status = status
        self.key = key
        self.params = params


@dataclass(frozen=True)
class SignedIn:
    """The staff member a page is shown to, and their session."""

    staff: StaffInfo
    session_id: str
    token: str


# -- cookies ---------------------------------------------------------------------------


def session_token(request: Request) -> str | None:
    """The session token of the request's cookie, if its signature holds."""
    signed = request.cookies.get(SESSION_COOKIE)
    if not signed:
        return None
    try:
        return console_of(request).session_signer.unsign(signed).decode()
    except BadSignature:
        return None


def _cookie(request: Request, response: Response, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def started_session(request: Request, token: str) -> None:
    """Say, before rendering, that this response starts the session ``token`` (so its
    forms carry that session's CSRF token); ``set_session`` then sets the cookie."""
    request.state.fresh_session_token = token


def set_session(request: Request, response: Response, token: str) -> None:
    signed = console_of(request).session_signer.sign(token).decode()
    _cookie(request, response, SESSION_COOKIE, signed)


def clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)


def origin_of(request: Request) -> Origin:
    address = request.client.host if request.client else ""
    return Origin(address=address, user_agent=request.headers.get("user-agent", ""))


# -- CSRF --------------------------------------------------------------------------------


def _anchor(request: Request) -> str | None:
    # A page rendered just after sign-in carries forms for the session it starts.
    fresh: str | None = getattr(request.state, "fresh_session_token", None)
    if fresh is not None:
        return fresh
    token = session_token(request)
    if token is not None:
        return token
    signed = request.cookies.get(ANCHOR_COOKIE)
    if not signed:
        return None
    try:
        return console_of(request).anchor_signer.unsign(signed).decode()
    except BadSignature:
        return None


def csrf_for(request: Request, response: Response | None = None) -> str:
    """The CSRF token for the forms of a page (one per page, spent by the first form
    sent); with no anchor yet, one is made (and set on ``response``, or later by
    ``render`` from ``request.state``)."""
    console = console_of(request)
    anchor = _anchor(request) or getattr(request.state, "new_anchor", None)
    if anchor is None:
        anchor = secrets.token_urlsafe(24)
        request.state.new_anchor = anchor
    if response is not None:
        keep_anchor(request, response)
    made: dict[str, str] = getattr(request.state, "form_tokens", {})
    if anchor not in made:
        made[anchor] = console.csrf_token(anchor)
        request.state.form_tokens = made
    return made[anchor]


def keep_anchor(request: Request, response: Response) -> None:
    """Set the anchor cookie made while rendering this response, if any."""
    anchor = getattr(request.state, "new_anchor", None)
    if anchor is not None:
        signed = console_of(request).anchor_signer.sign(anchor).decode()
        _cookie(request, response, ANCHOR_COOKIE, signed)


async def form_of(request: Request) -> dict[str, str]:
    """The posted form (read once per request); a body that is not UTF-8 is a 400."""
    cached: dict[str, str] | None = getattr(request.state, "console_form", None)
    if cached is None:
        cached = read_form(await request.body())
        if cached is None:
            raise ConsoleDenied(400, "error.unreadable_form")
        request.state.console_form = cached
    return cached


async def check_csrf(request: Request) -> dict[str, str]:
    """The posted form, if it carries this browser's CSRF token (else a 403) not spent
    by an earlier POST (else a 409: the form was sent twice and acts once)."""
    form = await form_of(request)
    anchor = _anchor(request)
    console = console_of(request)
    token = console.form_token(anchor, form.get(CSRF_FIELD, "")) if anchor else None
    if token is None or console.clock() - token.issued > console_forms.LIFETIME:
        raise ConsoleDenied(403, "error.csrf")
    if getattr(request.state, "spent_form", None) != token.nonce:
        sessions, now = deps_of(request).sessions, console.clock()
        if not await run_in_threadpool(console_forms.spend, sessions, token.nonce, now=now):
            raise ConsoleDenied(409, "error.already_sent", back=_back(request))
        request.state.spent_form = token.nonce
    return form


def _back(request: Request) -> str:
    """The console page the form was on (from Referer, this site's paths only)."""
    referer = urlsplit(request.headers.get("referer", ""))
    same_site = not referer.netloc or referer.netloc == request.url.netloc
    if same_site and referer.path.startswith("/console"):
        return referer.path + (f"?{referer.query}" if referer.query else "")
    return HOME


# -- who is signed in ------------------------------------------------------------------------


async def current_session(request: Request) -> tuple[str, Current] | None:
    """The request's session token and its valid session (any stage), or None."""
    token = session_token(request)
    if token is None:
        return None
    console = console_of(request)
    found = await run_in_threadpool(
        staff_sessions.current,
        deps_of(request).sessions,
        token,
        now=console.clock(),
        policy=console.policy.sessions,
    )
    return None if found is None else (token, found)


def sign_in_location(request: Request, *, ended: bool = False) -> str:
    """Sign-in, coming back to this page afterwards."""
    target = request.url.path
    query = f"?next={quote(target, safe='/')}" if target not in (HOME, SIGN_IN) else ""
    if ended:
        query += ("&" if query else "?") + "ended=1"
    return SIGN_IN + query


def locale_of(request: Request, me: StaffInfo | None = None) -> str:
    return me.locale if me is not None else preferred_locale(request)


def require_staff(*roles: StaffRole) -> Callable[[Request], Awaitable[SignedIn]]:
    """A dependency admitting a signed-in staff member of one of ``roles`` (or an admin;
    no roles: any staff member). See the module's docstring for what it refuses."""
    allowed = frozenset(roles)

    async def signed_in_staff(request: Request) -> SignedIn:
        found = await current_session(request)
        unsafe = request.method not in SAFE_METHODS
        if found is None or found[1].stage is not Stage.SIGNED_IN:
            if unsafe:
                raise ConsoleDenied(401, "error.signed_out")
            if found is not None:
                raise ConsoleRedirect(STAGE_PAGES[found[1].stage])
            ended = request.cookies.get(SESSION_COOKIE) is not None
            raise ConsoleRedirect(sign_in_location(request, ended=ended))
        token, current = found
        me = current.staff
        if me.password_temporary and request.url.path != PASSWORD_PAGE:
            # An invitation's password was seen by the admin who handed it over.
            request.state.console_staff = me  # the refusal in their language
            if unsafe:
                raise ConsoleDenied(403, "error.password_temporary")
            raise ConsoleRedirect(PASSWORD_PAGE)
        if allowed and me.role not in allowed and me.role is not StaffRole.ADMIN:
            raise ConsoleDenied(403, "error.role", role=me.role.value)
        if unsafe:  # after the role: a refused form does not spend its page's token
            await check_csrf(request)
        request.state.console_staff = me
        return SignedIn(staff=me, session_id=current.session_id, token=token)

    return signed_in_staff


# A page any signed-in staff member may see: ``me: AnyStaff``.
# The page parameters of who may open a page (an admin always may).
AnyStaff = Annotated[SignedIn, Depends(require_staff())]
Support = Annotated[SignedIn, Depends(require_staff(StaffRole.SUPPORT))]
Admin = Annotated[SignedIn, Depends(require_staff(StaffRole.ADMIN))]
