"""Wallet population model: grows with time, churns, and has a few whales.

Closed form, no cumulative state: day `d` (days since genesis) owns the wallet numbers
`[d * capacity, d * capacity + new_count(d))`; those wallets send their first transaction on day `d`.
Later days pick returning wallets by age (mostly recent, a long tail of old ones), so a wallet is
never seen before its creation day and new-wallet / retention metrics mean something.
"""

from __future__ import annotations

import random
from functools import lru_cache

from stx_pipeline.simulator import ids

WHALE_COUNT = 25
MINER_COUNT = 12
SPONSOR_COUNT = 4
# Share of a day's user transactions that new wallets get on top of their mandatory first one.
NEW_WALLET_EXTRA_SHARE = 0.12
WHALE_SHARE = 0.10


@lru_cache(maxsize=1 << 16)
def _new_count(seed: int, capacity: int, day_index: int) -> int:
    if day_index < 0:
        return 0
    return max(1, int(capacity * (0.6 + 0.4 * ids.unit(seed, "new-wallets", day_index))))


class WalletPopulation:
    def __init__(self, seed: int, txs_per_day: int) -> None:
        self.seed = seed
        # ~5% of daily transactions come with a brand-new wallet: 250/day at 5,000 tx/day.
        self.capacity = max(4, round(txs_per_day * 0.05))
        self._whale_weights = [1.0 / (rank + 1) for rank in range(WHALE_COUNT)]
        self._whale_ids = [-(rank + 1) for rank in range(WHALE_COUNT)]  # negative numbers = whales

    def new_count(self, day_index: int) -> int:
        return _new_count(self.seed, self.capacity, day_index)

    def new_wallets(self, day_index: int) -> list[int]:
        start = day_index * self.capacity
        return list(range(start, start + self.new_count(day_index)))

    def created_day(self, wallet: int) -> int:
        return -1 if wallet < 0 else wallet // self.capacity

    def whale(self, rng: random.Random) -> int:
        return rng.choices(self._whale_ids, self._whale_weights)[0]

    def returning(self, rng: random.Random, day_index: int) -> int:
        """A wallet created before `day_index`, biased towards recent and towards early-numbered ones."""
        if day_index <= 0:
            return self.whale(rng)
        roll = rng.random()
        if roll < 0.6:
            age = 1 + int(rng.expovariate(1 / 2.5))
        elif roll < 0.9:
            age = 1 + int(rng.expovariate(1 / 15))
        else:
            age = 1 + int(rng.random() * day_index)
        if age > day_index:
            age = 1 + int(rng.random() * day_index)
        created = day_index - age
        # Squaring the uniform makes a minority of each cohort the habitual, frequently returning users.
        return created * self.capacity + int(self.new_count(created) * rng.random() ** 2)

    def nonce_base(self, wallet: int, day_index: int) -> int:
        """Plausible account nonce at the start of a day (monotonic over days, not an exact ledger)."""
        if wallet < 0:
            return day_index * 400
        age = day_index - self.created_day(wallet)
        return 0 if age <= 0 else age * 2 + int(ids.unit(self.seed, "nonce", wallet) * 8)


def wallet_address(wallet: int) -> str:
    return ids.address("wallet", wallet)


def miner_address(number: int) -> str:
    return ids.address("miner", number % MINER_COUNT)


def sponsor_address(number: int) -> str:
    return ids.address("sponsor", number % SPONSOR_COUNT)
