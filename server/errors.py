"""The one JSON error body of every route and middleware: `{"error": message, "reason": code, ...}`.

`reason` is a stable machine-readable code (docs/API.md lists them); `error` is for a person.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web


def error_response(
    status: int, reason: str, message: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> web.Response:
    """A JSON error response; `extra` adds fields (e.g. `maxSessions`) beside the two every error has."""
    return web.json_response({"error": message, "reason": reason, **extra}, status=status, headers=headers)
