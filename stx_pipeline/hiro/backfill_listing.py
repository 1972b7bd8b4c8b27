"""One in-process backfill's listing, spanning its runs: the next run's first day is listed while this one ends.

`stx-pipeline backfill --in-process` runs a backfill's batches one after another in one process, the plan of all
days known. Run by run, the API would go idle at every run boundary — the run's last round trip, its last write,
its checks, Dagster closing it and opening the next — and each new run would start with a new client (its first
requests at the documented default pace until an answer names the real limit) and a new `DayFetcher` (its first
day's first page alone, no previous total to size it). Here the runs take their days from one `fetch_days`
listing over the whole plan, on one client and one pacer: while run k writes its last day and Dagster closes it,
run k+1's first day is already being listed (as any day listed ahead: at most LOOKAHEAD_ROWS rows until its run
asks for it).

What stays as before: every request waits for the one pacer; a day is whole or not at all (a listed day is a
complete `DayFetch` or its error, written by its own run in its own transaction); a failed day fails alone (its
error goes to the run that owns it); a run that stops early (quota, refused key, a failed write) gives up what was
listed ahead, and the next run starts a new listing; closing the backfill gives up the rest. Nothing listed for a
day no run takes is kept beyond the next run's start or the backfill's end.

The daemon's runs cannot share this: each is a new process, so the pacer and the listing ahead end with it.
No Dagster here: the asset asks `active()` whether its run belongs to such a backfill.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from stx_pipeline.hiro.client import HiroClient, Logger
from stx_pipeline.hiro.errors import HiroApiError
from stx_pipeline.hiro.strategy import DayFetcher, DayListing
from stx_pipeline.hiro.transactions import DayFetch

Listing = Iterator[tuple[dt.date, DayFetch | HiroApiError]]
# Days listed ahead of the one being written, across run boundaries too. Two were measured against one (floor
# benchmark, 200 ms, load 7-8: 1.029 vs 1.035 of the floor, time lost between requests 1.45 vs 0.96 s): no
# better, and each day listed ahead holds up to LOOKAHEAD_ROWS more rows.
LOOKAHEAD_DAYS = 1
_fallback_log = logging.getLogger("stx_pipeline.hiro")


class RunLog:
    """The shared client's logger: the current run's log while a run takes its days, else the module's logger
    (a retry of a day listed ahead between two runs belongs to no run yet)."""

    def __init__(self) -> None:
        self.target: Any = None

    def _to(self) -> Any:
        return self.target if self.target is not None else _fallback_log

    def info(self, msg: str) -> Any:
        return self._to().info(msg)

    def warning(self, msg: str) -> Any:
        return self._to().warning(msg)

    def error(self, msg: str) -> Any:
        return self._to().error(msg)


class BackfillListing:
    """The listing of `plan` (the backfill's days, in the order its runs take them) across its runs."""

    def __init__(self, plan: Sequence[dt.date]) -> None:
        self.plan = list(plan)
        self.log = RunLog()
        self.client: HiroClient | None = None
        self.fetcher: DayFetcher | None = None
        self._listing: DayListing | None = None
        self._next = 0  # index in `plan` of the day the open listing hands out next
        self._stats_seen: dict[str, int] = {}

    def index_of(self, days: Sequence[dt.date]) -> int | None:
        """Where `days` (a run's days) sit in the plan as one consecutive slice, or None: such a run is not this
        backfill's, and lists its days on its own."""
        if not days or days[0] not in self.plan:
            return None
        start = self.plan.index(days[0])
        return start if self.plan[start : start + len(days)] == list(days) else None

    def open(
        self,
        make_client: Callable[[Logger], HiroClient],
        make_fetcher: Callable[[HiroClient, Logger], DayFetcher],
    ) -> tuple[HiroClient, DayFetcher]:
        """The backfill's one client and fetcher, made by the first run (from its resources) and kept."""
        if self.client is None or self.fetcher is None:
            self.client = make_client(self.log)
            self.fetcher = make_fetcher(self.client, self.log)
        return self.client, self.fetcher

    def start(
        self,
        make_client: Callable[[Logger], HiroClient],
        make_fetcher: Callable[[HiroClient, Logger], DayFetcher],
    ) -> None:
        """List the plan from its first day now, while the first run is being set up (its run, its resources, its
        first events): the first run then finds its first day under way, as later runs do."""
        _, fetcher = self.open(make_client, make_fetcher)
        if self._listing is None and self.plan:
            self._listing = fetcher.fetch_days(self.plan, LOOKAHEAD_DAYS)
            self._next = 0

    @contextmanager
    def take(self, days: Sequence[dt.date], log: Logger) -> Iterator[Listing]:
        """The listings of one run's `days`, in order, from the shared listing (opened here when there is none or
        it is elsewhere in the plan). Leaving before the last day was handed out gives the listing up."""
        start = self.index_of(days)
        if start is None or self.fetcher is None:
            raise ValueError(f"days {days[0]}..{days[-1]} are not a slice of this backfill's plan")
        self.log.target = log
        if self._listing is not None and self._next != start:
            self._give_up()  # the run is not the one the listing ahead was for
        if self._listing is None:
            self._listing = self.fetcher.fetch_days(self.plan[start:], LOOKAHEAD_DAYS)
            self._next = start
        listing = self._listing
        handed = 0

        def run_days() -> Listing:
            nonlocal handed
            # Exactly this run's days: asking the shared listing for one more would wait for the next run's.
            for expected in days:
                day, outcome = next(listing)
                if day != expected:  # cannot happen while plan and runs agree; never write a day as another
                    raise RuntimeError(f"backfill listing out of step: got {day}, run wants {expected}")
                handed += 1
                self._next += 1
                yield day, outcome

        try:
            yield run_days()
        finally:
            self.log.target = None
            if handed < len(days):
                self._give_up()  # the run stopped early: nothing listed ahead outlives it

    def run_stats(self) -> dict[str, int]:
        """The client's counters since the previous run's: each request is counted in exactly one run (one
        listed ahead in the run that was going on when it was sent)."""
        assert self.client is not None
        now = self.client.stats.snapshot()
        delta = {k: v - self._stats_seen.get(k, 0) for k, v in now.items()}
        self._stats_seen = now
        return delta

    def _give_up(self) -> None:
        if self._listing is not None:
            listing, self._listing = self._listing, None
            listing.close()  # gives up the days listed ahead

    def close(self) -> None:
        self._give_up()
        if self.client is not None:
            self.client.close()


_active: BackfillListing | None = None


def active() -> BackfillListing | None:
    """The in-process backfill running in this process, if any."""
    return _active


@contextmanager
def backfill_listing(plan: Sequence[dt.date]) -> Iterator[BackfillListing]:
    """Make `plan`'s runs, executed in this process inside the block, share one listing; closed at the end."""
    global _active
    if _active is not None:
        raise RuntimeError("an in-process backfill is already running in this process")
    listing = BackfillListing(plan)
    _active = listing
    try:
        yield listing
    finally:
        _active = None
        listing.close()
