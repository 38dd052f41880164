"""Time zones, ISO-8601 times and hour/day buckets for the history API.

Summaries are bucketed in a named time zone (the `tz=` parameter, or the server's own), from the stored
15-minute counts: an hour or a day is local wall-clock time, so the day of a daylight-saving change has 23
or 25 hours, and the repeated hour of autumn is two buckets with their own UTC offsets (as Frigate's
events summary does it).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from server.history.store import QUARTER_MS, QuarterCount
from vision.labels import LABELS

Bucket = Literal["hour", "day"]
BUCKETS: tuple[Bucket, ...] = ("hour", "day")


class TimeParameterError(ValueError):
    """A time or time zone that the API cannot read (answered with a 400)."""


def server_timezone() -> ZoneInfo:
    """The server's zone: $TZ, else the zone /etc/localtime links to, else UTC."""
    for name in (os.environ.get("TZ", "").lstrip(":"), _localtime_name()):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def _localtime_name() -> str:
    try:
        target = Path("/etc/localtime").resolve(strict=True)
    except OSError:
        return ""
    parts = target.parts
    return "/".join(parts[parts.index("zoneinfo") + 1 :]) if "zoneinfo" in parts else ""


def parse_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise TimeParameterError(
            f"unknown time zone {name!r} (use an IANA name such as Europe/Paris)"
        ) from exc


def parse_time(text: str, zone: tzinfo) -> int:
    """Epoch milliseconds of an ISO-8601 date or time; one without an offset is read in `zone`."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise TimeParameterError(
            f"{text!r} is not an ISO-8601 date or time (e.g. 2026-12-01 or 2026-12-01T08:00:00+01:00)"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return round(moment.timestamp() * 1000)


def iso(epoch_ms: int, zone: tzinfo) -> str:
    """ISO-8601 with the zone's offset, to the millisecond."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).astimezone(zone).isoformat(timespec="milliseconds")


def bucket_start(epoch_ms: int, bucket: Bucket, zone: tzinfo) -> datetime:
    """Start of the local hour or day that holds this instant, as an aware datetime in `zone`."""
    instant = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    local = instant.astimezone(zone)
    if bucket == "hour":
        # Back to :00 local time, counted in UTC: exact in the repeated hour of autumn too.
        into_hour = timedelta(minutes=local.minute, seconds=local.second, microseconds=local.microsecond)
        return (instant - into_hour).astimezone(zone)
    day: date = local.date()
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def summarise(rows: Iterable[QuarterCount], bucket: Bucket, zone: tzinfo) -> list[dict[str, object]]:
    """Per bucket and location, the passages of each label; oldest bucket first."""
    totals: dict[tuple[datetime, str], dict[str, int]] = {}
    for row in rows:
        start = bucket_start(row.quarter * QUARTER_MS, bucket, zone)
        key = (start.astimezone(UTC), row.location)
        if key not in totals:
            totals[key] = dict.fromkeys(LABELS, 0)
        totals[key][row.label] = totals[key].get(row.label, 0) + row.count
    return [
        {"start": start.astimezone(zone).isoformat(), "location": location, **labels}
        for (start, location), labels in sorted(totals.items())
    ]
