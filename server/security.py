"""HTTP hardening for an unattended server: access token, offer rate limit, security headers.

`security_middlewares()` returns aiohttp middlewares, outermost first, for `web.Application(middlewares=...)`:

1. security headers on every response, errors and static files included;
2. a per-client-address limit on `POST /offer` (sliding window, bounded memory), checked before the token
   so that guessing tokens through `/offer` is throttled too;
3. the optional access token. Everything except `/healthz` and `/api/*` needs it once a token is set. The
   token arrives as `?token=` (the URL typed into a phone or a kiosk's autostart file) or
   `Authorization: Bearer`; a successful `?token=` also sets a same-site, HttpOnly cookie so that the
   page's own requests (static files, `/config`, `/offer`) pass without the page having to copy the token
   around;
4. the operator's routes, the history `/api/*` and the page `/dashboard`: with an admin token, that
   token (the same three ways, its own cookie), never the camera token; without one, only clients on this
   machine (loopback addresses) that come directly: a request with a proxy's forwarding header
   (`Forwarded`, `X-Forwarded-For`, `X-Real-IP`) is not local whatever it says, since a reverse proxy on
   the same host connects from loopback for everyone. With an admin token, `/dashboard` does not need the
   camera token, and the admin token (or its cookie) also opens `/static/` and `/config` (the dashboard's
   scripts, styles, labels and their texts): an operator given only the admin token can open the
   dashboard, and nothing else of the cameras' (`/`, `/kiosk`, `/today`, `/offer` and `/metrics` still
   want the camera token).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from server.errors import error_response
from server.pages import STYLESHEETS, notice_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]
RejectCallback = Callable[[str], None]
"""Called with the reason ("unauthorized" or "rate_limited") whenever a middleware refuses a request."""

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self)",
    "X-Frame-Options": "DENY",
}
OPEN_PATHS = frozenset({"/healthz", *STYLESHEETS})
"""Paths that never need the token: load balancers and container health checks probe `/healthz`; the
notices' stylesheets, since a notice about a missing token must be readable without it."""
DASHBOARD_PATH = "/dashboard"
HTML_PATHS = frozenset({"/", "/kiosk", DASHBOARD_PATH})
STATIC_PREFIX = "/static/"
CONFIG_PATH = "/config"
OFFER_PATH = "/offer"
API_PREFIX = "/api/"
TOKEN_COOKIE = "maskcam_auth"
CREDENTIAL = web.RequestKey("credential", str)
"""Request key: set to `OPERATOR_ONLY` when only the operator's token let the request past the camera
token (the dashboard reading `/static/` or `/config`)."""
OPERATOR_ONLY = "operator"
ADMIN_COOKIE = "maskcam_admin"
LOOPBACK_ADDRESSES = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")
"""Headers that a reverse proxy adds: a request carrying one was relayed for some other client."""
RATE_WINDOW_SECONDS = 60.0
MAX_TRACKED_ADDRESSES = 4096


def security_middlewares(
    token: str | None,
    offers_per_minute: int,
    *,
    admin_token: str | None = None,
    on_reject: RejectCallback | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> list[Middleware]:
    """Middlewares for `create_app`: headers always; rate limit when > 0; token check when a token is set;
    the admin token (or the loopback rule) on `/api/*`."""
    middlewares: list[Middleware] = [_security_headers_middleware]
    if offers_per_minute > 0:
        limiter = SlidingWindowLimiter(offers_per_minute, RATE_WINDOW_SECONDS, MAX_TRACKED_ADDRESSES, clock)
        middlewares.append(_offer_rate_limit_middleware(limiter, on_reject))
    if token:
        if admin_token:
            operator = _OtherCredential(_Credential(admin_token, ADMIN_COOKIE), _dashboard_needs)
            middlewares.append(
                _token_middleware(token, on_reject, TOKEN_COOKIE, _camera_guarded_beside_admin, operator)
            )
        else:
            # No operator token: the dashboard is a page like the others (the camera token), and on top of
            # that, like `/api/*`, this machine's only (the loopback rule below).
            middlewares.append(_token_middleware(token, on_reject, TOKEN_COOKIE, _camera_guarded))
    if admin_token:
        middlewares.append(
            _token_middleware(admin_token, on_reject, ADMIN_COOKIE, _admin_guarded, notice="operator")
        )
    else:
        middlewares.append(_loopback_only_middleware(on_reject))
    return middlewares


def _camera_guarded(path: str) -> bool:
    return path not in OPEN_PATHS and not path.startswith(API_PREFIX)


def _camera_guarded_beside_admin(path: str) -> bool:
    """With an admin token the dashboard is the operator's alone: the camera token is not asked there."""
    return _camera_guarded(path) and path != DASHBOARD_PATH


def _admin_guarded(path: str) -> bool:
    return path.startswith(API_PREFIX) or path == DASHBOARD_PATH


def _dashboard_needs(path: str) -> bool:
    """What the dashboard reads besides `/api/*`: its files and the server's labels (`/config`)."""
    return path.startswith(STATIC_PREFIX) or path == CONFIG_PATH


def is_local_client(request: web.Request) -> bool:
    """A client on this machine that connected directly, not through a proxy (which may run here too)."""
    if request.remote not in LOOPBACK_ADDRESSES:
        return False
    return not any(name in request.headers for name in PROXY_HEADERS)


def _loopback_only_middleware(on_reject: RejectCallback | None) -> Middleware:
    @web.middleware
    async def loopback_only(request: web.Request, handler: Handler) -> web.StreamResponse:
        if _admin_guarded(request.path) and not is_local_client(request):
            if on_reject is not None:
                on_reject("unauthorized")
            if request.path == DASHBOARD_PATH:
                return notice_response(request, "localOnly", 403)
            return error_response(
                403,
                "forbidden",
                "The history API answers only this machine, not through a proxy, unless "
                "the server has an admin token (--admin-token).",
                headers={"Cache-Control": "no-store"},
            )
        return await handler(request)

    return loopback_only


@web.middleware
async def _security_headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _add_security_headers(exc.headers)
        raise
    if not response.prepared:
        _add_security_headers(response.headers)
    return response


def _add_security_headers(headers: Any) -> None:
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)


class SlidingWindowLimiter:
    """At most `limit` events per `window` seconds per key, remembering at most `max_keys` keys.

    Memory stays bounded whatever the traffic: a key holds at most `limit` timestamps, keys are kept in
    least-recently-seen order, idle keys are pruned, and beyond `max_keys` the least recent are forgotten
    (which can only make the limiter more lenient towards them, never block anyone wrongly).
    """

    def __init__(self, limit: int, window: float, max_keys: int, clock: Callable[[], float]) -> None:
        if limit < 1 or window <= 0 or max_keys < 1:
            raise ValueError("limit, window and max_keys must be positive")
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._events)

    def acquire(self, key: str) -> float:
        """Record an event for `key` and return 0, or return the seconds to wait when over the limit."""
        now = self._clock()
        events = self._events.get(key)
        if events is None:
            self._prune(now)
            events = deque(maxlen=self.limit)
            self._events[key] = events
        else:
            self._events.move_to_end(key)
        while events and events[0] <= now - self.window:
            events.popleft()
        if len(events) >= self.limit:
            return max(events[0] + self.window - now, 0.001)
        events.append(now)
        return 0.0

    def _prune(self, now: float) -> None:
        """Make room for one more key."""
        if len(self._events) < self.max_keys:
            return
        stale = [key for key, events in self._events.items() if not events or events[-1] <= now - self.window]
        for key in stale:
            del self._events[key]
        while len(self._events) >= self.max_keys:
            self._events.popitem(last=False)


def _offer_rate_limit_middleware(
    limiter: SlidingWindowLimiter, on_reject: RejectCallback | None
) -> Middleware:
    @web.middleware
    async def offer_rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "POST" and request.path == OFFER_PATH:
            wait = limiter.acquire(request.remote or "unknown")
            if wait > 0:
                if on_reject is not None:
                    on_reject("rate_limited")
                retry_after = max(1, math.ceil(wait))
                return error_response(
                    429,
                    "rate_limited",
                    f"Too many connection attempts from this address; retry in {retry_after} s.",
                    headers={"Retry-After": str(retry_after)},
                )
        return await handler(request)

    return offer_rate_limit


@dataclass(frozen=True)
class _Credential:
    """A token a middleware accepts, presented three ways: `?token=`, a bearer header, or its cookie."""

    token: str
    cookie: str

    def presented_by(self, request: web.Request) -> bool:
        candidates = (
            (request.query.get("token"), self.token),
            (_bearer_token(request), self.token),
            (request.cookies.get(self.cookie), _cookie_value(self.token)),
        )
        return any(
            given is not None and hmac.compare_digest(given.encode(), want.encode())
            for given, want in candidates
        )

    def set_cookie(self, request: web.Request, response: web.StreamResponse) -> None:
        """After a good `?token=`, the page's own later requests pass by the cookie."""
        given = request.query.get("token")
        if given is None or response.prepared or not hmac.compare_digest(given.encode(), self.token.encode()):
            return
        response.set_cookie(
            self.cookie,
            _cookie_value(self.token),
            httponly=True,
            samesite="Strict",
            secure=request.secure,
            path="/",
        )


@dataclass(frozen=True)
class _OtherCredential:
    """A second credential that a token middleware also accepts, on `paths` only."""

    credential: _Credential
    paths: Callable[[str], bool]


def _token_middleware(
    token: str,
    on_reject: RejectCallback | None,
    cookie: str,
    guarded: Callable[[str], bool],
    other: _OtherCredential | None = None,
    notice: str = "token",
) -> Middleware:
    """Requests to `guarded` paths need `token` (query, bearer header, or the `cookie` that a good
    `?token=` sets), or `other`'s on its paths. A refused page gets the `notice` page (server/pages.py).
    The request records which credential let it in (`CREDENTIAL`): `/config` keeps the TURN
    credentials from a caller holding only the operator's."""
    own = _Credential(token, cookie)

    @web.middleware
    async def access_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not guarded(request.path):
            return await handler(request)
        if not own.presented_by(request):
            if other is None or not other.paths(request.path) or not other.credential.presented_by(request):
                if on_reject is not None:
                    on_reject("unauthorized")
                return _unauthorized_response(request, notice)
            request[CREDENTIAL] = OPERATOR_ONLY
        response = await handler(request)
        own.set_cookie(request, response)
        return response

    return access_token


def wants_html(request: web.Request) -> bool:
    """A browser asking for a page (which gets an HTML notice), not a script (which gets JSON)."""
    return request.method in ("GET", "HEAD") and (
        request.path in HTML_PATHS or "text/html" in request.headers.get("Accept", "")
    )


def _cookie_value(token: str) -> str:
    """A value derived from the token, so that the cookie store never holds the token itself."""
    return hmac.new(token.encode(), b"maskcam page cookie", hashlib.sha256).hexdigest()


def _bearer_token(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _unauthorized_response(request: web.Request, notice: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="maskcam"', "Cache-Control": "no-store"}
    if wants_html(request):
        response = notice_response(request, notice, 401)
        response.headers.update(headers)
        return response
    return error_response(401, "unauthorized", "Access token missing or wrong.", headers=headers)
