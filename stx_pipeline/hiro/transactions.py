"""Listing one UTC day of transactions: the one place that pages the API.

Offset paging over `GET /extended/v1/tx` with `sort_by=burn_block_time&order=asc` is stable for a closed,
past window (the API orders by burn_block_time, block_height, microblock_sequence, tx_index). Paging by
"lowest time minus one" would drop rows, because a whole tenure shares one burn_block_time.
"""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from stx_pipeline.days import day_window, inclusive_end
from stx_pipeline.hiro.client import HiroClient
from stx_pipeline.hiro.errors import IncompleteDayError
from stx_pipeline.hiro.records import records_to_table

LIST_PATH = "/extended/v1/tx"
PAGE_LIMIT = 50  # the API answers 400 above 50


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


def fetch_day(client: HiroClient, day: dt.date, *, page_workers: int = 4) -> DayFetch:
    """Every transaction of the day, checked against the API's `total`; raises if the pages disagree."""
    started = time.monotonic()
    start, end = day_window(day)
    label = day.isoformat()

    ingested_at = dt.datetime.now(dt.UTC)

    def get_page(offset: int) -> tuple[int, pa.Table]:
        payload = client.get_json(LIST_PATH, page_params(start, end, offset))
        results = payload.get("results") if isinstance(payload, dict) else None
        total = payload.get("total") if isinstance(payload, dict) else None
        if not isinstance(results, list) or not isinstance(total, int) or isinstance(total, bool):
            raise IncompleteDayError(
                f"partition {label}: GET {LIST_PATH} at offset {offset} answered without a `results` list "
                "or an integer `total`; the API changed shape. Nothing of this day was written.",
                endpoint=LIST_PATH,
            )
        # Each page becomes columns on arrival: holding a large day as Python dicts doubles a run's memory.
        return total, records_to_table(results, day, window=(start, end), ingested_at=ingested_at, offset_base=offset)

    total, first = get_page(0)
    offsets = range(PAGE_LIMIT, total, PAGE_LIMIT)
    pages: dict[int, pa.Table] = {0: first}
    totals = {0: total}
    if offsets:
        with ThreadPoolExecutor(max_workers=max(1, page_workers), thread_name_prefix=f"page-{label}") as pool:
            for offset, (page_total, page) in zip(offsets, pool.map(get_page, offsets), strict=True):
                pages[offset] = page
                totals[offset] = page_total

    changed = {o: t for o, t in totals.items() if t != total}
    if changed:
        offset, other = next(iter(sorted(changed.items())))
        raise IncompleteDayError(
            f"partition {label}: the API's total changed while paging ({total} at offset 0, {other} at "
            f"offset {offset}): the day is not final yet or the API is reorganising it. Nothing was "
            "written; re-run the partition later.",
            endpoint=LIST_PATH,
        )
    for offset in sorted(pages):
        expected = min(PAGE_LIMIT, total - offset)
        if len(pages[offset]) != expected:
            raise IncompleteDayError(
                f"partition {label}: GET {LIST_PATH} at offset {offset} returned {len(pages[offset])} "
                f"transactions where total={total} promises {expected}. Nothing was written; re-run the "
                "partition later.",
                endpoint=LIST_PATH,
            )
    # One chunk: DuckDB scans thousands of 50-row chunks with a far higher peak than one table.
    table = pa.concat_tables([pages[o] for o in sorted(pages)]).combine_chunks()
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
        pages=1 + len(offsets),
        seconds=time.monotonic() - started,
        requests=1 + len(offsets),
    )
