"""Deterministic synthetic Stacks chain, producing Hiro v1 transaction objects.

Shape (mainnet after Nakamoto): 144 tenures (Bitcoin blocks) per "slot day", one per 10-minute slot; each
tenure has BLOCKS_PER_TENURE Stacks blocks that share the tenure's `burn_block_time`. Stacks heights are a
closed form of the global tenure index; a slot day's transactions come from an RNG seeded by (seed, slot
day), and cross-day structure (burn times, burn heights, block hashes, wallet cohorts) from stateless
hashes, so any day can be generated alone, in any order.

Like Bitcoin, the chain's header times (`burn_block_time`) do not increase with height: the median-time-past
rule lets a block carry an earlier time than its parent. A share of tenures (`inversion_rate`) carry a time
before their parent's, and a share of midnights (`midnight_inversion_rate`) are crossed by an inversion: a
tenure mined after midnight with a time before it, or one mined before midnight with a time after it. A UTC
day is therefore every tenure whose `burn_block_time` lies in the day (what the API's v1 filter selects),
which is not one contiguous range of heights. Burn heights have gaps (`burn_gaps_per_day` Bitcoin blocks a
day without a tenure), which the v2 burn-block listing skips.
"""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
import functools
import gc
import hashlib
import math
import random
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from stx_pipeline.simulator import catalog, ids
from stx_pipeline.simulator.wallets import (
    NEW_WALLET_EXTRA_SHARE,
    WHALE_SHARE,
    WalletPopulation,
    miner_address,
    sponsor_address,
    wallet_address,
)

TENURES_PER_DAY = 144
TENURE_SECONDS = 86_400 // TENURES_PER_DAY
BLOCKS_PER_TENURE = 30
GENESIS_BURN_HEIGHT = 666_050  # Bitcoin height at Stacks 2.0 launch
MICROBLOCK_SEQUENCE_NONE = 2_147_483_647
SYSTEM_TXS_PER_TENURE = 2  # tenure_change + coinbase
DAY_SECONDS = 86_400

Tx = dict[str, Any]

_OK_TRUE = {"hex": "0x0703", "repr": "(ok true)"}
_ERR_NONE = {"hex": "0x0809", "repr": "(err none)"}


# A tenure's time can leave its slot day only by these many slots (midnight inversions reach 3 tenures).
_BOUNDARY_REACH = 4


@dataclass(frozen=True)
class ChainConfig:
    seed: int = 7
    txs_per_day: int = 5000
    genesis: dt.date = dt.date(2021, 1, 14)
    hostile_strings: bool = False
    # Share of tenures whose Bitcoin header time is earlier than their parent's (away from midnight).
    # Mainnet Bitcoin: a few percent of blocks carry a time before their parent's.
    inversion_rate: float = 0.03
    # Share of midnights crossed by such an inversion (the case that splits a day's heights at either end).
    midnight_inversion_rate: float = 0.5
    # Bitcoin blocks per day without a Stacks tenure: their heights are missing from the burn-block listing.
    burn_gaps_per_day: int = 7


@dataclass(frozen=True)
class _Block:
    """Fields every transaction of one Stacks block shares (computed once per block)."""

    fields: dict[str, Any]


@dataclass
class _Day:
    txs: list[Tx]
    burn_times: list[int]  # parallel to txs, for bisecting time windows
    heights: list[int]  # parallel to txs, for bisecting block heights (v3 cursors, per-block counts)


def day_bounds(day: dt.date) -> tuple[int, int]:
    """Inclusive unix-second bounds of a UTC day, as the API's start_time/end_time expect."""
    start = calendar.timegm(day.timetuple())
    return start, start + DAY_SECONDS - 1


def utc_day(ts: int) -> dt.date:
    return dt.datetime.fromtimestamp(ts, dt.UTC).date()


class SyntheticChain:
    """Every mined canonical transaction of a synthetic chain, generated lazily by UTC day.

    Returned dicts are shared with the cache: treat them as read-only (copy before mutating).
    """

    def __init__(self, config: ChainConfig | None = None, cache_tx_budget: int = 400_000) -> None:
        self.config = config or ChainConfig()
        if not 0 <= self.config.burn_gaps_per_day < TENURES_PER_DAY:
            raise ValueError(f"burn_gaps_per_day must be in 0..{TENURES_PER_DAY - 1}")
        self.genesis_ts = calendar.timegm(self.config.genesis.timetuple())
        self.population = WalletPopulation(self.config.seed, self.config.txs_per_day)
        self.contracts = catalog.build_catalog(self.config.hostile_strings)
        self._contract_cum = _cumulative(catalog.zipf_weights(len(self.contracts)))
        self._function_cum = [_cumulative([f.weight for f in c.functions]) for c in self.contracts]
        self._token_ids = [c.contract_id for c in self.contracts if c.functions[0].name == "transfer"]
        # Two caches of the same dicts: slot days (height order, what v3 and the block endpoints read) and
        # UTC days by burn_block_time (v1 order, what the v1 listing reads).
        self._slots: OrderedDict[int, _Day] = OrderedDict()
        self._cache: OrderedDict[dt.date, _Day] = OrderedDict()
        self._cache_budget = cache_tx_budget
        self._lock = threading.RLock()

    # --- public API -------------------------------------------------------------------------------

    def day_transactions(self, day: dt.date) -> list[Tx]:
        """All transactions whose burn_block_time falls in `day`, in sort_by=burn_block_time asc order."""
        return list(self._day(day).txs)

    def transactions_between(self, start_ts: int, end_ts: int) -> list[Tx]:
        """Transactions with start_ts <= burn_block_time <= end_ts (inclusive, like the API)."""
        start_ts = max(start_ts, self.genesis_ts - DAY_SECONDS)
        if end_ts < start_ts:
            return []
        out: list[Tx] = []
        day, last = utc_day(start_ts), utc_day(end_ts)
        while day <= last:
            cached = self._day(day)
            lo = bisect.bisect_left(cached.burn_times, start_ts)
            hi = bisect.bisect_right(cached.burn_times, end_ts)
            out.extend(cached.txs[lo:hi])
            day += dt.timedelta(days=1)
        return out

    def day_total(self, day: dt.date) -> int:
        """Exact number of transactions of the day, from per-tenure counts: it does not generate the day."""
        return sum(self.tenure_tx_count(t) for t in self.day_tenures(day))

    def day_digest(self, day: dt.date) -> str:
        """sha256 over the day's tx_ids joined by newlines, in API order (for cheap equality checks)."""
        joined = "\n".join(tx["tx_id"] for tx in self._day(day).txs)
        return hashlib.sha256(joined.encode()).hexdigest()

    def slot_rows(self, slot_day: int) -> tuple[list[Tx], list[int]]:
        """The transactions of tenures slot_day*144 ... +143 in height order (read-only) and their heights."""
        cached = self._slot(slot_day)
        return cached.txs, cached.heights

    def day_index(self, day: dt.date) -> int:
        """The slot day whose 10-minute slots cover `day` (most of the day's tenures; not all, see day_tenures)."""
        return (day - self.config.genesis).days

    def day_tenures(self, day: dt.date) -> list[int]:
        """The tenures whose burn_block_time lies in `day`, in height order (not always consecutive)."""
        start, end = day_bounds(day)
        first = max(0, self.day_index(day) * TENURES_PER_DAY - _BOUNDARY_REACH)
        last = (self.day_index(day) + 1) * TENURES_PER_DAY + _BOUNDARY_REACH
        return [t for t in range(first, last) if start <= self.burn_block_time(t) <= end]

    def tenure_tx_count(self, tenure: int) -> int:
        """Transactions of one tenure (what the burn-block listing reports as total_tx_count)."""
        if tenure < 0:
            return 0
        slot_day, position = divmod(tenure, TENURES_PER_DAY)
        return _tenure_counts(self, slot_day)[position]

    # --- closed-form chain structure ----------------------------------------------------------------

    def slot_total(self, slot_day: int) -> int:
        """Transactions of the 144 tenures of one slot day (the generation unit)."""
        if slot_day < 0:
            return 0
        wobble = 0.85 + 0.30 * ids.unit(self.config.seed, "day-size", slot_day)
        return max(TENURES_PER_DAY * SYSTEM_TXS_PER_TENURE, round(self.config.txs_per_day * wobble))

    def mined_time(self, tenure: int) -> int:
        """When the tenure's Bitcoin block was really mined (the wall clock; increasing with height)."""
        jitter = int(ids.unit(self.config.seed, "burn-time", tenure) * (TENURE_SECONDS - 30))
        return self.genesis_ts + tenure * TENURE_SECONDS + jitter

    def burn_block_time(self, tenure: int) -> int:
        """The Bitcoin header time: the mined time, except where the chain carries an inversion."""
        seed, config = self.config.seed, self.config
        slot_day, position = divmod(tenure, TENURES_PER_DAY)
        # Midnight `b` (the start of slot day b) is crossed when the hash says so; never at genesis.
        for b in (slot_day, slot_day + 1):
            if b < 1 or ids.unit(seed, "midnight-inversion", b) >= config.midnight_inversion_rate:
                continue
            midnight = self.genesis_ts + b * DAY_SECONDS
            depth = 1 + int(ids.unit(seed, "midnight-depth", b) * 3)
            if ids.unit(seed, "midnight-kind", b) < 0.5:
                # Mined after midnight, dated before it: the `depth`-th tenure of the new day.
                if tenure == b * TENURES_PER_DAY + depth:
                    return midnight - 30 - int(ids.unit(seed, "midnight-shift", b) * 1200)
            elif tenure == b * TENURES_PER_DAY - 1 - depth:
                # Mined before midnight, dated after it (a miner's clock ahead; Bitcoin allows up to 2 h).
                return midnight + 30 + int(ids.unit(seed, "midnight-shift", b) * 600)
        mined = self.mined_time(tenure)
        if 3 <= position < TENURES_PER_DAY - 3 and ids.unit(seed, "inversion", tenure) < config.inversion_rate:
            # Dated before its parent: still after the median of the previous blocks, and inside the day.
            return self.mined_time(tenure - 1) - 1 - int(ids.unit(seed, "inversion-shift", tenure) * 300)
        return mined

    def burn_height(self, tenure: int) -> int:
        """Bitcoin height of the tenure: the tenure index plus the Bitcoin blocks without a tenure before it."""
        slot_day, position = divmod(tenure, TENURES_PER_DAY)
        gaps = _gap_positions(self.config.seed, slot_day, self.config.burn_gaps_per_day)
        return GENESIS_BURN_HEIGHT + tenure + slot_day * len(gaps) + bisect.bisect_right(gaps, position)

    def tenure_at_burn_height(self, burn_height: int) -> int | None:
        """The tenure of a Bitcoin height, or None for a Bitcoin block without one (a gap) or before genesis."""
        per_day = TENURES_PER_DAY + self.config.burn_gaps_per_day
        offset = burn_height - GENESIS_BURN_HEIGHT
        if offset < 0:
            return None
        slot_day = offset // per_day
        gaps = _gap_positions(self.config.seed, slot_day, self.config.burn_gaps_per_day)
        local = offset - slot_day * per_day
        # Tenure `position` sits at local height position + (gaps at or before it).
        for position in range(max(0, local - len(gaps)), min(TENURES_PER_DAY, local + 1)):
            if position + bisect.bisect_right(gaps, position) == local:
                return slot_day * TENURES_PER_DAY + position
        return None

    def tip_tenure(self, now: int) -> int:
        """The newest tenure whose Bitcoin block has been mined at `now` (-1 before genesis)."""
        tenure = (now - self.genesis_ts) // TENURE_SECONDS
        if tenure >= 0 and self.mined_time(tenure) > now:
            tenure -= 1
        return max(tenure, -1)

    def block_time(self, tenure: int, block: int) -> int:
        # Most tenures last about a Bitcoin block interval; ~5% run 30-55 minutes, so block_time can
        # be far after burn_block_time and cross midnight (partitioning stays on burn_block_time).
        # Stacks blocks follow the wall clock, after the Bitcoin block they build on.
        seed = self.config.seed
        if ids.unit(seed, "long-tenure", tenure) < 0.05:
            duration = 1800 + int(ids.unit(seed, "duration", tenure) * 1500)
        else:
            duration = 240 + int(ids.unit(seed, "duration", tenure) * 720)
        start = max(self.mined_time(tenure), self.burn_block_time(tenure))
        return start + 1 + block * duration // BLOCKS_PER_TENURE

    def block_hash(self, height: int) -> str:
        return ids.hex_hash(self.config.seed, "block", height)

    # --- generation ---------------------------------------------------------------------------------

    def _cached(self, cache: OrderedDict[Any, _Day], key: Any, build: Any) -> _Day:
        with self._lock:
            cached = cache.get(key)
            if cached is not None:
                cache.move_to_end(key)
                return cached
            # Building ~10^5 dicts triggers many useless full GC passes (nothing here is garbage):
            # pausing the collector roughly halves generation time for large days.
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                cached = build(key)
            finally:
                if gc_was_enabled:
                    gc.enable()
            cache[key] = cached
            held = sum(len(d.txs) for d in cache.values())
            while held > self._cache_budget and len(cache) > 1:
                _, evicted = cache.popitem(last=False)
                held -= len(evicted.txs)
            return cached

    def _slot(self, slot_day: int) -> _Day:
        return self._cached(self._slots, slot_day, self._generate)

    def _day(self, day: dt.date) -> _Day:
        return self._cached(self._cache, day, self._gather)

    def _gather(self, day: dt.date) -> _Day:
        """The UTC day by burn_block_time: its tenures from up to three slot days, in v1's order."""
        chunks: list[tuple[int, int, list[Tx]]] = []
        for tenure in self.day_tenures(day):
            txs, heights = self.slot_rows(tenure // TENURES_PER_DAY)
            low = tenure * BLOCKS_PER_TENURE + 1
            lo = bisect.bisect_left(heights, low)
            hi = bisect.bisect_left(heights, low + BLOCKS_PER_TENURE)
            chunks.append((self.burn_block_time(tenure), tenure, txs[lo:hi]))
        # v1's order: burn_block_time, block_height, microblock_sequence, tx_index; a tenure's rows share
        # one burn_block_time and are already in height order.
        chunks.sort(key=lambda c: (c[0], c[1]))
        txs = [tx for _, _, chunk in chunks for tx in chunk]
        return _Day(txs, [tx["burn_block_time"] for tx in txs], [tx["block_height"] for tx in txs])

    def _generate(self, slot_day: int) -> _Day:
        if slot_day < 0:
            return _Day([], [], [])
        day = self.config.genesis + dt.timedelta(days=slot_day)
        rng = random.Random(f"stx-sim:{self.config.seed}:{day.isoformat()}")
        user_count = self.slot_total(slot_day) - TENURES_PER_DAY * SYSTEM_TXS_PER_TENURE
        per_tenure = _apportion(user_count, _tenure_weights(rng))
        senders = self._day_senders(rng, slot_day, user_count)
        gen = _DayGenerator(self, rng, slot_day)
        txs: list[Tx] = []
        cursor = 0
        for i, count in enumerate(per_tenure):
            tenure = slot_day * TENURES_PER_DAY + i
            txs.extend(gen.tenure(tenure, senders[cursor : cursor + count]))
            cursor += count
        return _Day(txs, [tx["burn_block_time"] for tx in txs], [tx["block_height"] for tx in txs])

    def _day_senders(self, rng: random.Random, index: int, count: int) -> list[int]:
        """Sender wallet of each user transaction of the day, shuffled."""
        new = self.population.new_wallets(index)[:count]
        senders = list(new)
        extra_new = min(count - len(senders), int(count * NEW_WALLET_EXTRA_SHARE))
        senders += [rng.choice(new) for _ in range(extra_new)] if new else []
        whales = min(count - len(senders), int(count * WHALE_SHARE))
        senders += [self.population.whale(rng) for _ in range(whales)]
        senders += [self.population.returning(rng, index) for _ in range(count - len(senders))]
        rng.shuffle(senders)
        return senders


class _DayGenerator:
    """Builds one day's transactions; holds the per-day counters (nonces, sponsor nonces)."""

    def __init__(self, chain: SyntheticChain, rng: random.Random, day_index: int) -> None:
        self.chain = chain
        self.rng = rng
        self.day_index = day_index
        self.nonces: dict[int, int] = {}
        self.sponsor_nonces: dict[int, int] = {}

    def tenure(self, tenure: int, senders: list[int]) -> list[Tx]:
        rng = self.rng
        blocks = sorted(rng.randrange(BLOCKS_PER_TENURE) for _ in senders)
        out: list[Tx] = []
        block_ctx = self._block(tenure, 0)
        out.append(self._tenure_change(tenure, block_ctx))
        out.append(self._coinbase(tenure, block_ctx))
        current, tx_index = 0, SYSTEM_TXS_PER_TENURE
        for block, sender in zip(blocks, senders, strict=True):
            if block != current:
                current, tx_index = block, 0
                block_ctx = self._block(tenure, block)
            out.append(self._user_tx(sender, block_ctx, tx_index))
            tx_index += 1
        return out

    def _block(self, tenure: int, block: int) -> _Block:
        chain = self.chain
        height = tenure * BLOCKS_PER_TENURE + block + 1
        burn_time = chain.burn_block_time(tenure)
        parent_burn = burn_time if block else chain.burn_block_time(tenure - 1)
        block_time = chain.block_time(tenure, block)
        return _Block(
            {
                "block_hash": chain.block_hash(height),
                "block_height": height,
                "block_time": block_time,
                "block_time_iso": ids.iso(block_time),
                "burn_block_time": burn_time,
                "burn_block_height": chain.burn_height(tenure),
                "burn_block_time_iso": ids.iso(burn_time),
                "parent_burn_block_time": parent_burn,
                "parent_burn_block_time_iso": ids.iso(parent_burn),
                "parent_block_hash": chain.block_hash(height - 1),
            }
        )

    def _tx_id(self) -> str:
        return f"0x{self.rng.getrandbits(256):064x}"

    def _envelope(
        self, block: _Block, tx_index: int, nonce: int, fee: int, sender: str, status: str, result: dict[str, str]
    ) -> Tx:
        b = block.fields
        return {
            "tx_id": self._tx_id(),
            "nonce": nonce,
            "fee_rate": str(fee),
            "sender_address": sender,
            "sponsored": False,
            "post_condition_mode": "deny",
            "post_conditions": [],
            "anchor_mode": "any",
            "block_hash": b["block_hash"],
            "block_height": b["block_height"],
            "block_time": b["block_time"],
            "block_time_iso": b["block_time_iso"],
            "burn_block_time": b["burn_block_time"],
            "burn_block_height": b["burn_block_height"],
            "burn_block_time_iso": b["burn_block_time_iso"],
            "parent_burn_block_time": b["parent_burn_block_time"],
            "parent_burn_block_time_iso": b["parent_burn_block_time_iso"],
            "canonical": True,
            "tx_index": tx_index,
            "tx_status": status,
            "tx_result": result,
            "event_count": 0,
            "parent_block_hash": b["parent_block_hash"],
            "is_unanchored": False,
            "microblock_hash": "0x",
            "microblock_sequence": MICROBLOCK_SEQUENCE_NONE,
            "microblock_canonical": True,
            "execution_cost_read_count": 0,
            "execution_cost_read_length": 0,
            "execution_cost_runtime": 0,
            "execution_cost_write_count": 0,
            "execution_cost_write_length": 0,
            "vm_error": None,
            "events": [],
        }

    def _tenure_change(self, tenure: int, block: _Block) -> Tx:
        seed = self.chain.config.seed
        miner = int(ids.unit(seed, "miner", tenure) * 1_000_000)
        tx = self._envelope(block, 0, tenure * 2, 0, miner_address(miner), "success", dict(_OK_TRUE))
        tx["tx_type"] = "tenure_change"
        tx["tenure_change_payload"] = {
            "tenure_consensus_hash": ids.hex_hash(seed, "consensus", tenure, size=20),
            "prev_tenure_consensus_hash": ids.hex_hash(seed, "consensus", tenure - 1, size=20),
            "burn_view_consensus_hash": ids.hex_hash(seed, "consensus", tenure, size=20),
            "previous_tenure_end": self.chain.block_hash(tenure * BLOCKS_PER_TENURE),
            "previous_tenure_blocks": BLOCKS_PER_TENURE,
            "cause": "block_found",
            "pubkey_hash": ids.hex_hash("miner-key", miner % 12, size=20),
        }
        return tx

    def _coinbase(self, tenure: int, block: _Block) -> Tx:
        seed = self.chain.config.seed
        miner = int(ids.unit(seed, "miner", tenure) * 1_000_000)
        tx = self._envelope(block, 1, tenure * 2 + 1, 0, miner_address(miner), "success", dict(_OK_TRUE))
        tx["tx_type"] = "coinbase"
        tx["coinbase_payload"] = {
            "data": ids.hex_hash(seed, "coinbase", tenure),
            "alt_recipient": None,
            "vrf_proof": "0x"
            + ids.digest(seed, "vrf", tenure, size=64).hex()
            + ids.digest(seed, "vrf2", tenure, size=16).hex(),
        }
        return tx

    def _user_tx(self, wallet: int, block: _Block, tx_index: int) -> Tx:
        rng = self.rng
        population = self.chain.population
        nonce = self.nonces.get(wallet)
        if nonce is None:
            nonce = population.nonce_base(wallet, self.day_index)
        self.nonces[wallet] = nonce + 1

        roll = rng.random()
        status = (
            "problematic_skipped"
            if roll < 0.0002
            else "abort_by_post_condition"
            if roll < 0.0102
            else "abort_by_response"
            if roll < 0.0302
            else "success"
        )
        fee = max(180, int(rng.lognormvariate(8.0, 0.8)))  # median ~3,000 micro-STX
        kind = rng.random()
        tx_type = "contract_call" if kind < 0.79 else "token_transfer" if kind < 0.98 else "smart_contract"
        if tx_type == "smart_contract":
            fee *= 20
        result = _result(status, rng)
        tx = self._envelope(block, tx_index, nonce, fee, wallet_address(wallet), status, result)
        if status == "problematic_skipped":
            tx["vm_error"] = "problematic transaction: runtime cost exceeded"
        if rng.random() < 0.03:
            sponsor = rng.randrange(4)
            sponsor_seen = self.sponsor_nonces.get(sponsor, 0)
            self.sponsor_nonces[sponsor] = sponsor_seen + 1
            tx["sponsored"] = True
            tx["sponsor_nonce"] = self.day_index * 1000 + sponsor_seen
            tx["sponsor_address"] = sponsor_address(sponsor)
        tx["tx_type"] = tx_type
        ok = status == "success"
        if tx_type == "contract_call":
            tx["post_condition_mode"] = "deny" if rng.random() < 0.8 else "allow"
            tx["contract_call"] = self._contract_call()
            if ok:
                tx["event_count"] = rng.randint(1, 8)
                self._costs(tx, 1)
        elif tx_type == "token_transfer":
            tx["token_transfer"] = self._token_transfer()
            tx["event_count"] = 1 if ok else 0
        else:
            tx["smart_contract"] = self._smart_contract(tx["sender_address"])
            self._costs(tx, 4)
        return tx

    def _costs(self, tx: Tx, scale: int) -> None:
        rng = self.rng
        tx["execution_cost_read_count"] = rng.randint(3, 60) * scale
        tx["execution_cost_read_length"] = rng.randint(500, 60_000) * scale
        tx["execution_cost_runtime"] = rng.randint(10_000, 5_000_000) * scale
        tx["execution_cost_write_count"] = rng.randint(0, 15) * scale
        tx["execution_cost_write_length"] = rng.randint(0, 3_000) * scale

    def _contract_call(self) -> dict[str, Any]:
        rng = self.rng
        chain = self.chain
        c_index = _pick(chain._contract_cum, rng)
        contract = chain.contracts[c_index]
        function = contract.functions[_pick(chain._function_cum[c_index], rng)]
        return {
            "contract_id": contract.contract_id,
            "function_name": function.name,
            "function_signature": function.signature,
            "function_args": [self._arg(name, kind) for name, kind in function.args],
        }

    def _arg(self, name: str, kind: str) -> dict[str, str]:
        rng = self.rng
        if kind == catalog.U:
            value = ids.cv_uint(int(rng.lognormvariate(13, 2.5)))
        elif kind == catalog.P:
            value = ids.cv_principal(wallet_address(self.chain.population.returning(rng, self.day_index)))
        elif kind == catalog.C:
            value = ids.cv_principal(rng.choice(self.chain._token_ids))
        elif kind == catalog.B:
            value = ids.cv_bool(rng.random() < 0.5)
        elif kind == catalog.S:
            value = ids.cv_buff(rng.randbytes(rng.randint(8, 34)))
        elif kind == catalog.F:
            value = ids.cv_ascii(f"ipfs://bafy{rng.getrandbits(120):030x}")
        else:
            value = ids.cv_none()
        return {"hex": value["hex"], "repr": value["repr"], "name": name, "type": value["type"]}

    def _token_transfer(self) -> dict[str, Any]:
        rng = self.rng
        recipient = wallet_address(self.chain.population.returning(rng, self.day_index))
        # One transfer in five is an exchange deposit carrying a numeric memo.
        deposit = rng.random() < 0.2
        raw = str(rng.randrange(10**8, 10**9)).encode().ljust(34, b"\0") if deposit else bytes(34)
        return {
            "recipient_address": recipient,
            "amount": str(max(1, int(rng.lognormvariate(15.4, 2.0)))),  # median ~5 STX
            "memo": "0x" + raw.hex(),
        }

    def _smart_contract(self, sender: str) -> dict[str, Any]:
        rng = self.rng
        name = f"{rng.choice(catalog.DEPLOY_WORDS)}-{rng.choice(catalog.DEPLOY_WORDS)}-v{rng.randint(1, 9)}"
        return {
            "clarity_version": rng.choice((2, 3, 3)),
            "contract_id": f"{sender}.{name}",
            "source_code": catalog.SOURCE_TEMPLATE.format(name=name),
        }


def _result(status: str, rng: random.Random) -> dict[str, str]:
    if status == "success":
        return dict(_OK_TRUE)
    if status == "abort_by_response":
        code = rng.choice((1, 2, 3, 1001, 2003))
        return {"hex": "0x0801" + code.to_bytes(16, "big").hex(), "repr": f"(err u{code})"}
    return dict(_ERR_NONE)


def _tenure_counts(chain: SyntheticChain, slot_day: int) -> list[int]:
    """Transactions per tenure of a slot day: the first draws of the day's RNG, as _generate makes them."""
    config = chain.config
    return list(
        _tenure_counts_cached(config.seed, config.txs_per_day, config.genesis, slot_day, chain.slot_total(slot_day))
    )


@functools.lru_cache(maxsize=8192)
def _tenure_counts_cached(seed: int, _txs_per_day: int, genesis: dt.date, slot_day: int, total: int) -> tuple[int, ...]:
    if slot_day < 0:
        return (0,) * TENURES_PER_DAY
    day = genesis + dt.timedelta(days=slot_day)
    rng = random.Random(f"stx-sim:{seed}:{day.isoformat()}")
    user = _apportion(total - TENURES_PER_DAY * SYSTEM_TXS_PER_TENURE, _tenure_weights(rng))
    return tuple(SYSTEM_TXS_PER_TENURE + n for n in user)


@functools.lru_cache(maxsize=8192)
def _gap_positions(seed: int, slot_day: int, count: int) -> list[int]:
    """Positions (0..143) of a slot day's tenures that follow a Bitcoin block without a tenure, sorted."""
    if count <= 0 or slot_day < 0:
        return []
    return sorted(random.Random(f"stx-sim-gaps:{seed}:{slot_day}").sample(range(TENURES_PER_DAY), count))


def _tenure_weights(rng: random.Random) -> list[float]:
    # Bitcoin block intervals are exponential and a tenure's volume follows its length: mostly
    # 10-40 txs at 5,000/day, with a few tenures several times larger.
    weights = [rng.expovariate(1.0) * rng.lognormvariate(0.0, 0.3) for _ in range(TENURES_PER_DAY)]
    # Make sure one tenure is crowded (> 50 txs at realistic volumes): the "min burn_block_time - 1"
    # paging bug the reference warns about only shows when a tenure is larger than a page.
    busiest = max(range(TENURES_PER_DAY), key=weights.__getitem__)
    weights[busiest] *= 1.5
    return weights


def _apportion(total: int, weights: list[float]) -> list[int]:
    """Split `total` into integer parts proportional to weights, summing exactly to `total`."""
    scale = total / math.fsum(weights)
    raw = [w * scale for w in weights]
    parts = [int(r) for r in raw]
    by_remainder = sorted(range(len(raw)), key=lambda i: raw[i] - parts[i], reverse=True)
    for i in by_remainder[: total - sum(parts)]:
        parts[i] += 1
    return parts


def _cumulative(weights: list[float]) -> list[float]:
    out, acc = [], 0.0
    for w in weights:
        acc += w
        out.append(acc)
    return out


def _pick(cumulative: list[float], rng: random.Random) -> int:
    return min(bisect.bisect_right(cumulative, rng.random() * cumulative[-1]), len(cumulative) - 1)
