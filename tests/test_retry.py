"""The retry decision (SPEC §7): success, transient failures, the schedule, jitter, Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from hookd.retry import Decision, decide, is_transient, parse_retry_after

SCHEDULE = (5.0, 30.0, 120.0)
NOW = 1_800_000_000.0


def half() -> float:
    """A rand() whose jitter factor is exactly 1."""
    return 0.5


def d(
    status: int | None,
    error: str | None = None,
    attempt: int = 1,
    schedule: tuple[float, ...] = SCHEDULE,
    jitter: float = 0.0,
    retry_on: str = "transient",
    retry_after: float | None = None,
) -> Decision:
    """decide() with test defaults and a neutral rand."""
    return decide(status, error, attempt, schedule, jitter, retry_on, retry_after, half)


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
@pytest.mark.parametrize("retry_on", ["transient", "any_failure"])
def test_2xx_succeeds(status: int, retry_on: str) -> None:
    """Any 2xx ends the delivery as succeeded."""
    assert d(status, retry_on=retry_on) == Decision("succeeded")


def test_success_on_last_attempt() -> None:
    """A 2xx after the schedule is used up is still a success."""
    assert d(200, attempt=len(SCHEDULE) + 1) == Decision("succeeded")


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 599])
def test_transient_statuses_retried(status: int) -> None:
    """408, 425, 429 and 5xx are retried after the schedule's delay."""
    assert d(status) == Decision("retry", 5.0)
    assert d(status, attempt=2) == Decision("retry", 30.0)
    assert d(status, attempt=3) == Decision("retry", 120.0)


@pytest.mark.parametrize("error", ["timeout", "connect", "dns", "tls", "proxy", "http"])
def test_connection_errors_retried(error: str) -> None:
    """Connection, TLS and proxy errors and timeouts (no status) are retried."""
    assert d(None, error) == Decision("retry", 5.0)


@pytest.mark.parametrize("retry_on", ["transient", "any_failure"])
def test_blocked_is_never_retried(retry_on: str) -> None:
    """The address guard's refusal ends the delivery at once, whatever retry_on says."""
    assert d(None, "blocked", retry_on=retry_on) == Decision("failed")
    assert not is_transient(None, "blocked")


@pytest.mark.parametrize("status", [300, 301, 302, 304, 400, 401, 403, 404, 410, 422, 499, 600])
def test_permanent_failures_fail_at_once_under_transient(status: int) -> None:
    """Other statuses (3xx included: redirects are failures) end the delivery as failed at once."""
    assert d(status) == Decision("failed")


@pytest.mark.parametrize("status", [301, 400, 401, 404, 422])
def test_any_failure_retries_everything(status: int) -> None:
    """Under retry_on = any_failure, 4xx and 3xx are retried too."""
    assert d(status, retry_on="any_failure") == Decision("retry", 5.0)
    assert d(status, retry_on="any_failure", attempt=2) == Decision("retry", 30.0)


def test_is_transient() -> None:
    """is_transient covers errors, 408, 425, 429 and 5xx only."""
    assert is_transient(None, "timeout")
    assert not is_transient(None, None)
    assert all(is_transient(s, None) for s in (408, 425, 429, 500, 599))
    assert not any(is_transient(s, None) for s in (200, 301, 400, 404, 409, 499, 600))


@pytest.mark.parametrize("retry_on", ["transient", "any_failure"])
def test_schedule_exhausted(retry_on: str) -> None:
    """After the last scheduled delay is used, the next failure is final."""
    assert d(500, attempt=len(SCHEDULE), retry_on=retry_on) == Decision("retry", 120.0)
    assert d(500, attempt=len(SCHEDULE) + 1, retry_on=retry_on) == Decision("failed")
    assert d(None, "timeout", attempt=len(SCHEDULE) + 1, retry_on=retry_on) == Decision("failed")


def test_empty_schedule_means_no_retries() -> None:
    """retry_schedule = [] fails the delivery on its first transient failure."""
    assert d(503, schedule=()) == Decision("failed")
    assert d(None, "connect", schedule=()) == Decision("failed")


def test_fractional_schedule() -> None:
    """Fractional delays are used as they are."""
    assert d(500, schedule=(0.2, 0.5)) == Decision("retry", 0.2)
    assert d(500, attempt=2, schedule=(0.2, 0.5)) == Decision("retry", 0.5)


@pytest.mark.parametrize(
    ("rand_value", "expected"),
    [(0.0, 24.0), (0.25, 27.0), (0.5, 30.0), (0.75, 33.0), (1.0, 36.0)],
)
def test_jitter_with_injected_rand(rand_value: float, expected: float) -> None:
    """The delay is multiplied by a factor in [1-jitter, 1+jitter] chosen by rand()."""
    got = decide(500, None, 2, SCHEDULE, 0.2, "transient", None, lambda: rand_value)
    assert got.state == "retry"
    assert got.delay == pytest.approx(expected)


def test_jitter_bounds_with_random() -> None:
    """With the real random source every delay stays within ±jitter and they differ."""
    rng = random.Random(7)
    delays = [decide(500, None, 3, SCHEDULE, 0.2, "transient", None, rng.random).delay for _ in range(2000)]
    assert all(96.0 <= x <= 144.0 for x in delays)
    assert min(delays) < 100.0
    assert max(delays) > 140.0


# -- Retry-After ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_honoured_when_longer(status: int) -> None:
    """On 429/503 a longer Retry-After replaces the scheduled delay."""
    assert d(status, retry_after=60.0) == Decision("retry", 60.0)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_ignored_when_shorter(status: int) -> None:
    """A Retry-After shorter than the scheduled delay does not shorten it."""
    assert d(status, retry_after=1.0) == Decision("retry", 5.0)
    assert d(status, attempt=2, retry_after=10.0) == Decision("retry", 30.0)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_capped_at_largest_delay(status: int) -> None:
    """A Retry-After beyond the schedule's largest delay is capped at it."""
    assert d(status, retry_after=100_000.0) == Decision("retry", 120.0)


@pytest.mark.parametrize("status", [408, 425, 500, 502, 504])
def test_retry_after_only_on_429_503(status: int) -> None:
    """Retry-After on any other status is ignored."""
    assert d(status, retry_after=60.0) == Decision("retry", 5.0)


def test_retry_after_overrides_jittered_delay_only_when_longer() -> None:
    """Retry-After is compared with the jittered delay, and itself is not jittered."""
    got = decide(429, None, 1, SCHEDULE, 0.5, "transient", 6.0, lambda: 1.0)  # jittered: 7.5
    assert got == Decision("retry", 7.5)
    got = decide(429, None, 1, SCHEDULE, 0.5, "transient", 6.0, lambda: 0.0)  # jittered: 2.5
    assert got == Decision("retry", 6.0)


def test_retry_after_does_not_extend_schedule() -> None:
    """Retry-After never grants an attempt beyond the schedule."""
    assert d(429, attempt=len(SCHEDULE) + 1, retry_after=10.0) == Decision("failed")


def _http_date(ts: float) -> str:
    return format_datetime(datetime.fromtimestamp(ts, UTC), usegmt=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 30 ", 30.0),
        (_http_date(NOW + 90), 90.0),
        (_http_date(NOW + 3600), 3600.0),
        (_http_date(NOW - 50), 0.0),
        ("Fri, 15 Jan 2027 08:01:00 +0000", 60.0),
    ],
)
def test_parse_retry_after(value: str, expected: float) -> None:
    """Retry-After as delta-seconds or an HTTP date becomes seconds from now (never negative)."""
    assert parse_retry_after(value, NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "soon", "-5", "1.5", "1e3", "0x10", "Mon, 99 Foo 2015 00:00:00 GMT",
     "Fri, 15 Jan 2027 08:01:00 -0000", "\u00b2", "\u00b9\u00b2"],
)  # fmt: skip
def test_parse_retry_after_bad_values(value: str | None) -> None:
    """Absent or malformed Retry-After values (naive dates and non-ASCII digits included) are None."""
    assert parse_retry_after(value, NOW) is None
