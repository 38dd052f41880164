"""A real local webhook receiver (aiohttp) for the events tests: checks each delivery's signature, answers
500 for its first `fail_first` deliveries (or until `failing` is cleared), then 200, and keeps what it
accepted."""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from server.events.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, UID_HEADER, signature

TOLERANCE_S = 300
"""A timestamp further than this from the receiver's clock is refused (a replayed request)."""


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> bool:
    """A receiver's check (docs/API.md's, in this project's terms): the signature matches, the timestamp
    is recent."""
    try:
        timestamp = int(headers[TIMESTAMP_HEADER])
        given = headers[SIGNATURE_HEADER]
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_S:
        return False
    return hmac.compare_digest(given, signature(secret, timestamp, body))


@dataclass
class Receiver:
    secret: str
    fail_first: int = 0
    failing: bool = False
    attempts: int = 0
    refused_signatures: int = 0
    accepted: list[dict[str, Any]] = field(default_factory=list)
    uids: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        return app

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.attempts += 1
        if not verify(self.secret, request.headers, body):
            self.refused_signatures += 1
            return web.Response(status=401, text="bad signature")
        if self.failing or self.attempts <= self.fail_first:
            return web.Response(status=500, text="not now")
        passage = json.loads(body)
        assert passage["uid"] == request.headers[UID_HEADER]
        self.accepted.append(passage)
        self.uids.append(passage["uid"])
        return web.Response(status=200, text="ok")


class ReceiverThread:
    """The aiohttp receiver served on its own event loop in a thread (the dispatcher under test blocks)."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        runner = web.AppRunner(self.receiver.app())
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        self.runner = runner
        ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
