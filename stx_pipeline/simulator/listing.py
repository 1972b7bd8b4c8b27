"""`GET /extended/v1/tx`: query validation, filtering, ordering and paging (no HTTP here)."""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from stx_pipeline.simulator.chain import DAY_SECONDS, SyntheticChain, Tx, day_bounds, utc_day

MAX_LIMIT = 50
DEFAULT_LIMIT = 20
SORT_BY = ("block_height", "burn_block_time", "fee")
ORDERS = ("asc", "desc")
TX_TYPES = ("coinbase", "token_transfer", "smart_contract", "contract_call", "poison_microblock", "tenure_change")
# The simulator materialises a window in memory; a month is plenty for day partitions.
MAX_WINDOW_DAYS = 31
_BOOLS = {"true": True, "1": True, "false": False, "0": False}


class BadRequest(ValueError):
    """Answered as HTTP 400 with Hiro's error body."""


@dataclass(frozen=True)
class ListQuery:
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    start_time: int | None = None
    end_time: int | None = None
    sort_by: str = "block_height"
    order: str = "desc"
    types: tuple[str, ...] | None = None
    exclude_function_args: bool = False


Params = dict[str, list[str]]


def _int(params: Params, name: str, default: int | None, maximum: int | None = None) -> int | None:
    values = params.get(name)
    if not values:
        return default
    try:
        value = int(values[-1])
    except ValueError:
        raise BadRequest(f"querystring/{name} must be integer") from None
    if value < 0:
        raise BadRequest(f"querystring/{name} must be >= 0")
    if maximum is not None and value > maximum:
        raise BadRequest(f"querystring/{name} must be <= {maximum}")
    return value


def _choice(params: Params, name: str, allowed: tuple[str, ...], default: str) -> str:
    values = params.get(name)
    if not values:
        return default
    if values[-1] not in allowed:
        raise BadRequest(f"querystring/{name} must be equal to one of the allowed values: {', '.join(allowed)}")
    return values[-1]


def parse_list_query(params: Params) -> ListQuery:
    """Validate query parameters the way the API's schema does (400 on anything invalid)."""
    types: tuple[str, ...] | None = None
    if params.get("type"):
        # Both `type=a,b` and repeated `type=a&type=b` are accepted by the API.
        names = [name.strip() for value in params["type"] for name in value.split(",") if name.strip()]
        bad = [name for name in names if name not in TX_TYPES]
        if bad:
            raise BadRequest(f"querystring/type must be equal to one of the allowed values: {', '.join(TX_TYPES)}")
        types = tuple(dict.fromkeys(names))
    exclude = params.get("exclude_function_args")
    if exclude and exclude[-1].lower() not in _BOOLS:
        raise BadRequest("querystring/exclude_function_args must be boolean")
    return ListQuery(
        limit=_int(params, "limit", DEFAULT_LIMIT, MAX_LIMIT) or 0,
        offset=_int(params, "offset", 0) or 0,
        start_time=_int(params, "start_time", None),
        end_time=_int(params, "end_time", None),
        sort_by=_choice(params, "sort_by", SORT_BY, "block_height"),
        order=_choice(params, "order", ORDERS, "desc"),
        types=types,
        exclude_function_args=bool(exclude) and _BOOLS[exclude[-1].lower()],
    )


class Lister:
    """Answers listing queries from a SyntheticChain; caches the last few filtered+sorted views so
    paging a 100k-row day does not re-filter the whole day on every page."""

    def __init__(self, chain: SyntheticChain, clock: Callable[[], float], hide_future: bool = True) -> None:
        self.chain = chain
        self.clock = clock
        self.hide_future = hide_future
        self._views: OrderedDict[tuple[object, ...], list[Tx]] = OrderedDict()
        self._lock = threading.Lock()

    def window(self, query: ListQuery) -> tuple[int, int]:
        """Inclusive burn_block_time window; without bounds, the last complete UTC day."""
        now = int(self.clock())
        if query.start_time is None and query.end_time is None:
            start, end = day_bounds(utc_day(now) - dt.timedelta(days=1))
        else:
            end = query.end_time if query.end_time is not None else now
            start = query.start_time if query.start_time is not None else self.chain.genesis_ts
        if self.hide_future:
            end = min(end, now)  # the chain has not produced those blocks yet
        if end - max(start, self.chain.genesis_ts) > MAX_WINDOW_DAYS * DAY_SECONDS:
            raise BadRequest(f"simulator: time windows are limited to {MAX_WINDOW_DAYS} days")
        return start, end

    def days(self, query: ListQuery) -> list[dt.date]:
        start, end = self.window(query)
        if end < start:
            return []
        first, last = utc_day(max(start, self.chain.genesis_ts)), utc_day(max(end, 0))
        return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]

    def rows(self, query: ListQuery) -> list[Tx]:
        start, end = self.window(query)
        key = (start, end, query.types, query.sort_by, query.order)
        with self._lock:
            view = self._views.get(key)
            if view is not None:
                self._views.move_to_end(key)
                return view
        view = self.chain.transactions_between(start, end)
        if query.types is not None:
            wanted = set(query.types)
            view = [tx for tx in view if tx["tx_type"] in wanted]
        # The real ORDER BY clauses (pg-store.ts getTxList): the chain's day views are already in the
        # burn_block_time order; burn times do not rise with height, so the other keys sort by height.
        if query.sort_by == "fee":
            view = sorted(view, key=lambda tx: (int(tx["fee_rate"]), _height_key(tx)))
        elif query.sort_by == "block_height":
            view = sorted(view, key=_height_key)
        if query.order == "desc":
            view = view[::-1]
        with self._lock:
            self._views[key] = view
            while len(self._views) > 8:
                self._views.popitem(last=False)
        return view

    def page(self, query: ListQuery) -> tuple[int, list[Tx]]:
        rows = self.rows(query)
        page = rows[query.offset : query.offset + query.limit]
        if query.exclude_function_args:
            page = [_without_function_args(tx) for tx in page]
        return len(rows), page


def _without_function_args(tx: Tx) -> Tx:
    if tx.get("tx_type") != "contract_call":
        return tx
    call = {k: v for k, v in tx["contract_call"].items() if k != "function_args"}
    return {**tx, "contract_call": call}


def _height_key(tx: Tx) -> tuple[int, int, int]:
    return tx["block_height"], tx["microblock_sequence"], tx["tx_index"]
