"""The v9 replacements for the v1 listing: `/extended/v3/transactions` and the v2 block endpoints (no HTTP here).

Heights are closed forms of the synthetic chain: tenure t (burn height `chain.burn_height(t)`, with gaps) holds
the Stacks blocks t * BLOCKS_PER_TENURE + 1 ... (t + 1) * BLOCKS_PER_TENURE, and slot day d holds tenures
d * TENURES_PER_DAY ... (d + 1) * TENURES_PER_DAY - 1. Only per-block transaction counts need a slot day's rows.

The chain tip follows the server clock like `GET /extended` does: a tenure exists once its Bitcoin block has
been mined (its header time can be earlier or later), with all its Stacks blocks.

Each behaviour follows the real server's source (hirosystems/stacks-blockchain-api v9.0.2); the file and line
of each one is in the conformance table of docs/API_STRATEGIES.md.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from stx_pipeline.simulator import ids
from stx_pipeline.simulator.chain import (
    BLOCKS_PER_TENURE,
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
# The cursor's schema pattern (schemas/v3/cursors.ts). [0-9], not \d: Python's \d also matches other digits.
CURSOR_PATTERN = "^[0-9]+:[0-9]+:[0-9]+$"
_CURSOR = re.compile(CURSOR_PATTERN)
# The txs columns the cursor is compared with (migrations/1600000000001_txs.ts): its three numbers are bound as
# query parameters of these types, so a number outside them is a database error, answered 500.
CURSOR_COLUMNS = (("block_height", "integer", 2_147_483_647), ("microblock_sequence", "integer", 2_147_483_647))
CURSOR_COLUMNS += (("tx_index", "smallint", 32_767),)
I32_MAX = 2_147_483_647  # src/helpers.ts
MAX_TX_INDEX = 0x7FFF  # src/datastore/v3/helpers.ts
# by-block-time: the latest block_time at or before ts. A tenure's blocks run up to ~55 min after a start
# that can be 40 min after its slot (a miner's clock ahead at midnight): look back that many slots.
_BY_TIME_LOOKBACK = 2 * 3600 // TENURE_SECONDS + 1
# Cursors received by v3, for tests; bounded so a long-running simulator does not grow without end.
CURSOR_LOG_SIZE = 100_000


class NotFound(LookupError):
    """Answered as HTTP 404 with Hiro's error body."""


class DatabaseError(RuntimeError):
    """What postgres raises for a parameter outside its column type: the real server answers 500 with it."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


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
        self._days_before: dict[int, int] = {}  # slot day -> transactions in all earlier slot days
        self._lock = threading.Lock()
        self.cursors_received: deque[str] = deque(maxlen=CURSOR_LOG_SIZE)  # every v3 `cursor` parameter

    # --- closed-form structure -----------------------------------------------------------------------

    def tip_tenure(self) -> int:
        """The newest tenure whose Bitcoin block has been mined at the server clock (-1 before genesis)."""
        return self.chain.tip_tenure(int(self.clock()))

    def tip_height(self) -> int:
        return (self.tip_tenure() + 1) * BLOCKS_PER_TENURE

    def _rows(self, tenure: int) -> tuple[list[Tx], list[int]]:
        return self.chain.slot_rows(tenure // TENURES_PER_DAY)

    def _count(self, low_height: int, high_height: int) -> int:
        """Transactions in Stacks heights [low, high] of one slot day."""
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
            "burn_block_height": chain.burn_height(tenure),
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
        """`GET /extended/v2/blocks/by-block-time/{ts}`: the block with the latest block_time <= ts
        (pg-store-v2.ts getBlockAtTimestamp); 404 with the route's own message when there is none.

        The synthetic chain's long tenures overlap the next ones in block_time, so look a few tenures back.
        """
        chain = self.chain
        newest = min(self.tip_tenure(), (ts - chain.genesis_ts) // TENURE_SECONDS)
        best: tuple[int, int] | None = None  # (block_time, height)
        for tenure in range(max(0, newest - _BY_TIME_LOOKBACK), newest + 1):
            for position in range(BLOCKS_PER_TENURE):
                block_time = chain.block_time(tenure, position)
                if block_time <= ts:
                    candidate = (block_time, tenure * BLOCKS_PER_TENURE + position + 1)
                    best = candidate if best is None or candidate > best else best
        if best is None:
            raise NotFound("No block found at or before the given timestamp")
        return self.block(best[1])

    # --- v2 burn blocks ----------------------------------------------------------------------------

    def _burn_hash(self, tenure: int) -> str:
        return ids.hex_hash(self.chain.config.seed, "burn-block", tenure)

    def burn_block(self, burn_height: int) -> dict[str, Any]:
        tenure = self.chain.tenure_at_burn_height(burn_height)
        if tenure is None or tenure > self.tip_tenure():
            raise NotFound("Not found")  # routes/v2/burn-blocks.ts: `new NotFoundError()`, its default message
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
        """`GET /extended/v2/burn-blocks`: burn blocks that have Stacks blocks, by burn height newest first (not by
        time: header times do not increase with height). `total` is the Stacks tip's block count, not a number of
        burn blocks, and 0 on an empty page (pg-store-v2.ts getBurnBlocks)."""
        limit = _limit(params, V2_DEFAULT_LIMIT, V2_MAX_LIMIT)
        offset = _offset(params)
        tip = self.tip_tenure()
        top = tip - offset
        chain = self.chain
        results = [self.burn_block(chain.burn_height(t)) for t in range(top, max(-1, top - limit), -1)]
        total = self.tip_height() if results else 0
        return {"limit": limit, "offset": offset, "total": total, "results": results}

    def burn_height(self, height_or_hash: str) -> int:
        if height_or_hash == "latest":
            return self.chain.burn_height(self.tip_tenure())
        if height_or_hash.isdigit():
            return int(height_or_hash)
        # Hash lookups would need a reverse index; the pipeline addresses burn blocks by height.
        raise NotFound("Burn block not found")

    def burn_block_blocks(self, burn_height: int, params: Params) -> dict[str, Any]:
        """`GET /extended/v2/burn-blocks/{h}/blocks`: the tenure's Stacks blocks, newest first."""
        limit = _limit(params, V2_DEFAULT_LIMIT, V2_MAX_LIMIT)
        offset = _offset(params)
        tenure = self.chain.tenure_at_burn_height(burn_height)
        if tenure is None or tenure > self.tip_tenure():
            raise NotFound("Burn block not found")  # pg-store-v2.ts getBlocksByBurnBlock, as a 404
        top = (tenure + 1) * BLOCKS_PER_TENURE - offset
        low = tenure * BLOCKS_PER_TENURE + 1
        results = [self.block(h) for h in range(top, max(low - 1, top - limit), -1)]
        total = BLOCKS_PER_TENURE if results else 0  # an empty page answers total 0
        return {"limit": limit, "offset": offset, "total": total, "results": results}

    # --- v3 transactions ---------------------------------------------------------------------------

    def total_transactions(self) -> int:
        """Every transaction up to the tip: `chain_tip.tx_count`, which the v3 envelope's `total` reads."""
        tip_tenure = self.tip_tenure()
        if tip_tenure < 0:
            return 0
        slot_day = tip_tenure // TENURES_PER_DAY
        first = slot_day * TENURES_PER_DAY
        today = sum(self.chain.tenure_tx_count(t) for t in range(first, tip_tenure + 1))
        return self._transactions_before_slot_day(slot_day) + today

    def _transactions_before_slot_day(self, slot_day: int) -> int:
        with self._lock:
            known = max((i for i in self._days_before if i <= slot_day), default=0)
            total = self._days_before.get(known, 0)
            for i in range(known, slot_day):
                total += self.chain.slot_total(i)
            self._days_before[slot_day] = total
            return total

    def _position(self, key: tuple[int, int, int]) -> tuple[int, int]:
        """(a tenure of the slot day, index) of the newest row with (height, microblock_sequence, tx_index) <= key,
        compared as a row like the real `<=` (pg-store-v3.ts); index -1: none in that slot day."""
        height = key[0]
        tenure = (height - 1) // BLOCKS_PER_TENURE
        txs, heights = self._rows(tenure)
        index = bisect.bisect_right(heights, height) - 1  # the last row of block `height` or below
        while index >= 0 and txs[index]["block_height"] == height and row_key(txs[index]) > key:
            index -= 1
        return tenure, index

    def _descending(self, tenure: int, index: int) -> Iterator[Tx]:
        """Rows from (slot day of tenure, index) downwards, crossing into earlier slot days."""
        day_start = (tenure // TENURES_PER_DAY) * TENURES_PER_DAY
        while day_start >= 0:
            txs, _ = self._rows(day_start)
            for i in range(index, -1, -1):
                yield txs[i]
            day_start -= TENURES_PER_DAY
            if day_start >= 0:
                index = len(self._rows(day_start)[0]) - 1

    def _ascending(self, tenure: int, index: int, tip: int) -> Iterator[Tx]:
        """Rows from (slot day of tenure, index) upwards, up to the tip height."""
        day_start = (tenure // TENURES_PER_DAY) * TENURES_PER_DAY
        while day_start * BLOCKS_PER_TENURE < tip:
            txs, _ = self._rows(day_start)
            for i in range(index, len(txs)):
                if txs[i]["block_height"] > tip:
                    return
                yield txs[i]
            day_start += TENURES_PER_DAY
            index = 0

    def _exists(self, key: tuple[int, int, int]) -> bool:
        if key[0] < 1 or key[0] > self.tip_height():
            return False
        tenure, index = self._position(key)
        return index >= 0 and row_key(self._rows(tenure)[0][index]) == key

    def cursor_key(self, raw: str) -> tuple[int, int, int]:
        """The row the cursor stands for, as the real server reads it: 400 if it does not match the schema's
        pattern; 500 if a number lies outside its column's type (postgres rejects the bound parameter);
        `H:0:0` means the whole block H unless a transaction sits exactly at (H, 0, 0)
        (resolveTransactionCursor, src/datastore/v3/helpers.ts); any other cursor is used as sent."""
        if not _CURSOR.match(raw):
            raise BadRequest(f'querystring/cursor must match pattern "{CURSOR_PATTERN}"')
        numbers = [int(part) for part in raw.split(":")]
        for value, (_column, sql_type, maximum) in zip(numbers, CURSOR_COLUMNS, strict=True):
            if value > maximum:
                # What postgres says for the bound parameter (SQLSTATE 22003); the server sends it as a 500.
                raise DatabaseError(f'value "{value}" is out of range for type {sql_type}', "22003")
        key = (numbers[0], numbers[1], numbers[2])
        if key[1] == 0 and key[2] == 0 and not self._exists(key):
            return key[0], I32_MAX, MAX_TX_INDEX
        return key

    def v3_page(self, params: Params) -> V3Page:
        """`GET /extended/v3/transactions?limit&cursor` (pg-store-v3.ts getTransactionSummaries): rows with
        (block_height, microblock_sequence, tx_index) <= cursor, newest first; `total` = all transactions up
        to the tip, 0 on an empty page."""
        limit = _limit(params, V3_DEFAULT_LIMIT, V3_MAX_LIMIT)
        raw = (params.get("cursor") or [""])[-1]
        if raw:
            self.cursors_received.append(raw)
        tip = self.tip_height()
        key = self.cursor_key(raw) if raw else (tip, I32_MAX, MAX_TX_INDEX)
        if key[0] > tip:
            key = (tip, I32_MAX, MAX_TX_INDEX)  # no row above the tip: the same rows
        if key[0] < 1:
            return V3Page(0, limit, [], None, None, None)
        tenure, index = self._position(key)
        rows: list[Tx] = []
        for tx in self._descending(tenure, index):
            rows.append(tx)
            if len(rows) > limit:
                break
        page, after = rows[:limit], rows[limit:]
        if not page:
            return V3Page(0, limit, [], None, None, None)
        # `previous`: the last of the `limit` rows above the page's first row, ascending.
        above = None
        for n, tx in enumerate(self._ascending(tenure, index + 1, tip), start=1):
            above = tx
            if n >= limit:
                break
        seed = self.chain.config.seed
        return V3Page(
            total=self.total_transactions(),
            limit=limit,
            rows=[summary(tx, seed) for tx in page],
            next=format_cursor(row_key(after[0])) if after else None,
            previous=format_cursor(row_key(above)) if above is not None else None,
            current=format_cursor(row_key(page[0])),
        )
