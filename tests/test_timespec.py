"""Times as operators write them (RFC 3339 or a duration back), and a recovery's body."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hookd.recover import Window, parse_window
from hookd.timespec import format_time, parse_duration, parse_since, parse_time

T = datetime(2026, 11, 29, 7, 0, tzinfo=UTC).timestamp()


def test_rfc3339_with_an_offset_is_unix_seconds() -> None:
    """Z, lower-case z, offsets, fractions of any length and a leap second are read as RFC 3339 means them."""
    assert parse_time("2026-11-29T07:00:00Z") == T
    assert parse_time("2026-11-29t07:00:00z") == T
    assert parse_time("2026-11-29T09:00:00+02:00") == T
    assert parse_time("2026-11-29T07:00:00.25Z") == T + 0.25
    assert parse_time("2026-11-29T07:00:00.123456789Z") == pytest.approx(T + 0.123456)
    assert parse_time("2026-11-29T06:59:60Z") == T - 1  # read as :59


@pytest.mark.parametrize("text", ["2026-11-29T07:00:00", "2026-11-29", "2026-13-01T00:00:00Z", "yesterday", ""])
def test_times_without_an_offset_or_invalid_are_refused(text: str) -> None:
    """No offset, no time, a month 13 or words: a ValueError that names the text."""
    with pytest.raises(ValueError, match="date-time"):
        parse_time(text)


def test_durations_count_back_from_now() -> None:
    """90s, 15m, 2h, 7d, 1w and fractions of them are that long before now; RFC 3339 is taken as it is."""
    assert parse_since("90s", T) == T - 90
    assert parse_since("15m", T) == T - 900
    assert parse_since("2h", T) == T - 7200
    assert parse_since("7d", T) == T - 7 * 86400
    assert parse_since("1w", T) == T - 7 * 86400
    assert parse_since("1.5h", T) == T - 5400
    assert parse_since("2026-11-29T06:00:00Z", T + 999) == T - 3600
    for bad in ("2", "-2h", "2 hours", "h", "2y"):
        with pytest.raises(ValueError, match="duration"):
            parse_since(bad, T)


def test_format_time_round_trips() -> None:
    """What the CLI sends is RFC 3339 that parse_time reads back to the same instant."""
    assert format_time(T + 0.5) == "2026-11-29T07:00:00.500000Z"
    assert parse_time(format_time(T - 12345.678)) == pytest.approx(T - 12345.678)


def test_a_recovery_body_is_read_into_a_window() -> None:
    """since alone, since with until, and a dry run."""
    assert parse_window({"since": "2026-11-29T07:00:00Z"}) == Window(T, None, False)
    assert parse_window({"since": "2026-11-29T07:00:00Z", "until": "2026-11-29T08:00:00Z", "dry_run": True}) == (
        Window(T, T + 3600, True)
    )
    assert parse_window({"since": "2026-11-29T07:00:00Z", "until": None}) == Window(T, None, False)


@pytest.mark.parametrize(
    ("doc", "paths"),
    [
        ({}, ["since"]),
        ([], [""]),
        ({"since": 5}, ["since"]),
        ({"since": "soon"}, ["since"]),
        ({"since": "2026-11-29T07:00:00Z", "until": "2026-11-29T07:00:00Z"}, ["until"]),
        ({"since": "2026-11-29T07:00:00Z", "until": "2026-11-29T06:00:00Z"}, ["until"]),
        ({"since": "2026-11-29T07:00:00Z", "dry_run": "yes"}, ["dry_run"]),
        ({"since": "2026-11-29T07:00:00Z", "sincee": 1}, ["sincee"]),
        ({"until": "x"}, ["until", "since"]),
    ],
)
def test_a_bad_recovery_body_names_each_problem(doc: object, paths: list[str]) -> None:
    """Each problem is one detail naming its key: missing, not a string, not RFC 3339, an empty window, unknown keys."""
    problems = parse_window(doc)
    assert isinstance(problems, list)
    assert sorted(p["path"] for p in problems) == sorted(paths)
    assert all(p["message"] for p in problems)


def test_rfc_3339_times_and_durations_back_from_now() -> None:
    """parse_time reads RFC 3339 with any offset, fraction digits and a leap second; parse_since also takes a
    duration back from now; anything else is a ValueError that says what is wrong."""
    assert parse_time("2026-11-29T07:00:00Z") == datetime(2026, 11, 29, 7, tzinfo=UTC).timestamp()
    assert parse_time("2026-11-29T08:30:00.250+01:30") == parse_time("2026-11-29t07:00:00.25z")
    assert parse_time("2026-11-29 07:00:00.123456789Z") == pytest.approx(
        parse_time("2026-11-29T07:00:00Z") + 0.123456789
    )
    assert parse_time("2026-12-31T23:59:60Z") == parse_time("2026-12-31T23:59:59Z")
    for bad, why in [
        ("2026-11-29T07:00:00", "UTC offset"), ("2026-11-29", "RFC 3339"), ("2026-02-30T00:00:00Z", "valid"),
        ("2026-11-29T07:00:00Z\n", "RFC 3339"), ("", "RFC 3339"), ("2026-11-29T25:00:00Z", "valid"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match=why):
            parse_time(bad)
    assert [parse_duration(t) for t in ("90s", "15m", "2h", "7d", "1w", "1.5h")] == [
        90, 900, 7200, 604800, 604800, 5400
    ]  # fmt: skip
    now = 1_800_000_000.0
    assert parse_since("90s", now) == now - 90
    assert parse_since(" 7d ", now) == now - 7 * 86400
    assert parse_since("2026-11-29T07:00:00Z", now) == parse_time("2026-11-29T07:00:00Z")
    for bad in ("2h30m", "-5s", "5", "h", "yesterday", "5 s"):
        with pytest.raises(ValueError, match="duration"):
            parse_since(bad, now)
    assert parse_time(format_time(now + 0.123456)) == pytest.approx(now + 0.123456, abs=1e-6)
