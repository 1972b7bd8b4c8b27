"""The v9 replacements for the v1 listing: `/extended/v3/transactions` and the v2 block endpoints (no HTTP here).

Heights are closed forms of the synthetic chain: tenure t (burn height GENESIS_BURN_HEIGHT + t) holds the
Stacks blocks t * BLOCKS_PER_TENURE + 1 ... (t + 1) * BLOCKS_PER_TENURE, and day d holds tenures
d * TENURES_PER_DAY ... (d + 1) * TENURES_PER_DAY - 1. Only per-block transaction counts need a day's rows.

The chain tip follows the server clock like `GET /extended` does: a tenure exists once its burn block time
has passed, with all its Stacks blocks.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from stx_pipeline.simulator import ids
from stx_pipeline.simulator.chain import (
    BLOCKS_PER_TENURE,
    GENESIS_BURN_HEIGHT,
    MICROBLOCK_SEQUENCE_NONE,
    TENURE_SECONDS,
    TENURES_PER_DAY,
    SyntheticChain,
    Tx,
)
from stx_pipeline.simulator.listing import BadRequest, Params

V3_MAX_LIMIT = 50
V3_DEFAULT_LIMIT = 20
V2_MAX_LIMIT = 30
V2_DEFAULT_LIMIT = 20
_CURSOR = re.compile(r"^(\d+):(\d+):(\d+)$")


class NotFound(LookupError):
    """Answered as HTTP 404 with Hiro's error body."""


@dataclass(frozen=True)
class V3Page:
    total: int
    limit: int
    rows: list[dict[str, Any]]  # TransactionSummary objects
    next: str | None
    previous: str | None
    current: str | None


def _limit(params: Params, default: int, maximum: int) -> int:
    values = params.get("limit")
    if not values:
        return default
    try:
        value = int(values[-1])
    except ValueError:
        raise BadRequest("querystring/limit must be integer") from None
    if value < 1:
        raise BadRequest("querystring/limit must be >= 1")
    if value > maximum:
        raise BadRequest(f"querystring/limit must be <= {maximum}")
    return value


def _offset(params: Params) -> int:
    values = params.get("offset")
    if not values:
        return 0
    try:
        value = int(values[-1])
    except ValueError:
        raise BadRequest("querystring/offset must be integer") from None
    if value < 0:
        raise BadRequest("querystring/offset must be >= 0")
    return value


def row_key(tx: Tx) -> tuple[int, int, int]:
    return tx["block_height"], tx["microblock_sequence"], tx["tx_index"]


def format_cursor(key: tuple[int, int, int]) -> str:
    return f"{key[0]}:{key[1]}:{key[2]}"


def summary(tx: Tx, seed: int) -> dict[str, Any]:
    """A v1 transaction object as the v3 TransactionSummary the real API builds from the same row."""
    out: dict[str, Any] = {
        "tx_id": tx["tx_id"],
        "sender": {"address": tx["sender_address"], "nonce": tx["nonce"]},
        "sponsor": (
            {"address": tx["sponsor_address"], "nonce": tx.get("sponsor_nonce")} if tx.get("sponsored") else None
        ),
        "fee_rate": tx["fee_rate"],
        "block": {
            "height": tx["block_height"],
            "hash": tx["block_hash"],
            "index_hash": ids.hex_hash(seed, "index-block", tx["block_height"]),
            "time": tx["block_time"],
            "tx_index": tx["tx_index"],
        },
        "bitcoin_block": {"height": tx["burn_block_height"], "time": tx["burn_block_time"]},
        "status": tx["tx_status"],
        "type": tx["tx_type"],
    }
    kind = tx["tx_type"]
    if kind == "token_transfer":
        payload = tx["token_transfer"]
        memo = payload.get("memo") or "0x"
        raw = bytes.fromhex(memo[2:]) if memo.startswith("0x") else b""
        text = raw.rstrip(b"\0")
        out["token_transfer"] = {
            "recipient": payload["recipient_address"],
            "amount": payload["amount"],
            "memo": {"hex": memo, "repr": text.decode("ascii", "replace")} if text else None,
        }
    elif kind == "contract_call":
        payload = tx["contract_call"]
        out["contract_call"] = {"contract_id": payload["contract_id"], "function_name": payload["function_name"]}
    elif kind == "smart_contract":
        payload = tx["smart_contract"]
        out["smart_contract"] = {
            "clarity_version": payload.get("clarity_version"),
            "contract_id": payload["contract_id"],
        }
    elif kind == "coinbase":
        out["coinbase"] = {"alt_recipient": (tx.get("coinbase_payload") or {}).get("alt_recipient")}
    elif kind == "tenure_change":
        out["tenure_change"] = {"cause": (tx.get("tenure_change_payload") or {}).get("cause")}
    return out


class BlockIndex:
    """Answers v3 transaction pages and v2 block / burn-block queries from a SyntheticChain."""

    def __init__(self, chain: SyntheticChain, clock: Callable[[], float]) -> None:
        self.chain = chain
        self.clock = clock
        self._days_before: dict[int, int] = {}  # day index -> transactions in all earlier days
        self._lock = threading.Lock()

    # --- closed-form structure -----------------------------------------------------------------------

    def tip_tenure(self) -> int:
        """The newest tenure whose burn block exists at the server clock (-1 before genesis)."""
        now = int(self.clock())
        tenure = (now - self.chain.genesis_ts) // TENURE_SECONDS
        if tenure >= 0 and self.chain.burn_block_time(tenure) > now:
            tenure -= 1
        return max(tenure, -1)

    def tip_height(self) -> int:
        return (self.tip_tenure() + 1) * BLOCKS_PER_TENURE

    def _day_of_tenure(self, tenure: int) -> dt.date:
        return self.chain.config.genesis + dt.timedelta(days=tenure // TENURES_PER_DAY)

    def _rows(self, tenure: int) -> tuple[list[Tx], list[int]]:
        return self.chain.day_rows(self._day_of_tenure(tenure))

    def _count(self, low_height: int, high_height: int) -> int:
        """Transactions in Stacks heights [low, high] of one day."""
        _, heights = self._rows((low_height - 1) // BLOCKS_PER_TENURE)
        return bisect.bisect_right(heights, high_height) - bisect.bisect_left(heights, low_height)

    # --- v2 blocks ---------------------------------------------------------------------------------

    def block(self, height: int) -> dict[str, Any]:
        if height < 1 or height > self.tip_height():
            raise NotFound("Block not found")
        chain = self.chain
        tenure, position = divmod(height - 1, BLOCKS_PER_TENURE)
        burn_time = chain.burn_block_time(tenure)
        block_time = chain.block_time(tenure, position)
        return {
            "canonical": True,
            "height": height,
            "hash": chain.block_hash(height),
            "block_time": block_time,
            "block_time_iso": ids.iso(block_time),
            "tenure_height": tenure + 1,
            "index_block_hash": ids.hex_hash(chain.config.seed, "index-block", height),
            "parent_block_hash": chain.block_hash(height - 1),
            "parent_index_block_hash": ids.hex_hash(chain.config.seed, "index-block", height - 1),
            "burn_block_time": burn_time,
            "burn_block_time_iso": ids.iso(burn_time),
            "burn_block_hash": self._burn_hash(tenure),
            "burn_block_height": GENESIS_BURN_HEIGHT + tenure,
            "miner_txid": ids.hex_hash(chain.config.seed, "miner-tx", tenure),
            "tx_count": self._count(height, height),
            "execution_cost_read_count": 0,
            "execution_cost_read_length": 0,
            "execution_cost_runtime": 0,
            "execution_cost_write_count": 0,
            "execution_cost_write_length": 0,
        }

    def blocks(self, params: Params) -> dict[str, Any]:
        """`GET /extended/v2/blocks`: newest first."""
        limit = _limit(params, V2_DEFAULT_LIMIT, V2_MAX_LIMIT)
        offset = _offset(params)
        tip = self.tip_height()
        top = tip - offset
        results = [self.block(h) for h in range(top, max(0, top - limit), -1)]

        # Cursors are index block hashes (pg-store-v2.ts getBlocks, 58-161): `cursor` is the page's first block,
        # `next_cursor` the block `limit` heights above it (newer), `prev_cursor` the one `limit` below (older).
        def index_hash(height: int) -> str | None:
            return ids.hex_hash(self.chain.config.seed, "index-block", height) if 1 <= height <= tip else None

        first = results[0]["height"] if results else 0
        return {
            "limit": limit,
            "offset": offset,
            "total": tip,
            "next_cursor": index_hash(first + limit) if results else None,
            "prev_cursor": index_hash(first - limit) if results else None,
            "cursor": index_hash(first) if results else None,
            "results": results,
        }

    def block_by_time(self, ts: int) -> dict[str, Any]:
        """`GET /extended/v2/blocks/by-block-time/{ts}`: the latest block whose block_time <= ts.

        The synthetic chain's long tenures overlap the next ones in block_time, so look a few tenures back.
        """
        chain = self.chain
        newest = min(self.tip_tenure(), (ts - chain.genesis_ts) // TENURE_SECONDS)
        best: tuple[int, int] | None = None  # (block_time, height)
        lookback = 3600 // TENURE_SECONDS + 1  # the longest synthetic tenure lasts < 1 h
        for tenure in range(max(0, newest - lookback), newest + 1):
            for position in range(BLOCKS_PER_TENURE):
                block_time = chain.block_time(tenure, position)
                if block_time <= ts:
                    candidate = (block_time, tenure * BLOCKS_PER_TENURE + position + 1)
                    best = candidate if best is None or candidate > best else best
        if best is None:
            raise NotFound("Block not found")
        return self.block(best[1])

    # --- v2 burn blocks ----------------------------------------------------------------------------

    def _burn_hash(self, tenure: int) -> str:
        return ids.hex_hash(self.chain.config.seed, "burn-block", tenure)

    def burn_block(self, burn_height: int) -> dict[str, Any]:
        tenure = burn_height - GENESIS_BURN_HEIGHT
        if tenure < 0 or tenure > self.tip_tenure():
            raise NotFound("Burn block not found")
        burn_time = self.chain.burn_block_time(tenure)
        low, high = tenure * BLOCKS_PER_TENURE + 1, (tenure + 1) * BLOCKS_PER_TENURE
        return {
            "burn_block_time": burn_time,
            "burn_block_time_iso": ids.iso(burn_time),
            "burn_block_hash": self._burn_hash(tenure),
            "burn_block_height": burn_height,
            "stacks_blocks": [self.chain.block_hash(h) for h in range(high, low - 1, -1)],
            # The real handler rounds to 2 decimals (routes/v2/helpers.ts:77) but the response schema says
            # integer (schemas/v1/entities/burn-blocks.ts:15), so fastify's serializer truncates it on the wire.
            "avg_block_time": int(
                (self.chain.block_time(tenure, BLOCKS_PER_TENURE - 1) - burn_time) / BLOCKS_PER_TENURE
            ),
            "total_tx_count": self._count(low, high),
        }

    def burn_blocks(self, params: Params) -> dict[str, Any]:
        """`GET /extended/v2/burn-blocks`: newest first."""
        limit = _limit(params, V2_DEFAULT_LIMIT, V2_MAX_LIMIT)
        offset = _offset(params)
        tip = self.tip_tenure()
        top = tip - offset
        results = [self.burn_block(GENESIS_BURN_HEIGHT + t) for t in range(top, max(-1, top - limit), -1)]
        return {"limit": limit, "offset": offset, "total": tip + 1, "results": results}

    def burn_height(self, height_or_hash: str) -> int:
        if height_or_hash == "latest":
            return GENESIS_BURN_HEIGHT + self.tip_tenure()
        if height_or_hash.isdigit():
            return int(height_or_hash)
        # Hash lookups would need a reverse index; the pipeline addresses burn blocks by height.
        raise NotFound("Burn block not found")

    def burn_block_blocks(self, burn_height: int, params: Params) -> dict[str, Any]:
        """`GET /extended/v2/burn-blocks/{h}/blocks`: the tenure's Stacks blocks, newest first."""
        limit = _limit(params, V2_DEFAULT_LIMIT, V2_MAX_LIMIT)
        offset = _offset(params)
        tenure = burn_height - GENESIS_BURN_HEIGHT
        if tenure < 0 or tenure > self.tip_tenure():
            raise NotFound("Burn block not found")
        top = (tenure + 1) * BLOCKS_PER_TENURE - offset
        low = tenure * BLOCKS_PER_TENURE + 1
        results = [self.block(h) for h in range(top, max(low - 1, top - limit), -1)]
        return {"limit": limit, "offset": offset, "total": BLOCKS_PER_TENURE, "results": results}

    # --- v3 transactions ---------------------------------------------------------------------------

    def total_transactions(self) -> int:
        """Every transaction up to the tip (the v3 envelope's `total`)."""
        tip = self.tip_height()
        if tip < 1:
            return 0
        tip_tenure = (tip - 1) // BLOCKS_PER_TENURE
        day_index = tip_tenure // TENURES_PER_DAY
        return self._transactions_before_day(day_index) + self._count(
            day_index * TENURES_PER_DAY * BLOCKS_PER_TENURE + 1, tip
        )

    def _transactions_before_day(self, day_index: int) -> int:
        with self._lock:
            known = max((i for i in self._days_before if i <= day_index), default=0)
            total = self._days_before.get(known, 0)
            genesis = self.chain.config.genesis
            for i in range(known, day_index):
                total += self.chain.day_total(genesis + dt.timedelta(days=i))
            self._days_before[day_index] = total
            return total

    def _position(self, key: tuple[int, int, int]) -> tuple[int, int]:
        """(tenure of a day, index) of the newest row at or below the cursor key; index -1: none that day.

        A cursor that matches no transaction means the whole block: rows of heights <= key's height.
        """
        height = key[0]
        tenure = (height - 1) // BLOCKS_PER_TENURE
        txs, heights = self._rows(tenure)
        lo = bisect.bisect_left(heights, height)
        hi = bisect.bisect_right(heights, height)
        for i in range(lo, hi):
            if row_key(txs[i]) == key:
                return tenure, i
        return tenure, hi - 1

    def _descending(self, tenure: int, index: int) -> Iterator[Tx]:
        """Rows from (day of tenure, index) downwards, crossing into earlier days."""
        day_start = (tenure // TENURES_PER_DAY) * TENURES_PER_DAY
        while day_start >= 0:
            txs, _ = self._rows(day_start)
            for i in range(index, -1, -1):
                yield txs[i]
            day_start -= TENURES_PER_DAY
            if day_start >= 0:
                index = len(self._rows(day_start)[0]) - 1

    def _ascending(self, tenure: int, index: int, tip: int) -> Iterator[Tx]:
        """Rows from (day of tenure, index) upwards, up to the tip height."""
        day_start = (tenure // TENURES_PER_DAY) * TENURES_PER_DAY
        while day_start * BLOCKS_PER_TENURE < tip:
            txs, _ = self._rows(day_start)
            for i in range(index, len(txs)):
                if txs[i]["block_height"] > tip:
                    return
                yield txs[i]
            day_start += TENURES_PER_DAY
            index = 0

    def v3_page(self, params: Params) -> V3Page:
        """`GET /extended/v3/transactions?limit&cursor`: newest first, rows <= cursor."""
        limit = _limit(params, V3_DEFAULT_LIMIT, V3_MAX_LIMIT)
        raw = (params.get("cursor") or [""])[-1]
        tip = self.tip_height()
        if raw:
            match = _CURSOR.match(raw)
            if not match:
                raise BadRequest("querystring/cursor must match format height:microblock_sequence:tx_index")
            key = (int(match.group(1)), int(match.group(2)), int(match.group(3)))
            if key[0] > tip:
                key = (tip, MICROBLOCK_SEQUENCE_NONE, 2**31)
        else:
            key = (tip, MICROBLOCK_SEQUENCE_NONE, 2**31)
        if key[0] < 1:
            return V3Page(self.total_transactions(), limit, [], None, None, None)
        tenure, index = self._position(key)
        rows: list[Tx] = []
        for tx in self._descending(tenure, index):
            rows.append(tx)
            if len(rows) > limit:
                break
        page, after = rows[:limit], rows[limit:]
        previous = None
        if page:
            above = None
            for n, tx in enumerate(self._ascending(tenure, index + 1, tip), start=1):
                above = tx
                if n >= limit:
                    break
            previous = format_cursor(row_key(above)) if above is not None else None
        seed = self.chain.config.seed
        return V3Page(
            total=self.total_transactions(),
            limit=limit,
            rows=[summary(tx, seed) for tx in page],
            next=format_cursor(row_key(after[0])) if after else None,
            previous=previous,
            current=format_cursor(row_key(page[0])) if page else None,
        )
