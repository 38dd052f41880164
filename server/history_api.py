"""The compliance history's routes (docs/API.md has the contract): `GET /api/passages`,
`/api/passages.csv`, `/api/summary` and `/api/live`. Access to them is decided in `server.security`
(admin token, or loopback clients only). Database reads run in the history's own two threads
(`server.history.ReadPool`), never on the event loop nor in its default executor.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, cast

from aiohttp import web

from server.history import HISTORY, HistoryBusy, HistoryService
from server.history_store import HistoryStore, PassageQuery, PassageRecord
from server.history_time import (
    BUCKETS,
    Bucket,
    TimeParameterError,
    iso,
    parse_time,
    parse_timezone,
    summarise,
)
from server.location import parse_location
from vision.labels import LABELS

logger = logging.getLogger(__name__)

MAX_LIMIT = 10000
DEFAULT_LIMIT = 1000
CSV_FIELDS = ("time", "location", "label", "confidence", "seconds", "frames", "size", "label_changed")


def add_history_routes(app: web.Application) -> None:
    """The `/api/*` routes; the app needs `server.history.setup_history` too."""
    app.router.add_get("/api/passages", _passages)
    app.router.add_get("/api/passages.csv", _passages_csv)
    app.router.add_get("/api/summary", _summary)
    app.router.add_get("/api/live", _live)


def _error(status: int, reason: str, message: str) -> web.Response:
    return web.json_response({"error": message, "reason": reason}, status=status)


class _BadRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.response = _error(400, "bad_query", message)


@dataclass(frozen=True)
class _Filters:
    query: PassageQuery
    zone: tzinfo


def _filters(request: web.Request, zone: tzinfo) -> _Filters:
    params = request.query
    try:
        if "tz" in params:
            zone = parse_timezone(params["tz"])
        since = parse_time(params["since"], zone) if params.get("since") else None
        until = parse_time(params["until"], zone) if params.get("until") else None
    except TimeParameterError as exc:
        raise _BadRequest(str(exc)) from exc
    if since is not None and until is not None and until <= since:
        raise _BadRequest('"until" must be later than "since"')
    location = None
    if "location" in params:
        try:
            location = parse_location(params["location"])
        except ValueError as exc:
            raise _BadRequest(str(exc)) from exc
    limit = DEFAULT_LIMIT
    if "limit" in params:
        try:
            limit = int(params["limit"])
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIMIT:
            raise _BadRequest(f'"limit" must be a whole number from 1 to {MAX_LIMIT}')
    return _Filters(PassageQuery(since_ms=since, until_ms=until, location=location, limit=limit), zone)


def _store(service: HistoryService, rows: bool) -> HistoryStore | web.Response:
    if service.writer is None:
        return _error(409, "history_off", "This server keeps no history (--no-history).")
    if rows and service.writer.store.detail == "counts":
        return _error(
            409,
            "counts_only",
            "This server keeps only per-15-minute counts (--history-detail counts): there is no row per "
            "person. Use /api/summary.",
        )
    return service.writer.store


async def _read(request: web.Request, rows: bool, read: Callable[[HistoryStore, _Filters], Any]) -> Any:
    """Common steps: the store (or the 409), the filters (or the 400), the read in a thread (or a 503)."""
    service = request.app[HISTORY]
    store = _store(service, rows)
    if isinstance(store, web.Response):
        return store
    try:
        filters = _filters(request, service.zone)
    except _BadRequest as bad:
        return bad.response
    try:
        return await service.reads.run(read, store, filters)
    except HistoryBusy:
        return _error(503, "history_busy", "Too many history reads are waiting for the database; try again.")
    except Exception as exc:
        logger.warning("history: a read failed (%s)", type(exc).__name__)
        return _error(503, "history_unavailable", "The history database cannot be read now; try again later.")


def _passage_json(record: PassageRecord, zone: tzinfo) -> dict[str, Any]:
    return {
        "time": iso(record.start_ms, zone),
        "location": record.location,
        "label": record.label,
        "confidence": record.confidence,
        "seconds": record.seconds,
        "frames": record.frames,
        "size": record.size,
        "label_changed": record.label_changed,
    }


def _rows(store: HistoryStore, filters: _Filters) -> list[dict[str, Any]]:
    return [_passage_json(record, filters.zone) for record in store.passages(filters.query)]


async def _passages(request: web.Request) -> web.Response:
    def read(store: HistoryStore, filters: _Filters) -> web.Response:
        return web.json_response({"tz": str(filters.zone), "passages": _rows(store, filters)})

    return cast(web.Response, await _read(request, True, read))


async def _passages_csv(request: web.Request) -> web.Response:
    def read(store: HistoryStore, filters: _Filters) -> web.Response:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(_rows(store, filters))
        return web.Response(
            text=out.getvalue(),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": 'attachment; filename="passages.csv"'},
        )

    return cast(web.Response, await _read(request, True, read))


async def _summary(request: web.Request) -> web.Response:
    bucket = request.query.get("bucket", "hour")
    if bucket not in BUCKETS:
        return _error(400, "bad_query", f'"bucket" must be one of {", ".join(BUCKETS)}')

    def read(store: HistoryStore, filters: _Filters) -> web.Response:
        buckets = summarise(store.quarter_counts(filters.query), cast(Bucket, bucket), filters.zone)
        return web.json_response(
            {"tz": str(filters.zone), "bucket": bucket, "labels": list(LABELS), "buckets": buckets}
        )

    return cast(web.Response, await _read(request, False, read))


async def _live(request: web.Request) -> web.Response:
    service = request.app[HISTORY]
    cameras = []
    for session in service.registry.sessions():
        passages = session.passages
        if passages is None or session.closed:
            continue
        current = passages.current
        counts = {label: current.count(label) for label in LABELS}
        verdict = max(LABELS, key=lambda label: counts[label]) if current else None
        cameras.append(
            {
                "location": passages.location,
                "since": iso(round(passages.since * 1000), service.zone),
                "faces": len(current),
                "counts": counts,
                "verdict": verdict,
                "passages": passages.finished,
            }
        )
    return web.json_response(
        {"tz": str(service.zone), "cameras": cameras}, headers={"Cache-Control": "no-store"}
    )
