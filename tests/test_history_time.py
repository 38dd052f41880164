"""Hour and day buckets in a named time zone, right across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from server.history.buckets import TimeParameterError, iso, parse_time, parse_timezone, summarise
from server.history.store import QUARTER_MS, QuarterCount

PARIS = ZoneInfo("Europe/Paris")


def quarter(utc: str) -> int:
    return round(datetime.fromisoformat(utc).replace(tzinfo=UTC).timestamp() * 1000) // QUARTER_MS


def rows(*utc_times: str) -> list[QuarterCount]:
    return [QuarterCount(quarter(t), "Main entrance", "with_mask", 1) for t in utc_times]


def starts(buckets: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(b["start"], b["with_mask"]) for b in buckets]


def test_the_repeated_hour_of_autumn_is_two_buckets() -> None:
    # 2026-10-25: at 03:00 CEST (01:00 UTC) clocks go back to 02:00 CET.
    found = summarise(rows("2026-10-25T00:30", "2026-10-25T00:45", "2026-10-25T01:30"), "hour", PARIS)
    assert starts(found) == [("2026-10-25T02:00:00+02:00", 2), ("2026-10-25T02:00:00+01:00", 1)]


def test_the_day_of_a_change_has_its_own_length() -> None:
    # 2026-10-25 in Paris runs from 22:00 UTC the day before to 23:00 UTC: 25 hours.
    found = summarise(
        rows("2026-10-24T21:45", "2026-10-24T22:00", "2026-10-25T22:45", "2026-10-25T23:00"), "day", PARIS
    )
    assert starts(found) == [
        ("2026-10-24T00:00:00+02:00", 1),
        ("2026-10-25T00:00:00+02:00", 2),
        ("2026-10-26T00:00:00+01:00", 1),
    ]


def test_spring_forward_skips_the_missing_hour() -> None:
    # 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00 UTC.
    found = summarise(rows("2026-03-29T00:45", "2026-03-29T01:00"), "hour", PARIS)
    assert starts(found) == [("2026-03-29T01:00:00+01:00", 1), ("2026-03-29T03:00:00+02:00", 1)]


def test_a_zone_with_a_45_minute_offset_has_hours_on_its_own_clock() -> None:
    # 00:00 UTC is 05:45 in Kathmandu: 00:00-00:15 UTC belongs to the local 05:00 hour, 00:15 on to 06:00.
    found = summarise(
        rows("2026-06-01T00:00", "2026-06-01T00:15", "2026-06-01T00:30"), "hour", ZoneInfo("Asia/Kathmandu")
    )
    assert starts(found) == [("2026-06-01T05:00:00+05:45", 1), ("2026-06-01T06:00:00+05:45", 2)]


def test_times_without_an_offset_are_read_in_the_zone() -> None:
    assert parse_time("2026-10-25T12:00", PARIS) == parse_time("2026-10-25T11:00:00Z", PARIS)
    assert parse_time("2026-10-25", UTC) == parse_time("2026-10-25T00:00:00+00:00", PARIS)
    assert iso(parse_time("2026-07-01T08:00", PARIS), PARIS) == "2026-07-01T08:00:00.000+02:00"


@pytest.mark.parametrize("text", ["", "noon", "2026-02-30", "12/01/2026"])
def test_bad_times_are_refused(text: str) -> None:
    with pytest.raises(TimeParameterError):
        parse_time(text, UTC)


def test_bad_zones_are_refused() -> None:
    with pytest.raises(TimeParameterError):
        parse_timezone("Europe/Atlantis")
    with pytest.raises(TimeParameterError):
        parse_timezone("../etc/passwd")
