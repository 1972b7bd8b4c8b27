"""Choosing the listing endpoint for a run: v1 offset paging, v3 cursor paging, or v1 until its sunset (auto).

Both strategies return the same `DayFetch` (v1-shaped records, the API's own count for the day), so the
asset stores identical rows whichever listed the day.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Literal, get_args

from stx_pipeline.hiro.client import HiroClient, Logger
from stx_pipeline.hiro.errors import EndpointGoneError, HiroApiError
from stx_pipeline.hiro.transactions import PAGE_LIMIT, DayFetch, fetch_day
from stx_pipeline.hiro.v3 import V3DayLister

Strategy = Literal["v1", "v3", "auto"]
# Rows of a day listed ahead fetched before the previous day is written (v1): 64 pages, ~6 s at 600/min.
LOOKAHEAD_ROWS = 64 * PAGE_LIMIT
STRATEGIES: tuple[str, ...] = get_args(Strategy)


def check_strategy(value: str) -> Strategy:
    if value not in STRATEGIES:
        raise ValueError(f"unknown API strategy {value!r}: use one of {', '.join(STRATEGIES)}")
    return value  # type: ignore[return-value]


class DayFetcher:
    """Fetches days for one run. Under `auto` the first 410 from v1 switches the rest of the run to v3."""

    def __init__(
        self,
        client: HiroClient,
        strategy: str = "auto",
        *,
        page_workers: int = 4,
        logger: Logger | None = None,
    ) -> None:
        self.client = client
        self.strategy = check_strategy(strategy)
        self.page_workers = page_workers
        self.log: Logger = logger or client.log
        self.active: Literal["v1", "v3"] = "v3" if self.strategy == "v3" else "v1"
        self.switched_to_v3 = False
        self._v3 = V3DayLister(client, page_workers=page_workers, logger=self.log)
        self._last_total: int | None = None  # the latest v1 day's total: sizes the next day's first requests
        self._switch_lock = threading.Lock()
        self._v3_lock = threading.Lock()

    @property
    def by_block_time_available(self) -> bool:
        return self._v3.by_block_time_available

    def fetch(
        self,
        day: dt.date,
        cancelled: Callable[[], bool] | None = None,
        pages: Executor | None = None,
        hold: Callable[[int], None] | None = None,
    ) -> DayFetch:
        if self.active == "v1":
            try:
                fetched = fetch_day(
                    self.client,
                    day,
                    page_workers=self.page_workers,
                    size_hint=self._last_total,
                    cancelled=cancelled,
                    pool=pages,
                    hold=hold,
                )
                self._last_total = fetched.total  # the next day's first pages go out together, sized by this
                return fetched
            except EndpointGoneError as exc:
                if self.strategy != "auto":
                    raise
                with self._switch_lock:  # a day listed ahead may meet the same 410: switch and warn once
                    if self.active == "v1":
                        # Remember the switch: a retired endpoint does not come back, and asking again costs a
                        # call a day.
                        self.active = "v3"
                        self.switched_to_v3 = True
                        self.log.warning(
                            f"partition {day}: the v1 listing is gone ({exc.endpoint} answered 410); switching "
                            "this run to the v3 cursor listing (/extended/v3/transactions). Set "
                            "STX_API_STRATEGY=v3 to skip v1."
                        )
        with self._v3_lock:  # the v3 lister keeps run state (chain tip, block density): one day at a time
            return self._v3.fetch_day(day)

    def fetch_days(self, days: Iterable[dt.date], lookahead: int = 1) -> DayListing:
        """Each day with its listing or the API error that lost it, in order, listing up to `lookahead` days
        ahead of the one the caller is handling (of a large day, its first LOOKAHEAD_ROWS rows). The listing
        starts at once, not at the first `next()`: a backfill can start it before its first run asks.

        At a round trip longer than the pacing interval a day listed alone leaves the budget unused while its last
        pages drain and while it is converted and written; the next day's pages fill those slots (every request
        still waits for the one shared pacer). Memory: the day handed out plus the first LOOKAHEAD_ROWS of the next.
        A day's error is that day's alone. Closing the listing (the caller stops the run, or fails writing)
        gives up the days listed ahead: their next request is not sent, their retry waits end, and it returns
        once their threads are done. Use it in `contextlib.closing(...)`.
        """
        return DayListing(self, days, lookahead)


class DayListing(Iterator[tuple[dt.date, DayFetch | HiroApiError]]):
    """The iterator `DayFetcher.fetch_days` returns (a class, not a generator: it lists from its creation, and
    `close()` gives up the days listed ahead even before the first `next()`)."""

    def __init__(self, fetcher: DayFetcher, days: Iterable[dt.date], lookahead: int) -> None:
        lookahead = max(0, lookahead)
        self._fetcher = fetcher
        self._given_up = threading.Event()
        self._pending: deque[tuple[dt.date, threading.Event, Future[DayFetch]]] = deque()
        self._remaining = iter(days)
        self._handed_one = False
        self._listers = ThreadPoolExecutor(max_workers=1 + lookahead, thread_name_prefix="day")
        # One page queue for the run, first come first served: day d's pages go before day d+1's, whose first
        # pages then take the workers d's last pages free. Enough workers to keep (1 + lookahead) days busy.
        self._pages = ThreadPoolExecutor(
            max_workers=max(1, fetcher.page_workers) * (1 + lookahead), thread_name_prefix="page"
        )
        for _ in range(1 + lookahead):
            self._list_next()

    def _list_next(self) -> None:
        day = next(self._remaining, None)
        if day is None or self._given_up.is_set():
            return
        turn = threading.Event()  # set when the caller asks for this day: its predecessor is written
        given_up = self._given_up

        def hold(offset: int) -> None:
            # A day listed ahead holds at most LOOKAHEAD_ROWS rows until its turn: enough to fill the
            # predecessor's drain and write, and a run at 100,000 tx/day stays within its memory target.
            while offset >= LOOKAHEAD_ROWS and not turn.wait(0.05) and not given_up.is_set():
                pass

        future = self._listers.submit(self._fetcher.fetch, day, given_up.is_set, self._pages, hold)
        self._pending.append((day, turn, future))

    def __next__(self) -> tuple[dt.date, DayFetch | HiroApiError]:
        if self._handed_one:
            self._list_next()  # only now: at most `lookahead` days are listed besides the one being written
        if not self._pending or self._given_up.is_set():
            self.close()
            raise StopIteration
        day, turn, future = self._pending.popleft()
        turn.set()
        try:
            outcome: DayFetch | HiroApiError = future.result()
        except HiroApiError as exc:
            outcome = exc
        except BaseException:
            self.close()
            raise
        self._handed_one = True
        return day, outcome

    def close(self) -> None:
        self._given_up.set()
        self._listers.shutdown(wait=True, cancel_futures=True)
        self._pages.shutdown(wait=True)
