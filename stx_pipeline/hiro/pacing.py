"""Client-side pacing: spread requests evenly under a requests-per-minute budget.

Pacing below the limit beats bouncing off it: a 429 costs a round trip and a wait, so the steady
interval keeps a backfill close to the floor set by the rate limit.
"""

from __future__ import annotations

import threading
import time


class RequestPacer:
    """Hands out request start times at least `60 / rpm` seconds apart, shared by all threads."""

    def __init__(self, requests_per_minute: float | None) -> None:
        self.interval_s = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._lock = threading.Lock()
        self._next_slot = 0.0  # time.monotonic() of the next free start

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_slot)
            self._next_slot = start + self.interval_s
        delay = start - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def hold_for(self, seconds: float) -> None:
        """Push every later request back: the server asked us to wait (429, exhausted window)."""
        if seconds <= 0:
            return
        with self._lock:
            self._next_slot = max(self._next_slot, time.monotonic() + seconds)
