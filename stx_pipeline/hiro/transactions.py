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

from stx_pipeline.hiro.client import HiroClient
from stx_pipeline.hiro.errors import IncompleteDayError
from stx_pipeline.hiro.records import slim_record

LIST_PATH = "/extended/v1/tx"
PAGE_LIMIT = 50  # the API answers 400 above 50


def day_window(day: dt.date) -> tuple[int, int]:
    """[start, end) in unix seconds for a UTC day."""
    start = int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp())
    return start, start + 86_400


@dataclass(frozen=True)
class DayFetch:
    day: dt.date
    total: int  # the API's own count for the day's window
    records: list[dict[str, Any]]
    pages: int
    seconds: float
    strategy: str = "v1"  # which listing produced the day: v1 (offset, /extended/v1/tx) or v3 (cursor)
    requests: int = 0  # API calls the day cost, boundary search included
    boundary_requests: int = 0  # of which finding the day's block heights (v3 only)

    @property
    def first_burn_block_time(self) -> int | None:
        return self.records[0].get("burn_block_time") if self.records else None

    @property
    def last_burn_block_time(self) -> int | None:
        return self.records[-1].get("burn_block_time") if self.records else None


def _page_params(start: int, end: int, offset: int) -> dict[str, Any]:
    return {
        "start_time": start,
        "end_time": end - 1,  # the API's bounds are inclusive: [start, end - 1] == [start, end)
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

    def get_page(offset: int) -> tuple[int, list[dict[str, Any]]]:
        payload = client.get_json(LIST_PATH, _page_params(start, end, offset))
        results = payload.get("results") if isinstance(payload, dict) else None
        total = payload.get("total") if isinstance(payload, dict) else None
        if not isinstance(results, list) or not isinstance(total, int) or isinstance(total, bool):
            raise IncompleteDayError(
                f"partition {label}: GET {LIST_PATH} at offset {offset} answered without a `results` list "
                "or an integer `total`; the API changed shape. Nothing of this day was written.",
                endpoint=LIST_PATH,
            )
        # Keep only what is stored: a full v1 record is ~3x the size, and a large day is held whole.
        return total, [slim_record(r) for r in results]

    total, first = get_page(0)
    offsets = range(PAGE_LIMIT, total, PAGE_LIMIT)
    pages: dict[int, list[dict[str, Any]]] = {0: first}
    totals = {0: total}
    if offsets:
        with ThreadPoolExecutor(max_workers=max(1, page_workers), thread_name_prefix=f"page-{label}") as pool:
            for offset, (page_total, results) in zip(offsets, pool.map(get_page, offsets), strict=True):
                pages[offset] = results
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
    records: list[dict[str, Any]] = []
    for offset in sorted(pages):
        expected = min(PAGE_LIMIT, total - offset)
        if len(pages[offset]) != expected:
            raise IncompleteDayError(
                f"partition {label}: GET {LIST_PATH} at offset {offset} returned {len(pages[offset])} "
                f"transactions where total={total} promises {expected}. Nothing was written; re-run the "
                "partition later.",
                endpoint=LIST_PATH,
            )
        records.extend(pages[offset])
    distinct = len({r.get("tx_id") for r in records if isinstance(r, dict)})
    if distinct != total:
        raise IncompleteDayError(
            f"partition {label}: {total} transactions listed but {distinct} distinct tx_ids: the listing "
            "order was not stable while paging. Nothing was written; re-run the partition later.",
            endpoint=LIST_PATH,
        )
    return DayFetch(
        day=day,
        total=total,
        records=records,
        pages=1 + len(offsets),
        seconds=time.monotonic() - started,
        requests=1 + len(offsets),
    )
