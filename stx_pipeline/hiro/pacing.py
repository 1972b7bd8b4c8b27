"""Client-side pacing: spread requests evenly at the pace the server allows.

Pacing below the limit beats bouncing off it: a 429 costs a round trip and a wait, so the steady
interval keeps a backfill close to the floor set by the rate limit.

The pace is the lower of the operator's budget (STX_REQUESTS_PER_MINUTE) and the limit the server advertises in
its headers. Until the first answer says, the documented limit for keyless / keyed use stands in for it; an answer
that names no limit at all (the simulator, a self-hosted API) lifts it.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Mapping

# Window-named limits (docs.hiro.so, "Response headers"): requests per window of this many seconds.
_WINDOWED_HEADERS = {"x-ratelimit-limit-stacks-minute": 60.0, "x-ratelimit-limit-stacks-second": 1.0}
# IETF draft-ietf-httpapi-ratelimit-headers: `RateLimit-Limit: 50` (no window), `RateLimit-Limit: 50, 50;w=60`
# (drafts 00-02: the limit, then quota policies), `RateLimit-Policy: 50;w=60` (03-06) and
# `RateLimit-Policy: "default";q=50;w=60` (07+).
_DRAFT_HEADERS = ("ratelimit-limit", "ratelimit-policy")
_LIMIT_HEADERS = (*_WINDOWED_HEADERS, *_DRAFT_HEADERS)
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")


def _number(text: str) -> float | None:
    text = text.strip()
    return float(text) if _NUMBER.match(text) else None


def _draft_items(value: str) -> list[tuple[float, float | None]]:
    """(limit, window seconds or None) of each item of a draft header; unreadable items are skipped."""
    items = []
    for item in value.split(","):
        head, *params = item.split(";")
        named = dict(p.strip().split("=", 1) for p in params if "=" in p)
        limit = _number(head) if _number(head) is not None else _number(named.get("q", ""))
        window = _number(named.get("w", ""))
        if limit is not None and (window is None or window > 0):
            items.append((limit, window))
    return items


def advertised_limits(headers: Mapping[str, str]) -> list[tuple[float, float]]:
    """Every limit an answer advertises, as (requests, window seconds).

    A bare `ratelimit-limit` (no `w=`) has no window of its own: it counts per minute, Hiro's documented unit, and
    only when no header names its window — so a per-second ceiling sent bare is never read as a per-minute one.
    """
    limits: list[tuple[float, float]] = []
    for name, window in _WINDOWED_HEADERS.items():
        value = _number(headers.get(name) or "")
        if value is not None:
            limits.append((value, window))
    bare: list[float] = []
    for name in _DRAFT_HEADERS:
        for limit, window in _draft_items(headers.get(name) or ""):
            if window is not None:
                limits.append((limit, window))
            elif name == "ratelimit-limit":
                bare.append(limit)
    if not limits and bare:
        limits.append((bare[0], 60.0))
    return limits


def names_a_limit(headers: Mapping[str, str]) -> bool:
    return any(name in headers for name in _LIMIT_HEADERS)


def pace_under(limit: float, window_s: float) -> float:
    """Requests per minute to pace at under a server limit: one request per window below it.

    The server counts arrivals, the pacer spaces departures: network jitter can bring two requests closer than
    the interval, and a window would then count one more than was sent in it. One request of slack absorbs
    jitter up to a whole interval (1.2 s at 50/min, 0.12 s at 500/min) for 2 % / 0.2 % of the throughput.
    """
    return (limit - 1 if limit > 1 else limit) * 60.0 / window_s


class PaceBudget:
    """The pace in requests per minute (None: unpaced), from the configured budget and the server's headers."""

    def __init__(self, configured_rpm: float | None, default_limit_rpm: float) -> None:
        self.configured_rpm = configured_rpm if configured_rpm and configured_rpm > 0 else None
        self.default_limit_rpm = default_limit_rpm
        self._lock = threading.Lock()
        self.advertised: tuple[float, float] | None = None  # the server's tightest limit: (requests, window s)
        self._heard = False  # whether an answer has told us (a limit, or that there is none)
        self.rpm = self._pace()

    def _pace(self) -> float | None:
        if not self._heard:
            server: float | None = pace_under(self.default_limit_rpm, 60.0)
        else:
            server = pace_under(*self.advertised) if self.advertised else None
        candidates = [r for r in (server, self.configured_rpm) if r is not None]
        return min(candidates) if candidates else None

    def observe(self, headers: Mapping[str, str], status: int) -> bool:
        """Learn from one answer; True when the pace changed."""
        limits = advertised_limits(headers)
        with self._lock:
            if limits:
                self.advertised = min(limits, key=lambda lw: pace_under(*lw))
                self._heard = True
            elif status == 200 and not self._heard and not names_a_limit(headers):
                # A good answer without any limit header: the server has none. Only before any limit was seen,
                # so an error page from a proxy in front of the API never lifts a known limit.
                self._heard = True
            else:
                return False
            before, self.rpm = self.rpm, self._pace()
            return before != self.rpm


class RequestPacer:
    """Hands out request start times at least `60 / rpm` seconds apart, shared by all threads.

    Threads waiting for a start see a new pace at once: the run's first requests wait at the documented
    default until the first answer tells the real limit (or that there is none).
    """

    def __init__(self, requests_per_minute: float | None) -> None:
        self._cond = threading.Condition()
        self.interval_s = 0.0
        self._last_start = -math.inf  # time.monotonic() of the latest start handed out
        self._hold_until = 0.0  # no start before this (the server asked us to wait)
        self.set_rate(requests_per_minute)

    def set_rate(self, requests_per_minute: float | None) -> None:
        """Change the pace; the next start is spaced from the last one by the new interval."""
        with self._cond:
            self.interval_s = 60.0 / requests_per_minute if requests_per_minute else 0.0
            self._cond.notify_all()

    def wait(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                slot = max(self._last_start + self.interval_s, self._hold_until)
                if slot <= now:
                    # Woken a little late: keep the cadence (the slot), so wake-up delays do not add up; after
                    # idling longer than an interval the cadence restarts from now.
                    self._last_start = slot if now - slot < self.interval_s else now
                    return
                self._cond.wait(slot - now)

    def hold_for(self, seconds: float) -> None:
        """Push every later request back: the server asked us to wait (429, exhausted window)."""
        if seconds <= 0:
            return
        with self._cond:
            self._hold_until = max(self._hold_until, time.monotonic() + seconds)
