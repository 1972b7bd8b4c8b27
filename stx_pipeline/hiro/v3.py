"""Listing one UTC day through `GET /extended/v3/transactions`, the cursor endpoint that replaces v1 after its sunset.

v3 pages newest first by `block_height:microblock_sequence:tx_index` and has no time filter, so the day is
first turned into a Stacks height range, from burn blocks (the day is defined on `burn_block_time`, and a
tenure's Stacks blocks can carry a `block_time` 30+ minutes after midnight):

1. `GET /extended/v2/burn-blocks?limit=1` -> the burn tip height (listing offsets count back from it).
2. `GET /extended/v2/blocks/by-block-time/{day_end - 1}` -> a block at or before midnight; its burn block
   is the day's last tenure or very close to it, so its listing offset is known. Without that route (a
   pre-v9 server answers 404) an interpolation search on the burn-block listing finds the offset instead.
3. `GET /extended/v2/burn-blocks?limit=30&offset=...` pages (5 for ~144 tenures a day, fetched together)
   -> every burn block of the day: its `total_tx_count` (the API's own count for the day, checked like
   v1's `total`) and its number of Stacks blocks.
4. `GET /extended/v2/burn-blocks/{last}/blocks?limit=1` -> the highest Stacks height of the day's last
   tenure; the lowest height of its first tenure follows from the Stacks block counts of step 3.

Then the height range is cut at tenure boundaries into segments of about equal transaction counts that
are paged concurrently, each from its own cursor down to its lowest height; rows are kept by height and
their `bitcoin_block.time` must lie inside the day.

Records come back as v1-shaped dicts, so `records.records_to_table` produces exactly the v1 columns.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from stx_pipeline.hiro.client import HiroClient, Logger
from stx_pipeline.hiro.errors import HiroApiError, IncompleteDayError, RecordError
from stx_pipeline.hiro.records import _int, _str, _ustx, _Where, records_to_table
from stx_pipeline.hiro.transactions import DayFetch, day_window

V3_PATH = "/extended/v3/transactions"
BURN_BLOCKS_PATH = "/extended/v2/burn-blocks"
BY_BLOCK_TIME_PATH = "/extended/v2/blocks/by-block-time/{ts}"
BURN_BLOCK_BLOCKS_PATH = "/extended/v2/burn-blocks/{height}/blocks"
V3_PAGE_LIMIT = 50  # the API answers 400 above 50
BURN_PAGE_LIMIT = 30  # the v2 block endpoints answer 400 above 30
# v1 reports this for every transaction outside a microblock, i.e. every transaction since Nakamoto; the
# v3 summary has no microblock field, so v3 rows store the same constant (see docs/API_STRATEGIES.md).
MICROBLOCK_SEQUENCE_NONE = 2_147_483_647
# Start the burn-block pages a few tenures newer than the anchor: the day's last tenure can lie just above
# it (a tenure opened seconds before midnight whose first Stacks block came after it).
ANCHOR_SLACK = 3
# Burn blocks in a day: ~144; pages are fetched together up to this many, then one by one if needed.
EXPECTED_BURN_BLOCKS = 146
BURN_BLOCK_SECONDS = 600  # first guess of the fallback search only; the search measures the real spacing
MAX_SEARCH_STEPS = 16
MIN_PAGES_PER_SEGMENT = 4  # a concurrent segment wastes at most one partial page: keep segments long enough
# Below this budget the pacer, not latency, sets the speed: concurrent segments would only add partial pages.
SEGMENTS_MIN_RPM = 120
# The burn tip is reused for this long within a run (the offsets it yields are corrected when stale).
TIP_REUSE_S = 600


@dataclass(frozen=True)
class BurnBlock:
    height: int
    time: int
    stacks_blocks: int  # number of Stacks blocks of the tenure
    tx_count: int  # total_tx_count


@dataclass(frozen=True)
class DayBlocks:
    """The day's tenures and Stacks height range; empty when no burn block of the chain lies in the day."""

    day: dt.date
    burn_blocks: list[BurnBlock]  # ascending height
    top_height: int  # highest Stacks height of the day's last tenure (0 when empty)
    requests: int  # calls spent finding all this

    @property
    def total(self) -> int:
        return sum(b.tx_count for b in self.burn_blocks)

    @property
    def bottom_height(self) -> int:
        return self.top_height - sum(b.stacks_blocks for b in self.burn_blocks) + 1


class _Calls:
    """Counts one day's API calls (pages are fetched from several threads)."""

    def __init__(self, client: HiroClient) -> None:
        self.client = client
        self.count = 0
        self._lock = threading.Lock()

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        with self._lock:
            self.count += 1
        payload = self.client.get_json(path, params)
        if not isinstance(payload, dict):
            raise IncompleteDayError(f"GET {path} answered {type(payload).__name__}, not an object", endpoint=path)
        return payload


def _shape_error(label: str, path: str, what: str) -> IncompleteDayError:
    return IncompleteDayError(
        f"partition {label}: GET {path} answered {what}; the API changed shape. Nothing of this day was written.",
        endpoint=path,
    )


def _burn_block(raw: Any, label: str) -> BurnBlock:
    fields = ("burn_block_height", "burn_block_time", "total_tx_count")
    if not isinstance(raw, dict) or not all(_is_int(raw.get(f)) for f in fields):
        raise _shape_error(label, BURN_BLOCKS_PATH, f"a burn block without integer {', '.join(fields)}")
    stacks_blocks = raw.get("stacks_blocks")
    if not isinstance(stacks_blocks, list):
        raise _shape_error(label, BURN_BLOCKS_PATH, "a burn block without a `stacks_blocks` list")
    return BurnBlock(raw["burn_block_height"], raw["burn_block_time"], len(stacks_blocks), raw["total_tx_count"])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _BurnListing:
    """`/extended/v2/burn-blocks` pages by offset (newest first), cached for one day's search."""

    def __init__(self, calls: _Calls, label: str) -> None:
        self.calls = calls
        self.label = label
        self.pages: dict[tuple[int, int], list[BurnBlock]] = {}
        self.total: int | None = None

    def page(self, offset: int, limit: int = BURN_PAGE_LIMIT) -> list[BurnBlock]:
        cached = self.pages.get((offset, limit))
        if cached is not None:
            return cached
        payload = self.calls.get(BURN_BLOCKS_PATH, {"limit": limit, "offset": offset})
        results, total = payload.get("results"), payload.get("total")
        if not isinstance(results, list) or not _is_int(total):
            raise _shape_error(self.label, BURN_BLOCKS_PATH, "without a `results` list or an integer `total`")
        blocks = [_burn_block(r, self.label) for r in results]
        if any(a.height <= b.height or a.time < b.time for a, b in itertools.pairwise(blocks)):
            raise _shape_error(self.label, BURN_BLOCKS_PATH, "burn blocks out of newest-first order")
        self.total = total
        self.pages[(offset, limit)] = blocks
        return blocks

    def prefetch(self, offsets: list[int], workers: int) -> None:
        missing = [o for o in offsets if (o, BURN_PAGE_LIMIT) not in self.pages]
        if len(missing) > 1 and workers > 1:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"burn-{self.label}") as pool:
                list(pool.map(self.page, missing))
        else:
            for offset in missing:
                self.page(offset)


class V3DayLister:
    """Lists days through v3. Keep one per run: it remembers whether the server has `by-block-time`."""

    def __init__(self, client: HiroClient, *, page_workers: int = 4, logger: Logger | None = None) -> None:
        self.client = client
        self.page_workers = max(1, page_workers)
        self.log: Logger = logger or client.log
        self.by_block_time_available = True
        self._tip: tuple[float, BurnBlock] | None = None  # (monotonic time, burn tip) reused across days

    # -- the day's heights ------------------------------------------------------------------------

    def day_blocks(self, day: dt.date, calls: _Calls | None = None) -> DayBlocks:
        """The burn blocks of the day and the Stacks height range they span."""
        calls = calls or _Calls(self.client)
        start, end = day_window(day)
        label = day.isoformat()
        listing = _BurnListing(calls, label)
        tip = self._burn_tip(listing, start)
        if tip is None:
            # No burn block yet on or after the day: the day has not started on this chain.
            return DayBlocks(day, [], 0, calls.count)
        guess = self._anchor_offset(tip, end, calls) if tip.time >= end else 0
        anchor_height = tip.height - guess if guess is not None else None
        if guess is None:
            guess = self._search_offset(listing, tip, end)
        offset = max(0, guess - ANCHOR_SLACK)
        count = math.ceil((ANCHOR_SLACK + EXPECTED_BURN_BLOCKS) / BURN_PAGE_LIMIT)
        listing.prefetch([offset + i * BURN_PAGE_LIMIT for i in range(count)], self.page_workers)
        # The first page must start after the day (or at the tip), else the day's newest tenures lie above it.
        # Gaps in burn heights (tenures without Stacks blocks) put the listing's offsets below `tip - height`,
        # so an estimate can even point past the listing's end: an empty page must move newer, never read as
        # "no burn blocks in the day" (which would pass the count check with 0 rows).
        while offset > 0:
            first = listing.page(offset)
            if first and first[0].time >= end:
                break
            step = offset - BURN_PAGE_LIMIT
            if not first and listing.total is not None:
                step = min(step, listing.total - BURN_PAGE_LIMIT)
            elif first and anchor_height is not None and tip.height > first[0].height:
                # Re-estimate with the gap density seen between the tip and this page: one step, not one per page.
                density = offset / (tip.height - first[0].height)
                step = min(step, int((tip.height - anchor_height) * density) - ANCHOR_SLACK)
            offset = max(0, step)
        found: list[BurnBlock] = []
        while True:
            blocks = listing.page(offset)
            found.extend(b for b in blocks if start <= b.time < end)
            if not blocks or blocks[-1].time < start or len(blocks) < BURN_PAGE_LIMIT:
                break  # passed the day's first tenure, or reached the chain's first burn block
            offset += BURN_PAGE_LIMIT
        found.sort(key=lambda b: b.height)
        if not found:
            return DayBlocks(day, [], 0, calls.count)
        if len({b.height for b in found}) != len(found):
            raise _shape_error(label, BURN_BLOCKS_PATH, "the same burn block twice (the listing moved while paging)")
        top = self._top_height(found[-1], calls, label)
        return DayBlocks(day, found, top, calls.count)

    def _burn_tip(self, listing: _BurnListing, start: int) -> BurnBlock | None:
        """The newest burn block, reused across days: a stale tip only shifts the first guess of an offset."""
        if self._tip is not None and time.monotonic() - self._tip[0] < TIP_REUSE_S and self._tip[1].time >= start:
            return self._tip[1]
        head = listing.page(0, limit=1)
        if not head:
            return None
        self._tip = (time.monotonic(), head[0])
        return head[0] if head[0].time >= start else None

    def _anchor_offset(self, tip: BurnBlock, end: int, calls: _Calls) -> int | None:
        """Listing offset of the burn block of the latest Stacks block at or before midnight; None: search."""
        if not self.by_block_time_available:
            return None
        path = BY_BLOCK_TIME_PATH.format(ts=end - 1)
        try:
            block = calls.get(path)
        except HiroApiError as exc:
            if exc.status != 404:
                raise
            if "route" in str(exc).lower():
                # A server before v9 lacks the route: stop asking for the rest of the run.
                self.by_block_time_available = False
                self.log.warning(
                    "the API has no /extended/v2/blocks/by-block-time route (pre-v9 server); "
                    "finding day boundaries by searching /extended/v2/burn-blocks instead"
                )
            return None  # "Block not found": nothing at or before midnight; the search settles it
        height = block.get("burn_block_height")
        if not _is_int(height):
            return None
        return max(0, tip.height - height)

    def _search_offset(self, listing: _BurnListing, tip: BurnBlock, end: int) -> int:
        """Offset of the newest burn block before `end`, by interpolation over the newest-first listing."""
        # Known (offset, time) points; times fall as offsets grow.
        newer = (0, tip.time)  # newest known point at or after end
        older: tuple[int, int] | None = None  # oldest-side bracket: a point before end
        for _ in range(MAX_SEARCH_STEPS):
            if older is None:
                guess = newer[0] + max(1, (newer[1] - end) // BURN_BLOCK_SECONDS)
            else:
                span = max(1, newer[1] - older[1])
                guess = newer[0] + (older[0] - newer[0]) * (newer[1] - end) // span
                guess = min(max(guess, newer[0] + 1), older[0])
            if listing.total is not None:
                guess = min(guess, max(0, listing.total - 1))
            offset = max(0, guess - ANCHOR_SLACK)
            blocks = listing.page(offset)
            if not blocks:
                return offset  # past the chain's first burn block: the day precedes the chain
            first, last = (offset, blocks[0].time), (offset + len(blocks) - 1, blocks[-1].time)
            if first[1] < end:
                if offset == 0:
                    return 0
                older = first if older is None or first[0] < older[0] else older
            elif last[1] >= end:
                if len(blocks) < BURN_PAGE_LIMIT:
                    return last[0]  # the whole chain is at or after the day's end
                newer = last
            else:
                return offset + next(i for i, b in enumerate(blocks) if b.time < end)
            if older is not None and older[0] <= newer[0] + 1:
                return older[0]
        raise HiroApiError(
            f"no burn block boundary found for {dt.datetime.fromtimestamp(end, dt.UTC).isoformat()} within "
            f"{MAX_SEARCH_STEPS} pages of {BURN_BLOCKS_PATH}; the listing is not in time order.",
            endpoint=BURN_BLOCKS_PATH,
        )

    def _top_height(self, last: BurnBlock, calls: _Calls, label: str) -> int:
        path = BURN_BLOCK_BLOCKS_PATH.format(height=last.height)
        payload = calls.get(path, {"limit": 1})
        results = payload.get("results")
        if not isinstance(results, list) or not results or not isinstance(results[0], dict):
            raise _shape_error(label, path, "no Stacks block for a burn block that lists some")
        height = results[0].get("height")
        if not _is_int(height):
            raise _shape_error(label, path, "a Stacks block without an integer `height`")
        return int(height)

    # -- the day's transactions -------------------------------------------------------------------

    def fetch_day(self, day: dt.date) -> DayFetch:
        """Every transaction of the day as v1-shaped records, checked against the burn blocks' tx counts."""
        started = time.monotonic()
        calls = _Calls(self.client)
        blocks = self.day_blocks(day, calls)
        boundary_requests = calls.count
        label = day.isoformat()
        rpm = self.client.requests_per_minute
        workers = self.page_workers if rpm <= 0 or rpm >= SEGMENTS_MIN_RPM else 1
        segments = _segments(blocks, workers)
        pages = [0] * len(segments)

        def walk(index: int) -> list[dict[str, Any]]:
            top, bottom = segments[index]
            rows, pages[index] = _walk(calls, label, top, bottom)
            return rows

        if len(segments) > 1:
            with ThreadPoolExecutor(max_workers=self.page_workers, thread_name_prefix=f"v3-{label}") as pool:
                parts = list(pool.map(walk, range(len(segments))))
        else:
            parts = [walk(i) for i in range(len(segments))]
        summaries = [row for part in parts for row in part]
        summaries.reverse()  # newest first -> v1's burn_block_time, block_height, tx_index order
        records = [_to_v1(row, offset, label) for offset, row in enumerate(summaries)]
        total = blocks.total
        if len(records) != total:
            raise IncompleteDayError(
                f"partition {label}: {len(records)} transactions listed through {V3_PATH} for heights "
                f"{blocks.bottom_height}-{blocks.top_height}, where the day's {len(blocks.burn_blocks)} burn blocks "
                f"count {total} (total_tx_count). Nothing was written; re-run the partition later.",
                endpoint=V3_PATH,
            )
        distinct = len({r["tx_id"] for r in records})
        if distinct != total:
            raise IncompleteDayError(
                f"partition {label}: {total} transactions listed but {distinct} distinct tx_ids: the cursor "
                "listing was not stable while paging. Nothing was written; re-run the partition later.",
                endpoint=V3_PATH,
            )
        return DayFetch(
            day=day,
            total=total,
            table=records_to_table(records, day, window=day_window(day)),
            pages=sum(pages),
            seconds=time.monotonic() - started,
            strategy="v3",
            requests=calls.count,
            boundary_requests=boundary_requests,
        )


def _segments(blocks: DayBlocks, workers: int) -> list[tuple[int, int]]:
    """(top, bottom) Stacks heights, newest first, cut at tenure boundaries into ~equal transaction counts."""
    if not blocks.burn_blocks:
        return []
    count = max(1, min(workers, blocks.total // (V3_PAGE_LIMIT * MIN_PAGES_PER_SEGMENT)))
    share = blocks.total / count
    out: list[tuple[int, int]] = []
    top = blocks.top_height
    height = top
    seen = 0.0
    for burn in reversed(blocks.burn_blocks):
        height -= burn.stacks_blocks
        seen += burn.tx_count
        if seen >= share * (len(out) + 1) and len(out) < count - 1:
            out.append((top, height + 1))
            top = height
    out.append((top, blocks.bottom_height))
    return out


def _walk(calls: _Calls, label: str, top: int, bottom: int) -> tuple[list[dict[str, Any]], int]:
    """Summaries of heights [bottom, top], newest first, and the number of pages it took."""
    # height:2147483647:2147483647 is at or above every row of block `top` whether the server compares the
    # cursor literally or reads a cursor matching no transaction as "the whole block".
    cursor: str | None = f"{top}:{MICROBLOCK_SEQUENCE_NONE}:{MICROBLOCK_SEQUENCE_NONE}"
    rows: list[dict[str, Any]] = []
    pages = 0
    while cursor is not None:
        payload = calls.get(V3_PATH, {"limit": V3_PAGE_LIMIT, "cursor": cursor})
        pages += 1
        results = payload.get("results")
        links = payload.get("cursor")
        if not isinstance(results, list) or not isinstance(links, dict):
            raise _shape_error(label, V3_PATH, f"at cursor {cursor} without a `results` list or a `cursor` object")
        next_cursor = links.get("next")
        for position, row in enumerate(results):
            height = _height(row, label, len(rows) + position)
            if height > top:
                raise IncompleteDayError(
                    f"partition {label}: GET {V3_PATH} at cursor {cursor} returned block height {height}, above "
                    f"the cursor: the API does not page as documented. Nothing was written.",
                    endpoint=V3_PATH,
                )
            if height < bottom:
                return rows, pages
            rows.append(row)
        if next_cursor is not None and not isinstance(next_cursor, str):
            raise _shape_error(label, V3_PATH, "a `cursor.next` that is not a string")
        if not results:
            break
        cursor = next_cursor
    return rows, pages


def _height(row: Any, label: str, offset: int) -> int:
    where = _Where(label, offset)
    if not isinstance(row, dict):
        raise where.fail("(record)", f"should be an object, got {type(row).__name__}")
    where.tx_id = row.get("tx_id") if isinstance(row.get("tx_id"), str) else None
    block = _object(row, "block", where, required=True)
    return int(_int(block, "height", _Dotted(where, "block"), required=True))  # type: ignore[arg-type]


class _Dotted(_Where):
    """Names nested fields as the API does (`block.height`) in RecordError messages."""

    def __init__(self, parent: _Where, prefix: str) -> None:
        super().__init__(parent.partition, parent.offset)
        self.tx_id = parent.tx_id
        self.prefix = prefix

    def fail(self, field: str, problem: str) -> RecordError:
        return super().fail(f"{self.prefix}.{field}", problem)


def _object(row: dict[str, Any], field: str, where: _Where, *, required: bool = False) -> dict[str, Any] | None:
    value = row.get(field)
    if value is None:
        if required:
            raise where.fail(field, "is missing")
        return None
    if not isinstance(value, dict):
        raise where.fail(field, f"should be an object, got {type(value).__name__}")
    return value


def _to_v1(row: dict[str, Any], offset: int, label: str) -> dict[str, Any]:
    """Validate one TransactionSummary and flatten it to the v1 fields that records_to_table reads."""
    where = _Where(label, offset)
    where.tx_id = _str(row, "tx_id", where, required=True)
    sender = _object(row, "sender", where, required=True)
    block = _object(row, "block", where, required=True)
    bitcoin = _object(row, "bitcoin_block", where, required=True)
    sponsor = _object(row, "sponsor", where)
    assert sender is not None and block is not None and bitcoin is not None  # required=True
    in_block, in_bitcoin = _Dotted(where, "block"), _Dotted(where, "bitcoin_block")
    burn_time = _int(bitcoin, "time", in_bitcoin, required=True)
    out: dict[str, Any] = {
        "tx_id": where.tx_id,
        "block_height": _int(block, "height", in_block, required=True),
        "block_hash": _str(block, "hash", in_block),
        "block_time": _int(block, "time", in_block),
        "burn_block_time": burn_time,
        "burn_block_height": _int(bitcoin, "height", in_bitcoin),
        "tx_index": _int(block, "tx_index", in_block),
        "microblock_sequence": MICROBLOCK_SEQUENCE_NONE,
        "tx_type": _str(row, "type", where),
        "tx_status": _str(row, "status", where),
        "sender_address": _str(sender, "address", _Dotted(where, "sender"), required=True),
        "nonce": _int(sender, "nonce", _Dotted(where, "sender")),
        "sponsored": sponsor is not None,
        "sponsor_address": _str(sponsor, "address", _Dotted(where, "sponsor"), required=True) if sponsor else None,
        "fee_rate": _ustx(row.get("fee_rate"), "fee_rate", where),
    }
    kind = out["tx_type"]
    if kind == "token_transfer":
        payload = _object(row, "token_transfer", where) or {}
        out["token_transfer"] = {
            "recipient_address": _str(payload, "recipient", _Dotted(where, "token_transfer")),
            "amount": _ustx(payload.get("amount"), "token_transfer.amount", where),
        }
    elif kind == "contract_call":
        payload = _object(row, "contract_call", where) or {}
        out["contract_call"] = {
            "contract_id": _str(payload, "contract_id", _Dotted(where, "contract_call")),
            "function_name": _str(payload, "function_name", _Dotted(where, "contract_call")),
        }
    elif kind == "smart_contract":
        payload = _object(row, "smart_contract", where) or {}
        out["smart_contract"] = {"contract_id": _str(payload, "contract_id", _Dotted(where, "smart_contract"))}
    return out
