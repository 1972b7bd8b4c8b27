"""Listing one UTC day of transactions: the one place that pages the API.

Offset paging over `GET /extended/v1/tx` with `sort_by=burn_block_time&order=asc` is stable for a closed,
past window (the API orders by burn_block_time, block_height, microblock_sequence, tx_index). Paging by
"lowest time minus one" would drop rows, because a whole tenure shares one burn_block_time.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from stx_pipeline.days import day_window, inclusive_end
from stx_pipeline.hiro.client import HiroClient
from stx_pipeline.hiro.errors import FetchCancelledError, IncompleteDayError
from stx_pipeline.hiro.records import records_to_table

LIST_PATH = "/extended/v1/tx"
PAGE_LIMIT = 50  # the API answers 400 above 50
# Pages merged into one Arrow chunk as they arrive in order: a 100,000-transaction day then never holds its
# ~2,000 page tables and their concatenation at once (the peak of a multi-day run), and DuckDB scans a few dozen
# 3,200-row chunks, not thousands of 50-row ones.
MERGE_PAGES = 64


class _PageMerger:
    """A day's page tables, merged in offset order into chunks of MERGE_PAGES pages as they arrive (any order)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrived: dict[int, pa.Table] = {}
        self._next = 0  # offset of the next page in order
        self._run: list[pa.Table] = []
        self._chunks: list[pa.Table] = []

    def add(self, offset: int, table: pa.Table) -> None:
        with self._lock:
            self._arrived[offset] = table
            while self._next in self._arrived:
                self._run.append(self._arrived.pop(self._next))
                self._next += PAGE_LIMIT
                if len(self._run) >= MERGE_PAGES:
                    self._merge()

    def _merge(self) -> None:
        if self._run:
            self._chunks.append(pa.concat_tables(self._run).combine_chunks())
            self._run = []

    def table(self) -> pa.Table:
        """The day in offset order (every page added: the caller checked that none is missing)."""
        with self._lock:
            self._merge()
            chunks, self._chunks = self._chunks, []
        return pa.concat_tables(chunks)


@dataclass(frozen=True)
class DayFetch:
    day: dt.date
    total: int  # the API's own count for the day's window
    table: pa.Table  # the day's rows in the storage schema, in the API's listing order
    pages: int
    seconds: float
    strategy: str = "v1"  # which listing produced the day: v1 (offset, /extended/v1/tx) or v3 (cursor)
    requests: int = 0  # API calls the day cost, boundary search included
    boundary_requests: int = 0  # of which finding the day's block heights (v3 only)

    def _burn_time(self, index: int) -> int | None:
        if not len(self.table):
            return None
        return int(self.table.column("burn_block_time")[index].as_py().timestamp())

    @property
    def first_burn_block_time(self) -> int | None:
        return self._burn_time(0)

    @property
    def last_burn_block_time(self) -> int | None:
        return self._burn_time(-1)


def page_params(start: int, end: int, offset: int) -> dict[str, Any]:
    """The query of one page of the v1 listing of [start, end) (unix seconds), sorted as paging needs it."""
    return {
        "start_time": start,
        "end_time": inclusive_end(end),
        "sort_by": "burn_block_time",
        "order": "asc",
        "limit": PAGE_LIMIT,
        "offset": offset,
        "exclude_function_args": "true",
    }


def first_batch(size_hint: int | None, page_workers: int) -> int:
    """Pages to ask for before the day's `total` is known: what the hint (the previous day's total) surely
    holds, at most one per worker. Days vary by tens of percent, so only 3/4 of the hint is trusted: a page past
    the real end would cost a request of the budget for nothing (and is dropped, not stored)."""
    if not size_hint or size_hint <= 0:
        return 1
    return max(1, min(page_workers, (size_hint * 3 // 4) // PAGE_LIMIT))


def fetch_day(
    client: HiroClient,
    day: dt.date,
    *,
    page_workers: int = 4,
    size_hint: int | None = None,
    cancelled: Callable[[], bool] | None = None,
    pool: Executor | None = None,
    hold: Callable[[int], None] | None = None,
) -> DayFetch:
    """Every transaction of the day, checked against the API's `total`; raises if the pages disagree.

    `size_hint` (the previous day's total) lets the first pages go out together instead of the first alone: at a
    200 ms round trip a page fetched alone leaves two 0.1 s pacing slots unused. `cancelled` is polled before each
    request and during retry waits: a run that stops (quota, refused key) ends a day listed ahead at once.
    `pool` runs the page requests (shared by the days of a run, first come first served, so a day listed ahead
    takes the workers its predecessor no longer needs); without one the day has `page_workers` threads of its own.
    `hold(offset)` is called before each page is queued and may block (this thread, never a page worker): a day
    listed ahead waits there so that it holds only a bounded part of itself until its predecessor is written."""
    started = time.monotonic()
    start, end = day_window(day)
    label = day.isoformat()
    ingested_at = dt.datetime.now(dt.UTC)
    failed = threading.Event()  # one page failed: the day is lost, the other pages need not be fetched

    def stop() -> bool:
        return failed.is_set() or (cancelled is not None and cancelled())

    merger = _PageMerger()

    def get_page(offset: int) -> tuple[int, int]:
        try:
            payload = client.get_json(LIST_PATH, page_params(start, end, offset), cancelled=stop)
        except BaseException:
            failed.set()
            raise
        results = payload.get("results") if isinstance(payload, dict) else None
        total = payload.get("total") if isinstance(payload, dict) else None
        if not isinstance(results, list) or not isinstance(total, int) or isinstance(total, bool):
            failed.set()
            raise IncompleteDayError(
                f"partition {label}: GET {LIST_PATH} at offset {offset} answered without a `results` list "
                "or an integer `total`; the API changed shape. Nothing of this day was written.",
                endpoint=LIST_PATH,
            )
        # Each page becomes columns on arrival (holding a large day as Python dicts doubles a run's memory), merged
        # with its neighbours as soon as they are all in; the JSON goes with this frame.
        table = records_to_table(results, day, window=(start, end), ingested_at=ingested_at, offset_base=offset)
        merger.add(offset, table)
        return total, len(table)

    first = [i * PAGE_LIMIT for i in range(first_batch(size_hint, page_workers))]
    futures: dict[int, Future[tuple[int, int]]] = {}
    own_pool = pool is None
    if pool is None:
        pool = ThreadPoolExecutor(max_workers=max(1, page_workers), thread_name_prefix=f"page-{label}")
    try:
        futures.update((offset, pool.submit(get_page, offset)) for offset in first)
        # The first answer gives `total`; the rest of the day is then asked for behind the first batch.
        done, _ = wait(futures.values(), return_when=FIRST_COMPLETED)
        first_done = next(iter(done))
        if first_done.exception() is None:
            for offset in range(len(first) * PAGE_LIMIT, first_done.result()[0], PAGE_LIMIT):
                if hold is not None:
                    hold(offset)
                futures[offset] = pool.submit(get_page, offset)
    except BaseException:
        failed.set()
        raise
    finally:
        # Every page answered or given up (a failed page stops the others, `failed`, before they are sent).
        wait(futures.values())
        if own_pool:
            pool.shutdown(wait=True)
    errors = [f.exception() for f in futures.values() if f.exception() is not None]
    if errors:
        # The page that failed, not the ones it stopped.
        raise next((e for e in errors if not isinstance(e, FetchCancelledError)), errors[0])  # type: ignore[misc]
    answers = {offset: future.result() for offset, future in futures.items()}
    total = answers[0][0]
    totals = {offset: answer[0] for offset, answer in answers.items()}
    # A page of the first batch past the real end holds nothing and is no page of the day.
    pages = {offset: answer[1] for offset, answer in answers.items() if offset == 0 or offset < total}
    beyond = {offset: answer[1] for offset, answer in answers.items() if offset not in pages and answer[1]}

    changed = {o: t for o, t in totals.items() if t != total}
    if changed:
        offset, other = next(iter(sorted(changed.items())))
        raise IncompleteDayError(
            f"partition {label}: the API's total changed while paging ({total} at offset 0, {other} at "
            f"offset {offset}): the day is not final yet or the API is reorganising it. Nothing was "
            "written; re-run the partition later.",
            endpoint=LIST_PATH,
        )
    if beyond:
        offset, rows = next(iter(sorted(beyond.items())))
        raise IncompleteDayError(
            f"partition {label}: GET {LIST_PATH} at offset {offset} returned {rows} transactions past "
            f"total={total}. Nothing was written; re-run the partition later.",
            endpoint=LIST_PATH,
        )
    for offset in sorted(pages):
        expected = min(PAGE_LIMIT, total - offset)
        if pages[offset] != expected:
            raise IncompleteDayError(
                f"partition {label}: GET {LIST_PATH} at offset {offset} returned {pages[offset]} "
                f"transactions where total={total} promises {expected}. Nothing was written; re-run the "
                "partition later.",
                endpoint=LIST_PATH,
            )
    # Pages past the end hold no rows (checked above): the merged pages are exactly the day's.
    table = merger.table()
    distinct = pc.count_distinct(table.column("tx_id")).as_py()
    if distinct != total:
        raise IncompleteDayError(
            f"partition {label}: {total} transactions listed but {distinct} distinct tx_ids: the listing "
            "order was not stable while paging. Nothing was written; re-run the partition later.",
            endpoint=LIST_PATH,
        )
    return DayFetch(
        day=day,
        total=total,
        table=table,
        pages=len(pages),
        seconds=time.monotonic() - started,
        requests=len(answers),
    )
