"""Per-minute sliding window and monthly quota, as Hiro's gateway enforces them."""

from __future__ import annotations

import calendar
import datetime as dt
import email.utils
import math
from collections import deque
from dataclasses import dataclass

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class WindowState:
    allowed: bool
    limit: int | None  # None: no limit configured, none advertised
    remaining: int | None
    reset: int  # unix time at which the oldest counted request leaves the window
    retry_after: int  # seconds until a slot frees (only meaningful when not allowed)


class SlidingWindow:
    """Counts accepted requests over the last 60 s (rejected ones do not count, or a client that
    keeps retrying would never get back in). Not thread-safe: the caller holds a lock."""

    def __init__(self, rpm_limit: int | None) -> None:
        self.rpm_limit = rpm_limit
        self._accepted: deque[float] = deque()

    def hit(self, now: float) -> WindowState:
        while self._accepted and self._accepted[0] <= now - WINDOW_SECONDS:
            self._accepted.popleft()
        limit = self.rpm_limit
        if limit is None:
            # Nothing to enforce and nothing to advertise: a self-hosted API has no gateway in front of it.
            return WindowState(True, None, None, 0, 0)
        oldest = self._accepted[0] if self._accepted else now
        reset = math.ceil(oldest + WINDOW_SECONDS)
        if len(self._accepted) >= limit:
            retry_after = max(1, math.ceil(oldest + WINDOW_SECONDS - now))
            return WindowState(False, limit, 0, reset, retry_after)
        self._accepted.append(now)
        return WindowState(True, limit, limit - len(self._accepted), reset, 0)


class MonthlyQuota:
    """Requests used in the current UTC calendar month. Not thread-safe: the caller holds a lock."""

    def __init__(self) -> None:
        self.month = ""
        self.used = 0

    def remaining(self, quota: int, now: float) -> int:
        month = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m")
        if month != self.month:
            self.month, self.used = month, 0
        return max(0, quota - self.used)

    def consume(self) -> None:
        self.used += 1


def seconds_to_next_month(now: float) -> int:
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    first = dt.date(today.year + today.month // 12, today.month % 12 + 1, 1)
    return max(1, calendar.timegm(first.timetuple()) - int(now))


def retry_after_value(mode: str, seconds: int, now: float) -> str | None:
    """The `retry-after` header for a mode: seconds, an HTTP-date, "0" (no hint), or no header."""
    if mode == "seconds":
        return str(seconds)
    if mode == "http-date":
        # Round up so the date is never earlier than the seconds we mean (HTTP-dates have 1 s resolution).
        return email.utils.formatdate(math.ceil(now) + seconds, usegmt=True)
    if mode == "zero":
        return "0"
    return None
