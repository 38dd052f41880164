"""Access token, offer rate limit and security headers (server/security.py) on a tiny aiohttp app."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server.analysis.analyser import AnalyserSource
from server.app import create_app
from server.security import (
    CONTENT_SECURITY_POLICY,
    TOKEN_COOKIE,
    SlidingWindowLimiter,
    security_middlewares,
)
from server.settings import ServerConfig
from tests.media_helpers import SlowAnalyser

TOKEN = "s3cret-token-0123456789"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _page(request: web.Request) -> web.Response:
    return web.Response(text="<html>page</html>", content_type="text/html")


async def _offer(request: web.Request) -> web.Response:
    return web.json_response({"type": "answer"})


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _crash(request: web.Request) -> web.Response:
    raise web.HTTPBadRequest(text='{"error": "bad"}', content_type="application/json")


def _app(token: str | None, offers_per_minute: int, **kwargs: object) -> web.Application:
    app = web.Application(middlewares=security_middlewares(token, offers_per_minute, **kwargs))  # type: ignore[arg-type]
    app.router.add_get("/", _page)
    app.router.add_get("/kiosk", _page)
    app.router.add_post("/offer", _offer)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _healthz)
    app.router.add_get("/config", _healthz)
    app.router.add_get("/bad", _crash)
    app.router.add_get("/api/live", _healthz)
    return app


ClientFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    clients: list[TestClient] = []

    async def factory(token: str | None, offers_per_minute: int = 0, **kwargs: object) -> TestClient:
        client = TestClient(TestServer(_app(token, offers_per_minute, **kwargs)))
        await client.start_server()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


async def test_security_headers_on_pages_errors_and_404(make_client: ClientFactory) -> None:
    client = await make_client(None)
    for path, status in (("/", 200), ("/bad", 400), ("/missing", 404)):
        response = await client.get(path)
        assert response.status == status
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Permissions-Policy"] == "camera=(self)"
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY


async def test_without_token_setting_everything_is_open(make_client: ClientFactory) -> None:
    client = await make_client(None)
    assert (await client.get("/")).status == 200
    assert (await client.post("/offer", json={})).status == 200


async def test_token_required_for_page_offer_metrics_config(make_client: ClientFactory) -> None:
    rejected: list[str] = []
    client = await make_client(TOKEN, on_reject=rejected.append)
    for path in ("/", "/kiosk"):
        response = await client.get(path)
        assert response.status == 401
        assert response.content_type == "text/html"
        assert "token" in await response.text()
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    offer = await client.post("/offer", json={"sdp": "x", "type": "offer"})
    assert offer.status == 401
    assert (await offer.json())["reason"] == "unauthorized"
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/config")).status == 401
    assert (await client.get("/?token=wrong")).status == 401
    assert (await client.post("/offer", headers={"Authorization": "Bearer wrong"})).status == 401
    assert rejected == ["unauthorized"] * 7


async def test_healthz_stays_open_with_token(make_client: ClientFactory) -> None:
    client = await make_client(TOKEN)
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_token_in_query_or_bearer_header_is_accepted(make_client: ClientFactory) -> None:
    client = await make_client(TOKEN)
    assert (await client.get(f"/kiosk?token={TOKEN}")).status == 200
    assert (await client.post(f"/offer?token={TOKEN}", json={})).status == 200
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 200


async def test_page_with_token_sets_cookie_that_authorises_later_requests(make_client: ClientFactory) -> None:
    client = await make_client(TOKEN)
    page = await client.get(f"/?token={TOKEN}")
    assert page.status == 200
    cookie = page.cookies[TOKEN_COOKIE]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert TOKEN not in cookie.value, "the cookie must not carry the token itself"
    # The test client keeps cookies like a browser: the page's own requests now pass without the token.
    assert (await client.get("/config")).status == 200
    assert (await client.post("/offer", json={})).status == 200
    client.session.cookie_jar.clear()
    assert (await client.get("/config")).status == 401


async def test_forged_cookie_is_rejected(make_client: ClientFactory) -> None:
    client = await make_client(TOKEN)
    response = await client.get("/config", headers={"Cookie": f"{TOKEN_COOKIE}={TOKEN}"})
    assert response.status == 401


@pytest.mark.parametrize(
    "header",
    [
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-For", "127.0.0.1"),
        ("Forwarded", "for=203.0.113.7;proto=https"),
        ("X-Real-IP", "203.0.113.7"),
    ],
)
async def test_without_admin_token_a_proxied_request_is_not_local(
    make_client: ClientFactory, header: tuple[str, str]
) -> None:
    """A reverse proxy on the same host connects from loopback for every client: its headers say so."""
    client = await make_client(None)
    direct = await client.get("/api/live")
    assert direct.status == 200
    proxied = await client.get("/api/live", headers=[header])
    assert proxied.status == 403
    assert "--admin-token" in (await proxied.json())["error"]
    assert (await client.get("/healthz", headers=[header])).status == 200, "only /api/* is guarded so"


async def test_offer_rate_limit_answers_429_with_retry_after(make_client: ClientFactory) -> None:
    clock = FakeClock()
    rejected: list[str] = []
    client = await make_client(None, 3, clock=clock, on_reject=rejected.append)
    for _ in range(3):
        assert (await client.post("/offer", json={})).status == 200
        clock.now += 1
    limited = await client.post("/offer", json={})
    assert limited.status == 429
    assert (await limited.json())["reason"] == "rate_limited"
    # The oldest of the 3 offers was 3 s ago: it leaves the 60 s window in 57 s.
    assert limited.headers["Retry-After"] == "57"
    assert limited.headers["X-Content-Type-Options"] == "nosniff"
    assert rejected == ["rate_limited"]
    # Pages are not rate limited.
    assert (await client.get("/")).status == 200
    clock.now += 57.5
    assert (await client.post("/offer", json={})).status == 200


async def test_rate_limit_applies_before_the_token_check(make_client: ClientFactory) -> None:
    client = await make_client(TOKEN, 2, clock=FakeClock())
    assert (await client.post("/offer", json={})).status == 401
    assert (await client.post("/offer", json={})).status == 401
    assert (await client.post(f"/offer?token={TOKEN}", json={})).status == 429


def test_limiter_is_per_key_and_slides() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(2, 60.0, 100, clock)
    assert limiter.acquire("a") == 0
    assert limiter.acquire("a") == 0
    assert limiter.acquire("a") == pytest.approx(60.0)
    assert limiter.acquire("b") == 0
    clock.now += 30
    assert limiter.acquire("a") == pytest.approx(30.0)
    clock.now += 30.5
    assert limiter.acquire("a") == 0


def test_limiter_memory_is_bounded() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(5, 60.0, 50, clock)
    for index in range(10_000):
        limiter.acquire(f"10.0.{index // 256}.{index % 256}")
        clock.now += 0.001
    assert len(limiter) <= 51
    # An address that keeps hammering stays limited even while others churn through the table.
    for _ in range(5):
        limiter.acquire("attacker")
    for index in range(20):
        limiter.acquire(f"192.168.0.{index}")
    assert limiter.acquire("attacker") > 0


def test_limiter_prunes_idle_addresses() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(5, 60.0, 10, clock)
    for index in range(10):
        limiter.acquire(f"old-{index}")
    clock.now += 61
    limiter.acquire("new")
    assert len(limiter) == 1


def test_limiter_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        SlidingWindowLimiter(0, 60.0, 10, FakeClock())


# --- the real app ---------------------------------------------------------------------------------------


def _stand_in(_: ServerConfig) -> AnalyserSource:
    return SlowAnalyser(0.001)


async def test_real_app_with_token_serves_the_page_and_its_assets_through_the_cookie() -> None:
    config = replace(ServerConfig(), token=TOKEN, offers_per_minute=0)
    client = TestClient(TestServer(create_app(config, source_factory=_stand_in)))
    await client.start_server()
    try:
        for path in ("/", "/kiosk", "/config", "/metrics", "/static/js/app.js"):
            assert (await client.get(path)).status == 401, path
        assert (await client.post("/offer", json={"sdp": "v=0", "type": "offer"})).status == 401
        assert (await client.get("/healthz")).status in (200, 503)
        assert (await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).status == 200

        for page in ("/", "/kiosk"):
            response = await client.get(f"{page}?token={TOKEN}")
            assert response.status == 200
            assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            html = await response.text()
            assets = re.findall(r'(?:href|src)="(static/[^"]+)"', html)
            assert any(asset.endswith(".js") for asset in assets)
            for asset in assets:
                asset_response = await client.get(f"/{asset}")
                assert asset_response.status == 200, asset
                assert asset_response.headers["X-Content-Type-Options"] == "nosniff"
        assert (await client.get("/config")).status == 200
        # The page sends its token with the offer too; the offer then reaches the offer handler.
        offer = await client.post(f"/offer?token={TOKEN}", json={"sdp": "v=0", "type": "offer"})
        assert (await offer.json())["reason"] != "unauthorized"
    finally:
        await client.close()


def test_static_pages_have_no_inline_script_or_style_that_the_policy_would_block() -> None:
    static = Path(__file__).resolve().parents[1] / "static"
    for page in sorted(static.glob("*.html")):
        html = page.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), f"{page.name}: inline <script>"
        assert "<style" not in html, f"{page.name}: inline <style>"
        assert not re.search(r"\sstyle=", html), f"{page.name}: style attribute"
        assert not re.search(r"\son[a-z]+=", html), f"{page.name}: inline event handler"
