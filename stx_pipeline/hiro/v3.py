"""Listing one UTC day through `GET /extended/v3/transactions`, the cursor endpoint that replaces v1 after its sunset.

v3 pages newest first by `block_height:microblock_sequence:tx_index` and has no time filter, so the day is
first turned into Stacks height ranges, from burn blocks. A day is every transaction whose `burn_block_time`
(the Bitcoin header time of its tenure) lies in the day, as v1 filters it. Bitcoin header times do not increase
with height (median-time-past), so the day's burn blocks are decided one by one by their own time and need not
be one contiguous range of heights:

1. `GET /extended/v2/burn-blocks?limit=1` -> the burn tip (reused for 10 minutes within a run).
2. `GET /extended/v2/blocks/by-block-time/{day_end - 1}` -> the burn height of a block near midnight: the first
   guess of the listing offset where the day ends (the listing skips burn heights without Stacks blocks, so
   offsets lie below `tip - height`; each probe measures that density and corrects the guess). Without the
   route (a pre-v9 server) the guess comes from the time since the tip. A bounded search (bisection when
   interpolation does not narrow the bracket) needs no `total`: that of `/extended/v2/burn-blocks` is the
   Stacks tip height (pg-store-v2.ts), not a count of burn blocks.
3. `GET /extended/v2/burn-blocks?limit=30&offset=...` pages, overlapping by one block so a page the listing
   shifted under is noticed, from GUARD burn blocks after the day down to GUARD consecutive blocks before it.
   Every burn block whose `burn_block_time` is in the day is a member; `total_tx_count` summed over the members
   is the API's own count for the day.
4. `GET /extended/v2/burn-blocks/{newest member}/blocks?limit=1` -> its highest Stacks height; every scanned
   burn block's Stacks heights follow from the `stacks_blocks` counts (Stacks heights are contiguous).

Then each run of consecutive member burn blocks (a contiguous Stacks height range) is paged from its own cursor
`top:2147483647:32767` (inside the columns' types: `microblock_sequence` integer, `tx_index` smallint; the
server compares it as a row with `<=`) down to its lowest height, cut into segments paged concurrently when the
budget allows. Rows of burn blocks that belong to other days (an inversion at midnight) are never fetched.

Records come back as v1-shaped dicts, so `records.records_to_table` produces the v1 columns; v3 summaries have
no `microblock_sequence`, which is stored as NULL.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from stx_pipeline.days import day_window, inclusive_end
from stx_pipeline.hiro.client import HiroClient, Logger
from stx_pipeline.hiro.errors import HiroApiError, IncompleteDayError
from stx_pipeline.hiro.fields import Where, int_field, is_int, object_field, str_field, ustx_amount
from stx_pipeline.hiro.records import records_to_table
from stx_pipeline.hiro.transactions import DayFetch

V3_PATH = "/extended/v3/transactions"
BURN_BLOCKS_PATH = "/extended/v2/burn-blocks"
BY_BLOCK_TIME_PATH = "/extended/v2/blocks/by-block-time/{ts}"
BURN_BLOCK_BLOCKS_PATH = "/extended/v2/burn-blocks/{height}/blocks"
V3_PAGE_LIMIT = 50  # the API answers 400 above 50
BURN_PAGE_LIMIT = 30  # the v2 block endpoints answer 400 above 30
BURN_PAGE_STRIDE = BURN_PAGE_LIMIT - 1  # consecutive pages share one block: a shifted listing is noticed
# The cursor's three numbers are bound as parameters typed by the txs columns (migrations/1600000000001_txs.ts):
# block_height and microblock_sequence `integer`, tx_index `smallint`. Anything larger is a database error (500).
I32_MAX = 2_147_483_647
SMALLINT_MAX = 32_767
CURSOR_LIMITS = (I32_MAX, I32_MAX, SMALLINT_MAX)
_CURSOR = re.compile(r"^([0-9]+):([0-9]+):([0-9]+)$")  # the schema's pattern (src/api/schemas/v3/cursors.ts)
# Burn blocks on each side of the day that must all lie outside it before the scan stops there: Bitcoin's
# median-time-past spans 11 blocks, and a header may run up to 2 hours ahead (~12 blocks).
GUARD = 12
# Burn blocks in a day: ~144 (Bitcoin's retargeting keeps it near); pages are fetched together up to this many.
EXPECTED_BURN_BLOCKS = 146
MAX_SCAN_PAGES = 24  # ~700 burn blocks: far more than any day has; beyond it the listing is not what we think
BURN_BLOCK_SECONDS = 600  # first guess of the search only; each probe measures the real spacing
MAX_SEARCH_STEPS = 40  # bisection over any listing size converges well inside this
MIN_PAGES_PER_SEGMENT = 4  # a concurrent segment wastes at most one partial page: keep segments long enough
# Below this budget the pacer, not latency, sets the speed: concurrent segments would only add partial pages.
SEGMENTS_MIN_RPM = 120
# The burn tip is reused for this long within a run (a stale tip only moves the first guess of an offset).
TIP_REUSE_S = 600


@dataclass(frozen=True)
class BurnBlock:
    height: int
    time: int
    stacks_blocks: int  # number of Stacks blocks of the burn block
    tx_count: int  # total_tx_count


@dataclass(frozen=True)
class Run:
    """Consecutive member burn blocks: one contiguous Stacks height range [bottom, top]."""

    top: int
    bottom: int
    burn_blocks: tuple[BurnBlock, ...]  # newest first

    @property
    def tx_count(self) -> int:
        return sum(b.tx_count for b in self.burn_blocks)


@dataclass(frozen=True)
class DayBlocks:
    """The day's burn blocks (by their own burn_block_time) and the Stacks height runs they span."""

    day: dt.date
    burn_blocks: list[BurnBlock]  # ascending height
    runs: list[Run] = field(default_factory=list)  # newest first
    requests: int = 0  # calls spent finding all this

    @property
    def total(self) -> int:
        return sum(b.tx_count for b in self.burn_blocks)

    @property
    def top_height(self) -> int:
        return self.runs[0].top if self.runs else 0

    @property
    def bottom_height(self) -> int:
        return self.runs[-1].bottom if self.runs else 0


class _Calls:
    """Counts one day's API calls (pages are fetched from several threads)."""

    def __init__(self, client: HiroClient) -> None:
        self.client = client
        self.count = 0
        self._lock = threading.Lock()

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        if path == V3_PATH and params and "cursor" in params:
            check_cursor(str(params["cursor"]))
        with self._lock:
            self.count += 1
        payload = self.client.get_json(path, params)
        if not isinstance(payload, dict):
            raise IncompleteDayError(f"GET {path} answered {type(payload).__name__}, not an object", endpoint=path)
        return payload


def top_of_block(height: int) -> str:
    """The cursor at or above every transaction of block `height`, inside the columns' types."""
    return f"{height}:{I32_MAX}:{SMALLINT_MAX}"


def check_cursor(cursor: str) -> None:
    """Refuse to send a cursor the real server rejects: 400 off the pattern, 500 outside the column types."""
    match = _CURSOR.match(cursor)
    if not match or any(int(n) > limit for n, limit in zip(match.groups(), CURSOR_LIMITS, strict=True)):
        raise IncompleteDayError(
            f"refusing to send the v3 cursor {cursor!r}: the server needs height:microblock_sequence:tx_index "
            f"within integer, integer, smallint (tx_index <= {SMALLINT_MAX}). Nothing was written.",
            endpoint=V3_PATH,
        )


def _shape_error(label: str, path: str, what: str) -> IncompleteDayError:
    return IncompleteDayError(
        f"partition {label}: GET {path} answered {what}; the API changed shape. Nothing of this day was written.",
        endpoint=path,
    )


def _burn_block(raw: Any, label: str) -> BurnBlock:
    fields = ("burn_block_height", "burn_block_time", "total_tx_count")
    if not isinstance(raw, dict) or not all(is_int(raw.get(f)) for f in fields):
        raise _shape_error(label, BURN_BLOCKS_PATH, f"a burn block without integer {', '.join(fields)}")
    stacks_blocks = raw.get("stacks_blocks")
    if not isinstance(stacks_blocks, list):
        raise _shape_error(label, BURN_BLOCKS_PATH, "a burn block without a `stacks_blocks` list")
    return BurnBlock(raw["burn_block_height"], raw["burn_block_time"], len(stacks_blocks), raw["total_tx_count"])


class _BurnListing:
    """`/extended/v2/burn-blocks` pages by offset (newest burn height first), cached for one day's search."""

    def __init__(self, calls: _Calls, label: str) -> None:
        self.calls = calls
        self.label = label
        self.pages: dict[tuple[int, int], list[BurnBlock]] = {}
        self._lock = threading.Lock()

    def page(self, offset: int, limit: int = BURN_PAGE_LIMIT, *, fresh: bool = False) -> list[BurnBlock]:
        with self._lock:
            cached = None if fresh else self.pages.get((offset, limit))
        if cached is not None:
            return cached
        payload = self.calls.get(BURN_BLOCKS_PATH, {"limit": limit, "offset": offset})
        results = payload.get("results")
        if not isinstance(results, list):
            raise _shape_error(self.label, BURN_BLOCKS_PATH, "without a `results` list")
        blocks = [_burn_block(r, self.label) for r in results]
        # Ordered by burn height; times may go either way (Bitcoin header times are not monotonic).
        if any(a.height <= b.height for a, b in itertools.pairwise(blocks)):
            raise _shape_error(self.label, BURN_BLOCKS_PATH, "burn blocks out of newest-first height order")
        with self._lock:
            self.pages[(offset, limit)] = blocks
        return blocks

    def prefetch(self, offsets: list[int], workers: int) -> None:
        with self._lock:
            missing = [o for o in offsets if (o, BURN_PAGE_LIMIT) not in self.pages]
        if len(missing) > 1 and workers > 1:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"burn-{self.label}") as pool:
                list(pool.map(self.page, missing))
        else:
            for offset in missing:
                self.page(offset)


@dataclass
class _Point:
    """What one probe of the listing showed: an offset, and the burn block there."""

    offset: int
    height: int | None  # None: past the listing's end
    time: int | None


class V3DayLister:
    """Lists days through v3. Keep one per run: it remembers whether the server has `by-block-time`."""

    def __init__(self, client: HiroClient, *, page_workers: int = 4, logger: Logger | None = None) -> None:
        self.client = client
        self.page_workers = max(1, page_workers)
        self.log: Logger = logger or client.log
        self.by_block_time_available = True
        self._tip: tuple[float, BurnBlock] | None = None  # (monotonic time, burn tip) reused across days
        # Listed burn blocks per Bitcoin height, as measured by the last search (gaps make it < 1).
        self._density = 1.0

    # -- the day's burn blocks --------------------------------------------------------------------

    def day_blocks(self, day: dt.date, calls: _Calls | None = None) -> DayBlocks:
        """The burn blocks whose burn_block_time lies in the day, and the Stacks height runs they span."""
        calls = calls or _Calls(self.client)
        start, end = day_window(day)
        label = day.isoformat()
        listing = _BurnListing(calls, label)
        tip = self._burn_tip(listing)
        if tip is None:
            return DayBlocks(day, [], [], calls.count)  # an empty chain
        crossing = self._locate(listing, tip, end, self._anchor_height(end, calls))
        scanned = self._scan(listing, max(0, crossing - GUARD - 1), start, end)
        members = [b for b in scanned if start <= b.time < end]
        if not members:
            return DayBlocks(day, [], [], calls.count)
        top = self._top_height(members[0], calls, label)
        runs: list[Run] = []
        current: list[BurnBlock] = []
        height = top  # the top Stacks height of the block being looked at, walking down the listing
        run_top = top
        for block in scanned[scanned.index(members[0]) :]:
            member = start <= block.time < end
            if member:
                if not current:
                    run_top = height
                current.append(block)
            elif current:
                runs.append(Run(run_top, height + 1, tuple(current)))
                current = []
            height -= block.stacks_blocks
            if block is members[-1]:
                break
        if current:
            runs.append(Run(run_top, height + 1, tuple(current)))
        return DayBlocks(day, sorted(members, key=lambda b: b.height), runs, calls.count)

    def _burn_tip(self, listing: _BurnListing) -> BurnBlock | None:
        """The newest burn block, reused across days: a stale tip only moves the first guess of an offset."""
        if self._tip is not None and time.monotonic() - self._tip[0] < TIP_REUSE_S:
            return self._tip[1]
        head = listing.page(0, limit=1)
        if not head:
            return None
        self._tip = (time.monotonic(), head[0])
        return head[0]

    def _anchor_height(self, end: int, calls: _Calls) -> int | None:
        """Burn height of the latest Stacks block at or before midnight (a hint only); None: none or no route."""
        if not self.by_block_time_available:
            return None
        path = BY_BLOCK_TIME_PATH.format(ts=inclusive_end(end))
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
            return None  # "No block found at or before the given timestamp": the search settles it
        height = block.get("burn_block_height")
        return height if is_int(height) else None

    def _locate(self, listing: _BurnListing, tip: BurnBlock, end: int, anchor: int | None) -> int:
        """A listing offset where times cross `end` (the day's newest burn blocks lie at or just below it).

        Probes pages: interpolating on burn heights toward `anchor` when known, else on times, and bisecting
        whenever that does not narrow the bracket. Times are not monotonic, so the result is approximate by a
        few blocks; the guarded scan that follows makes the day exact.
        """
        if tip.time < end:
            return 0
        newer = _Point(0, tip.height, tip.time)  # newest-side bracket: at or after end
        older: _Point | None = None  # oldest-side bracket: before end, or past the listing's end
        for _ in range(MAX_SEARCH_STEPS):
            guess = self._guess(newer, older, end, anchor, self._density)
            page = listing.page(guess)
            if page and tip.height > page[0].height and guess > 0:
                self._density = min(1.0, guess / (tip.height - page[0].height))
            if not page:
                older = _Point(guess, None, None)
            else:
                below = next((i for i, b in enumerate(page) if b.time < end), None)
                if below is None:
                    if len(page) < BURN_PAGE_LIMIT:
                        return guess + len(page)  # the listing ends before the day does
                    newer = _Point(guess + len(page) - 1, page[-1].height, page[-1].time)
                elif below == 0:
                    older = _Point(guess, page[0].height, page[0].time)
                else:
                    return guess + below
            if older is not None and older.offset <= newer.offset + 1:
                return older.offset
        raise HiroApiError(
            f"no burn block near {dt.datetime.fromtimestamp(end, dt.UTC).isoformat()} found within "
            f"{MAX_SEARCH_STEPS} pages of {BURN_BLOCKS_PATH}; the listing is not ordered as documented.",
            endpoint=BURN_BLOCKS_PATH,
        )

    @staticmethod
    def _guess(newer: _Point, older: _Point | None, end: int, anchor: int | None, density: float) -> int:
        """Next offset to probe, strictly inside the bracket."""
        low = newer.offset + 1
        high = older.offset - 1 if older is not None else None
        assert newer.height is not None and newer.time is not None
        estimate: float | None = None
        if older is not None and older.height is not None and older.time is not None:
            span = older.offset - newer.offset
            if anchor is not None and newer.height > older.height:
                estimate = newer.offset + span * (newer.height - anchor) / (newer.height - older.height)
            elif newer.time > older.time:
                estimate = newer.offset + span * (newer.time - end) / (newer.time - older.time)
        elif older is None:
            # Extrapolate from the tip side: one listed block per Bitcoin height (or per 10 minutes), scaled by
            # the density of listed blocks measured so far (gaps in burn heights make offsets smaller).
            blocks = (newer.height - anchor) if anchor is not None else (newer.time - end) / BURN_BLOCK_SECONDS
            estimate = newer.offset + max(1.0, blocks * density)
        if estimate is None or not low <= estimate <= (high if high is not None else estimate):
            if high is None:
                return max(low, 2 * newer.offset + 1)  # no bracket yet and no usable estimate: double
            return (low + high) // 2
        # Aim GUARD + 1 blocks newer than the estimate: the probe page is then the scan's first page.
        return int(min(max(low, estimate - GUARD - 1), high if high is not None else estimate))

    def _scan(self, listing: _BurnListing, offset: int, start: int, end: int) -> list[BurnBlock]:
        """Burn blocks from `offset` down, newest first, from GUARD blocks after the day to GUARD before it."""
        for _ in range(MAX_SCAN_PAGES):
            count = (EXPECTED_BURN_BLOCKS + 2 * GUARD) // BURN_PAGE_STRIDE + 1
            listing.prefetch([offset + i * BURN_PAGE_STRIDE for i in range(count)], self.page_workers)
            scanned = self._scan_from(listing, offset, start)
            head = scanned[:GUARD]
            if offset == 0 or (len(head) == GUARD and all(b.time >= end for b in head)):
                return scanned
            # A block of the day (or not enough blocks) within the guard above it: start further up.
            offset = max(0, offset - 2 * GUARD)
        raise HiroApiError(
            f"the burn-block listing never showed {GUARD} blocks after the day above it within {MAX_SCAN_PAGES} "
            "tries; it is not ordered as documented.",
            endpoint=BURN_BLOCKS_PATH,
        )

    def _scan_from(self, listing: _BurnListing, offset: int, start: int) -> list[BurnBlock]:
        scanned: list[BurnBlock] = []
        before = 0  # consecutive blocks, at the end of `scanned`, dated before the day
        for _ in range(MAX_SCAN_PAGES):
            page = listing.page(offset)
            for attempt in range(3):
                if not scanned or not page or page[0].height >= scanned[-1].height:
                    break
                # The listing moved between the two pages (a new burn block on top): read this one again.
                page = listing.page(offset, fresh=True)
                if attempt == 2:
                    raise IncompleteDayError(
                        f"the burn-block listing kept moving while paging at offset {offset}; re-run the partition.",
                        endpoint=BURN_BLOCKS_PATH,
                    )
            for block in page:
                if scanned and block.height >= scanned[-1].height:
                    continue  # the page's shared first block (or more, if the listing grew meanwhile)
                scanned.append(block)
                before = before + 1 if block.time < start else 0
                if before >= GUARD:
                    return scanned
            if len(page) < BURN_PAGE_LIMIT:
                return scanned  # the chain's first burn block
            offset += BURN_PAGE_STRIDE
        raise HiroApiError(
            f"more than {MAX_SCAN_PAGES} pages of {BURN_BLOCKS_PATH} without {GUARD} burn blocks before the day; "
            "the listing is not ordered as documented.",
            endpoint=BURN_BLOCKS_PATH,
        )

    def _top_height(self, newest: BurnBlock, calls: _Calls, label: str) -> int:
        path = BURN_BLOCK_BLOCKS_PATH.format(height=newest.height)
        payload = calls.get(path, {"limit": 1})
        results = payload.get("results")
        if not isinstance(results, list) or not results or not isinstance(results[0], dict):
            raise _shape_error(label, path, "no Stacks block for a burn block that lists some")
        height = results[0].get("height")
        if not is_int(height):
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
            top, bottom, burn_heights = segments[index]
            rows, pages[index] = _walk(calls, label, top, bottom, burn_heights)
            return rows

        if len(segments) > 1 and workers > 1:
            with ThreadPoolExecutor(max_workers=self.page_workers, thread_name_prefix=f"v3-{label}") as pool:
                parts = list(pool.map(walk, range(len(segments))))
        else:
            parts = [walk(i) for i in range(len(segments))]
        summaries = [row for part in parts for row in part]
        records = [_to_v1(row, offset, label) for offset, row in enumerate(summaries)]
        # v1's order: burn_block_time, block_height, microblock_sequence (none here), tx_index.
        records.sort(key=lambda r: (r["burn_block_time"], r["block_height"], r["tx_index"] or 0))
        total = blocks.total
        if len(records) != total:
            raise IncompleteDayError(
                f"partition {label}: {len(records)} transactions listed through {V3_PATH} for the "
                f"{len(blocks.runs)} Stacks height range(s) {blocks.bottom_height}-{blocks.top_height} of the day, "
                f"where its {len(blocks.burn_blocks)} burn blocks count {total} (total_tx_count). Nothing was "
                "written; re-run the partition later.",
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


def _segments(blocks: DayBlocks, workers: int) -> list[tuple[int, int, frozenset[int]]]:
    """(top, bottom, burn heights) per walk, newest first: each run of the day, cut at burn-block boundaries
    into ~equal transaction counts when several workers page concurrently."""
    count = max(1, min(workers, blocks.total // (V3_PAGE_LIMIT * MIN_PAGES_PER_SEGMENT)))
    share = blocks.total / count
    out: list[tuple[int, int, frozenset[int]]] = []
    seen = 0.0
    cuts = 1
    for run in blocks.runs:
        top = height = run.top
        members: list[int] = []
        for burn in run.burn_blocks:
            height -= burn.stacks_blocks
            seen += burn.tx_count
            members.append(burn.height)
            if seen >= share * cuts and cuts < count:
                out.append((top, height + 1, frozenset(members)))
                top, members, cuts = height, [], cuts + 1
        if members:
            out.append((top, run.bottom, frozenset(members)))
    return out


def _walk(
    calls: _Calls, label: str, top: int, bottom: int, burn_heights: frozenset[int]
) -> tuple[list[dict[str, Any]], int]:
    """Summaries of Stacks heights [bottom, top], newest first, and the number of pages it took."""
    cursor: str | None = top_of_block(top)
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
            height, burn_height = _heights(row, label, len(rows) + position)
            if height > top:
                raise IncompleteDayError(
                    f"partition {label}: GET {V3_PATH} at cursor {cursor} returned block height {height}, above "
                    f"the cursor: the API does not page as documented. Nothing was written.",
                    endpoint=V3_PATH,
                )
            if height < bottom:
                return rows, pages
            if burn_height not in burn_heights:
                raise IncompleteDayError(
                    f"partition {label}: Stacks block {height} belongs to burn block {burn_height} in {V3_PATH}, "
                    f"not to the day's burn blocks {min(burn_heights)}-{max(burn_heights)} it lies between in "
                    f"{BURN_BLOCKS_PATH}: the two listings disagree (a reorg?). Nothing was written; re-run later.",
                    endpoint=V3_PATH,
                )
            rows.append(row)
        if next_cursor is not None and not isinstance(next_cursor, str):
            raise _shape_error(label, V3_PATH, "a `cursor.next` that is not a string")
        if not results:
            break
        cursor = next_cursor
    return rows, pages


def _heights(row: Any, label: str, offset: int) -> tuple[int, int | None]:
    """(block.height, bitcoin_block.height) of a summary, validated."""
    where = Where(label, offset)
    if not isinstance(row, dict):
        raise where.fail("(record)", f"should be an object, got {type(row).__name__}")
    where.tx_id = row.get("tx_id") if isinstance(row.get("tx_id"), str) else None
    block = object_field(row, "block", where, required=True)
    bitcoin = object_field(row, "bitcoin_block", where, required=True)
    height = int(int_field(block, "height", where.nested("block"), required=True))  # type: ignore[arg-type]
    return height, int_field(bitcoin, "height", where.nested("bitcoin_block"))  # type: ignore[arg-type]


def _to_v1(row: dict[str, Any], offset: int, label: str) -> dict[str, Any]:
    """Validate one TransactionSummary and flatten it to the v1 fields that records_to_table reads."""
    where = Where(label, offset)
    where.tx_id = str_field(row, "tx_id", where, required=True)
    sender = object_field(row, "sender", where, required=True)
    block = object_field(row, "block", where, required=True)
    bitcoin = object_field(row, "bitcoin_block", where, required=True)
    sponsor = object_field(row, "sponsor", where)
    assert sender is not None and block is not None and bitcoin is not None  # required=True
    in_block, in_bitcoin = where.nested("block"), where.nested("bitcoin_block")
    burn_time = int_field(bitcoin, "time", in_bitcoin, required=True)
    out: dict[str, Any] = {
        "tx_id": where.tx_id,
        "block_height": int_field(block, "height", in_block, required=True),
        "block_hash": str_field(block, "hash", in_block),
        "block_time": int_field(block, "time", in_block),
        "burn_block_time": burn_time,
        "burn_block_height": int_field(bitcoin, "height", in_bitcoin),
        "tx_index": int_field(block, "tx_index", in_block),
        "microblock_sequence": None,  # v3 summaries do not carry it (transaction-summaries.ts): unknown
        "tx_type": str_field(row, "type", where),
        "tx_status": str_field(row, "status", where),
        "sender_address": str_field(sender, "address", where.nested("sender"), required=True),
        "nonce": int_field(sender, "nonce", where.nested("sender")),
        "sponsored": sponsor is not None,
        "sponsor_address": str_field(sponsor, "address", where.nested("sponsor"), required=True) if sponsor else None,
        "fee_rate": ustx_amount(row.get("fee_rate"), "fee_rate", where),
    }
    kind = out["tx_type"]
    if kind == "token_transfer":
        payload = object_field(row, "token_transfer", where) or {}
        out["token_transfer"] = {
            "recipient_address": str_field(payload, "recipient", where.nested("token_transfer")),
            "amount": ustx_amount(payload.get("amount"), "token_transfer.amount", where),
        }
    elif kind == "contract_call":
        payload = object_field(row, "contract_call", where) or {}
        out["contract_call"] = {
            "contract_id": str_field(payload, "contract_id", where.nested("contract_call")),
            "function_name": str_field(payload, "function_name", where.nested("contract_call")),
        }
    elif kind == "smart_contract":
        payload = object_field(row, "smart_contract", where) or {}
        out["smart_contract"] = {"contract_id": str_field(payload, "contract_id", where.nested("smart_contract"))}
    return out
