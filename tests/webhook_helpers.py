"""A real local webhook receiver (aiohttp) for the events tests: checks each delivery's signature, answers
500 for its first `fail_first` deliveries (or until `failing` is cleared), then 200, and keeps what it
accepted."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from server.events.signing import UID_HEADER, verify


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
