"""The compliance history's routes (docs/API.md has the contract): `GET /api/passages`,
`/api/passages.csv`, `/api/summary`, `/api/summary.csv`, `/api/today` and `/api/live` for the operator, and
`GET /today` for a kiosk (one location's counts of today, with the camera token: every screen shows the
server's numbers). Access to `/api/*` is decided in `server.security` (admin token, or loopback clients
only). Database reads run in the history's own two threads
(`server.history.service.ReadPool`), never on the event loop nor in its default executor.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, cast

from aiohttp import web

from server.errors import error_response
from server.history.answer_cache import RecentAnswers
from server.history.buckets import (
    BUCKETS,
    Bucket,
    TimeParameterError,
    iso,
    parse_time,
    parse_timezone,
    summarise,
)
from server.history.service import HISTORY, HistoryBusy, HistoryService
from server.history.store import HistoryStore, PassageQuery, PassageRecord, QuarterCount
from server.location import parse_location
from vision.labels import LABELS, is_compliant

logger = logging.getLogger(__name__)

MAX_LIMIT = 10000
DEFAULT_LIMIT = 1000
CSV_FIELDS = ("time", "location", "label", "confidence", "seconds", "frames", "size", "label_changed", "uid")
SUMMARY_CSV_FIELDS = ("start", "location", *LABELS)
NOT_FOR_TODAY = ("since", "until", "bucket", "limit")
"""Parameters of the other routes that the today routes refuse: a kiosk that asks for another day or a
number of rows must not silently get today's totals."""


TODAY_ANSWER_S = 2.0
"""How long an answer of the today routes is reused while this server writes no new passage (docs/API.md):
far below a kiosk's poll interval."""
TODAY_ANSWERS: web.AppKey[RecentAnswers[Any]] = web.AppKey("today_answers", RecentAnswers)


def add_history_routes(app: web.Application) -> None:
    """The `/api/*` routes; the app needs `server.history.service.setup_history` too."""
    app[TODAY_ANSWERS] = RecentAnswers(TODAY_ANSWER_S, keep=lambda answer: isinstance(answer, dict))
    app.router.add_get("/api/passages", _passages)
    app.router.add_get("/api/passages.csv", _passages_csv)
    app.router.add_get("/api/summary", _summary)
    app.router.add_get("/api/summary.csv", _summary_csv)
    app.router.add_get("/api/today", _today_all)
    app.router.add_get("/api/live", _live)
    app.router.add_get("/today", _today_one)


class _BadRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.response = error_response(400, "bad_query", message)


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
        return error_response(409, "history_off", "This server keeps no history (--no-history).")
    if rows and service.writer.store.detail == "counts":
        return error_response(
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
    return await _run(service, read, store, filters)


async def _run(service: HistoryService, read: Callable[..., Any], *args: Any) -> Any:
    """A read in the history's own threads; a busy or failing database is a 503, never a 500."""
    try:
        return await service.reads.run(read, *args)
    except HistoryBusy:
        return error_response(
            503, "history_busy", "Too many history reads are waiting for the database; try again."
        )
    except Exception as exc:
        logger.warning("history: a read failed (%s)", type(exc).__name__)
        return error_response(
            503, "history_unavailable", "The history database cannot be read now; try again later."
        )


def passage_json(record: PassageRecord, zone: tzinfo) -> dict[str, Any]:
    """A passage as `/api/passages` and its CSV show it, and as the events send it (`server.events`):
    `uid` lets a receiver of the events join the two and drop a passage delivered twice."""
    return {
        "time": iso(record.start_ms, zone),
        "location": record.location,
        "label": record.label,
        "confidence": record.confidence,
        "seconds": record.seconds,
        "frames": record.frames,
        "size": record.size,
        "label_changed": record.label_changed,
        "uid": record.uid,
    }


TRUNCATED_HEADER = "X-Maskcam-Truncated"
"""`true` when more passages matched than `limit` let through (the newest were kept), else `false`."""


def _rows(store: HistoryStore, filters: _Filters) -> tuple[list[dict[str, Any]], bool]:
    """The passages of the query, newest first, and whether more matched than its limit (one row more is
    read to know)."""
    limit = filters.query.limit
    records = store.passages(replace(filters.query, limit=limit + 1))
    return [passage_json(record, filters.zone) for record in records[:limit]], len(records) > limit


async def _passages(request: web.Request) -> web.Response:
    def read(store: HistoryStore, filters: _Filters) -> web.Response:
        rows, truncated = _rows(store, filters)
        return web.json_response(
            {"tz": str(filters.zone), "passages": rows, "truncated": truncated},
            headers={TRUNCATED_HEADER: str(truncated).lower()},
        )

    return cast(web.Response, await _read(request, True, read))


def _csv_response(
    fields: Sequence[str],
    rows: Iterable[Mapping[str, Any]],
    filename: str,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """A download for a spreadsheet: CRLF lines, a header row, `filename` offered to save as."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', **(headers or {})},
    )


async def _passages_csv(request: web.Request) -> web.Response:
    def read(store: HistoryStore, filters: _Filters) -> web.Response:
        rows, truncated = _rows(store, filters)
        return _csv_response(CSV_FIELDS, rows, "passages.csv", {TRUNCATED_HEADER: str(truncated).lower()})

    return cast(web.Response, await _read(request, True, read))


SummaryAnswer = Callable[[Bucket, tzinfo, list[dict[str, object]]], web.Response]


async def _summarised(request: web.Request, answer: SummaryAnswer) -> web.Response:
    """`/api/summary` and its CSV: the `bucket` checked, the buckets summed, `answer` makes the response."""
    bucket = request.query.get("bucket", "hour")
    if bucket not in BUCKETS:
        return error_response(400, "bad_query", f'"bucket" must be one of {", ".join(BUCKETS)}')

    def read(store: HistoryStore, filters: _Filters) -> web.Response:
        buckets = summarise(store.quarter_counts(filters.query), cast(Bucket, bucket), filters.zone)
        return answer(cast(Bucket, bucket), filters.zone, buckets)

    return cast(web.Response, await _read(request, False, read))


async def _summary(request: web.Request) -> web.Response:
    def answer(bucket: Bucket, zone: tzinfo, buckets: list[dict[str, object]]) -> web.Response:
        return web.json_response(
            {"tz": str(zone), "bucket": bucket, "labels": list(LABELS), "buckets": buckets}
        )

    return await _summarised(request, answer)


async def _summary_csv(request: web.Request) -> web.Response:
    def answer(bucket: Bucket, zone: tzinfo, buckets: list[dict[str, object]]) -> web.Response:
        return _csv_response(SUMMARY_CSV_FIELDS, buckets, f"summary-{bucket}.csv")

    return await _summarised(request, answer)


@dataclass(frozen=True)
class _Day:
    """Today in a zone: its date and its bounds in epoch milliseconds (23 or 25 hours on a change of
    daylight-saving time)."""

    date: date
    since_ms: int
    until_ms: int


def today_in(zone: tzinfo, now: datetime | None = None) -> _Day:
    local = (now or datetime.now(zone)).astimezone(zone)
    start = datetime(local.year, local.month, local.day, tzinfo=zone)
    following = start.date() + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=zone)
    return _Day(start.date(), round(start.timestamp() * 1000), round(end.timestamp() * 1000))


def day_totals(rows: list[QuarterCount]) -> dict[str, dict[str, Any]]:
    """Per location: `people` (all passages), one count per label, and `compliance` (the share with a
    mask worn properly, `vision.labels.is_compliant`; null with nobody)."""
    totals: dict[str, dict[str, int]] = {}
    for row in rows:
        counts = totals.setdefault(row.location, dict.fromkeys(LABELS, 0))
        counts[row.label] = counts.get(row.label, 0) + row.count
    return {location: _with_rate(counts) for location, counts in sorted(totals.items())}


def zero_totals() -> dict[str, Any]:
    """A location's totals with nobody yet."""
    return _with_rate(dict.fromkeys(LABELS, 0))


def _with_rate(counts: dict[str, int]) -> dict[str, Any]:
    people = sum(counts.values())
    compliant = sum(number for label, number in counts.items() if is_compliant(label))
    return {"people": people, **counts, "compliance": round(compliant / people, 4) if people else None}


def _today_query(request: web.Request, zone: tzinfo) -> tuple[str | None, tzinfo]:
    """`location` and `tz`, the today routes' parameters."""
    refused = [name for name in NOT_FOR_TODAY if name in request.query]
    if refused:
        raise _BadRequest(f'"{refused[0]}" does not apply here: today\'s totals take only location and tz')
    try:
        if "tz" in request.query:
            zone = parse_timezone(request.query["tz"])
        location = parse_location(request.query["location"]) if "location" in request.query else None
    except (TimeParameterError, ValueError) as exc:
        raise _BadRequest(str(exc)) from exc
    return location, zone


async def _today(request: web.Request, one_location: bool) -> web.Response:
    service = request.app[HISTORY]
    store = _store(service, False)
    if isinstance(store, web.Response):
        return store
    try:
        location, zone = _today_query(request, service.zone)
    except _BadRequest as bad:
        return bad.response
    if one_location and location is None:
        location = parse_location(None)
    day = today_in(zone)
    query = PassageQuery(since_ms=day.since_ms, until_ms=day.until_ms, location=location)

    def read(store: HistoryStore) -> dict[str, Any]:
        totals = day_totals(store.quarter_counts(query))
        head = {
            "tz": str(zone),
            "date": day.date.isoformat(),
            "since": iso(day.since_ms, zone),
            "until": iso(day.until_ms, zone),
        }
        if one_location:
            assert location is not None
            counts = totals.get(location) or zero_totals()
            body: dict[str, Any] = {**head, "location": location, **counts}
        else:
            body = {**head, "locations": [{"location": name, **counts} for name, counts in totals.items()]}
        return body

    # Every kiosk of an entrance asks the same question every few seconds: one read answers them all.
    # The number of passages this server has written is part of the question, so a new passage is
    # counted at once (another server on the same database is seen within TODAY_ANSWER_S).
    writer = service.writer
    assert writer is not None, "_store answered 409 without a writer"
    key = (one_location, location, str(zone), day.date, writer.written)
    answer = await request.app[TODAY_ANSWERS].get(key, lambda: _run(service, read, store))
    if isinstance(answer, web.Response):
        return answer
    return web.json_response(answer, headers={"Cache-Control": "no-store"})


async def _today_all(request: web.Request) -> web.Response:
    return await _today(request, one_location=False)


async def _today_one(request: web.Request) -> web.Response:
    return await _today(request, one_location=True)


async def _live(request: web.Request) -> web.Response:
    service = request.app[HISTORY]
    cameras = []
    for passages in service.live:
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
