"""The Hiro API simulator: synthetic chain properties, HTTP contract, and every fault kind.

Real HTTP on 127.0.0.1 through `requests`, as the pipeline's client will use it.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import itertools
import re
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from stx_pipeline.simulator import ChainConfig, FaultConfig, SimulatorServer, SyntheticChain, day_bounds
from stx_pipeline.simulator.catalog import HOSTILE_CONTRACT_NAME, HOSTILE_FUNCTION_NAME
from stx_pipeline_tests.children import read_line

DAY = dt.date(2025, 3, 1)
ADDRESS = re.compile(r"^SP[0-9ABCDEFGHJKMNPQRSTVWXYZ]{38}$")
HEX64 = re.compile(r"^0x[0-9a-f]{64}$")
API_ORDER = ("burn_block_time", "block_height", "microblock_sequence", "tx_index")


def api_key(tx: dict[str, Any]) -> tuple[int, ...]:
    return tuple(tx[k] for k in API_ORDER)


@pytest.fixture(scope="module")
def chain() -> SyntheticChain:
    return SyntheticChain(ChainConfig())


@pytest.fixture
def sim(chain: SyntheticChain) -> Iterator[SimulatorServer]:
    with SimulatorServer(chain) as server:
        yield server


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def day_params(day: dt.date = DAY, **extra: Any) -> dict[str, Any]:
    start, end = day_bounds(day)
    return {"start_time": start, "end_time": end, "sort_by": "burn_block_time", "order": "asc", **extra}


def list_tx(sim: SimulatorServer, session: requests.Session, **params: Any) -> requests.Response:
    return session.get(f"{sim.url}/extended/v1/tx", params=params, timeout=10)


# --- synthetic chain -------------------------------------------------------------------------------


@pytest.mark.slow  # a long in-process scenario (several seconds): make test
def test_generation_is_deterministic_whatever_the_order() -> None:
    days = [DAY, DAY + dt.timedelta(days=1), DAY - dt.timedelta(days=40)]
    first = SyntheticChain(ChainConfig(seed=11))
    second = SyntheticChain(ChainConfig(seed=11))
    forward = [first.day_transactions(d) for d in days]
    backward = [second.day_transactions(d) for d in reversed(days)][::-1]
    assert forward == backward
    other = SyntheticChain(ChainConfig(seed=12)).day_transactions(DAY)
    assert {tx["tx_id"] for tx in other}.isdisjoint(tx["tx_id"] for tx in forward[0])


def test_day_shape_order_and_chain_structure(chain: SyntheticChain) -> None:
    txs = chain.day_transactions(DAY)
    assert len(txs) == chain.day_total(DAY)
    assert 0.85 * 5000 <= len(txs) <= 1.15 * 5000
    assert [api_key(tx) for tx in txs] == sorted(api_key(tx) for tx in txs)
    start, end = day_bounds(DAY)
    assert all(start <= tx["burn_block_time"] <= end for tx in txs)
    assert len({tx["tx_id"] for tx in txs}) == len(txs)
    assert all(HEX64.match(tx["tx_id"]) and HEX64.match(tx["block_hash"]) for tx in txs)
    assert all(ADDRESS.match(tx["sender_address"]) for tx in txs)
    assert all(tx["block_time"] > tx["burn_block_time"] for tx in txs)

    # A day is its tenures by burn_block_time: about 144, give or take those an inversion moves across midnight.
    per_tenure = Counter(tx["burn_block_height"] for tx in txs)
    assert len(per_tenure) == len(chain.day_tenures(DAY)) and 140 <= len(per_tenure) <= 148
    assert max(per_tenure.values()) > 50  # the case that breaks "min burn_block_time - 1" paging
    assert len({tx["block_height"] for tx in txs}) > 144  # many Stacks blocks per tenure

    by_block: dict[int, list[int]] = {}
    for tx in txs:
        by_block.setdefault(tx["block_height"], []).append(tx["tx_index"])
    assert all(indexes == list(range(len(indexes))) for indexes in by_block.values())

    types = Counter(tx["tx_type"] for tx in txs)
    assert types["coinbase"] == types["tenure_change"] == len(per_tenure)
    assert types["contract_call"] > 0.65 * len(txs) and types["token_transfer"] > 0.1 * len(txs)
    assert types["smart_contract"] > 0 and types["poison_microblock"] == 0
    statuses = Counter(tx["tx_status"] for tx in txs)
    assert statuses["success"] > 0.9 * len(txs) and statuses["abort_by_response"] > 0
    fees = sorted(int(tx["fee_rate"]) for tx in txs if tx["tx_type"] == "contract_call")
    assert 1_000 <= fees[len(fees) // 2] <= 10_000


def test_heights_continue_across_days(chain: SyntheticChain) -> None:
    today, tomorrow = chain.day_transactions(DAY), chain.day_transactions(DAY + dt.timedelta(days=1))
    assert max(tx["block_height"] for tx in today) < max(tx["block_height"] for tx in tomorrow)
    between = chain.transactions_between(today[-1]["burn_block_time"], tomorrow[0]["burn_block_time"])
    assert between[0]["tx_id"] != today[0]["tx_id"] and between[-1]["burn_block_time"] == tomorrow[0]["burn_block_time"]
    # Every tenure belongs to exactly one day, by its own burn_block_time.
    days = [DAY + dt.timedelta(days=i) for i in range(-1, 3)]
    tenures = [t for d in days for t in chain.day_tenures(d)]
    assert len(tenures) == len(set(tenures))
    inner = set(chain.day_tenures(DAY)) | set(chain.day_tenures(days[2]))
    assert set(range(min(inner), max(inner) + 1)) <= set(tenures)
    # Burn heights rise with the tenure, with gaps (Bitcoin blocks without a tenure).
    heights = [chain.burn_height(t) for t in sorted(inner)]
    assert heights == sorted(set(heights))
    assert heights[-1] - heights[0] + 1 - len(heights) >= chain.config.burn_gaps_per_day


def test_bitcoin_times_invert_across_midnights_by_default(chain: SyntheticChain) -> None:
    """Header times do not increase with height: inside days, and across midnight at both ends of many days."""
    days = [DAY + dt.timedelta(days=i) for i in range(14)]
    split_start = split_end = 0
    for day in days:
        tenures = chain.day_tenures(day)
        inside = range(tenures[0], tenures[-1] + 1)
        assert any(chain.burn_block_time(t) < chain.burn_block_time(t - 1) for t in inside)
        if tenures[0] in chain.day_tenures(day - dt.timedelta(days=1)) or any(
            t not in tenures for t in range(tenures[0], tenures[0] + 8)
        ):
            split_start += 1
        if any(t not in tenures for t in range(tenures[-1] - 8, tenures[-1])):
            split_end += 1
    assert split_start >= 3 and split_end >= 3


def test_transaction_objects_have_the_v1_shape(chain: SyntheticChain) -> None:
    txs = chain.day_transactions(DAY)
    common = {
        "tx_id",
        "nonce",
        "fee_rate",
        "sender_address",
        "sponsored",
        "post_condition_mode",
        "post_conditions",
        "anchor_mode",
        "block_hash",
        "block_height",
        "block_time",
        "block_time_iso",
        "burn_block_time",
        "burn_block_time_iso",
        "burn_block_height",
        "parent_block_hash",
        "parent_burn_block_time",
        "canonical",
        "microblock_canonical",
        "microblock_sequence",
        "microblock_hash",
        "tx_index",
        "tx_status",
        "tx_type",
        "tx_result",
        "event_count",
        "events",
        "execution_cost_read_count",
        "execution_cost_runtime",
        "vm_error",
        "is_unanchored",
    }
    payload_keys = {
        "token_transfer": {"recipient_address", "amount", "memo"},
        "contract_call": {"contract_id", "function_name", "function_signature", "function_args"},
        "smart_contract": {"clarity_version", "contract_id", "source_code"},
        "coinbase_payload": {"data", "alt_recipient", "vrf_proof"},
        "tenure_change_payload": {"cause", "previous_tenure_end", "tenure_consensus_hash"},
    }
    seen = set()
    for tx in txs:
        assert common <= tx.keys()
        assert isinstance(tx["fee_rate"], str) and tx["canonical"] is True and tx["events"] == []
        assert tx["microblock_sequence"] == 2147483647 and tx["microblock_hash"] == "0x"
        key = {"coinbase": "coinbase_payload", "tenure_change": "tenure_change_payload"}.get(
            tx["tx_type"], tx["tx_type"]
        )
        assert payload_keys[key] <= tx[key].keys()
        seen.add(key)
        assert ("sponsor_address" in tx) == tx["sponsored"]
        if tx["tx_type"] == "token_transfer":
            assert tx["token_transfer"]["amount"].isdigit()
        if tx["tx_type"] == "contract_call":
            assert re.match(r"^SP[0-9A-Z]{38}\.[a-z0-9-]+$", tx["contract_call"]["contract_id"])
    assert seen == set(payload_keys)
    assert 0.005 < sum(tx["sponsored"] for tx in txs) / len(txs) < 0.06


def test_hostile_strings_reach_popular_contracts() -> None:
    txs = SyntheticChain(ChainConfig(hostile_strings=True, txs_per_day=2000)).day_transactions(DAY)
    calls = [tx["contract_call"] for tx in txs if tx["tx_type"] == "contract_call"]
    assert any(c["contract_id"].endswith("." + HOSTILE_CONTRACT_NAME) for c in calls)
    assert any(c["function_name"] == HOSTILE_FUNCTION_NAME for c in calls)
    assert "<script>" in HOSTILE_CONTRACT_NAME and "DROP TABLE" in HOSTILE_FUNCTION_NAME


@pytest.mark.slow  # generates months of chain (~6 s)
def test_wallet_population_grows_and_retains(chain: SyntheticChain) -> None:
    days = [DAY + dt.timedelta(days=i) for i in range(14)]
    active = [{tx["sender_address"] for tx in chain.day_transactions(d)} for d in days]
    seen: set[str] = set()
    new_per_day = []
    for senders in active:
        new_per_day.append(len(senders - seen))
        seen |= senders
    assert all(n > 0 for n in new_per_day[1:])
    assert all(300 <= len(senders) <= 4000 for senders in active)
    week1, week2 = set().union(*active[:7]), set().union(*active[7:])
    returning = week1 & week2
    assert len(returning) > 100
    # Late cohorts really are new: a day's brand-new wallets were absent from the previous week.
    assert len(active[13] - week1 - set().union(*active[7:13])) > 50


# --- HTTP contract -----------------------------------------------------------------------------------


def test_paging_a_day_returns_exactly_the_day(
    sim: SimulatorServer, session: requests.Session, chain: SyntheticChain
) -> None:
    ids: list[str] = []
    offset, total = 0, None
    start, end = day_bounds(DAY)
    while total is None or offset < total:
        response = list_tx(sim, session, **day_params(limit=50, offset=offset))
        assert response.status_code == 200
        body = response.json()
        assert body["limit"] == 50 and body["offset"] == offset
        total = body["total"]
        assert all(start <= tx["burn_block_time"] <= end for tx in body["results"])
        ids += [tx["tx_id"] for tx in body["results"]]
        offset += 50
    assert total == chain.day_total(DAY) == len(ids) == len(set(ids))
    assert ids == [tx["tx_id"] for tx in chain.day_transactions(DAY)]
    stats = sim.stats()
    assert stats["connections"] == 1  # keep-alive: one pooled connection served every page


def test_validation_and_errors(sim: SimulatorServer, session: requests.Session) -> None:
    response = list_tx(sim, session, limit=51)
    assert response.status_code == 400
    assert response.json()["statusCode"] == 400 and response.json()["error"] == "Bad Request"
    for bad in ({"limit": "x"}, {"offset": -1}, {"sort_by": "nonce"}, {"order": "up"}, {"type": "mint"}):
        assert list_tx(sim, session, **bad).status_code == 400, bad
    missing = session.get(f"{sim.url}/extended/v1/nope", timeout=5)
    assert missing.status_code == 404 and missing.json()["error"] == "Not Found"
    default = list_tx(sim, session)
    assert default.status_code == 200 and default.json()["limit"] == 20
    assert default.headers["Warning"].startswith("299 - ")
    status = session.get(f"{sim.url}/extended", timeout=5).json()
    assert status["status"] == "ready" and "simulator" in status["server_version"]


def test_time_bounds_are_inclusive(sim: SimulatorServer, session: requests.Session, chain: SyntheticChain) -> None:
    txs = chain.day_transactions(DAY)
    tenure_time = txs[len(txs) // 2]["burn_block_time"]
    expected = [tx["tx_id"] for tx in txs if tx["burn_block_time"] == tenure_time]
    body = list_tx(
        sim, session, start_time=tenure_time, end_time=tenure_time, limit=50, sort_by="burn_block_time", order="asc"
    ).json()
    assert body["total"] == len(expected)
    assert [tx["tx_id"] for tx in body["results"]] == expected[:50]
    after = list_tx(sim, session, start_time=tenure_time + 1, end_time=tenure_time, limit=1).json()
    assert after["total"] == 0 and after["results"] == []


def test_type_filter_order_and_exclude_function_args(
    sim: SimulatorServer, session: requests.Session, chain: SyntheticChain
) -> None:
    system = list_tx(sim, session, **day_params(type="coinbase,tenure_change", limit=50)).json()
    assert system["total"] == 2 * len(chain.day_tenures(DAY))
    assert {tx["tx_type"] for tx in system["results"]} == {"coinbase", "tenure_change"}

    calls = list_tx(sim, session, **day_params(type="contract_call", limit=5)).json()["results"]
    assert all("function_args" in tx["contract_call"] for tx in calls)
    slim = list_tx(sim, session, **day_params(type="contract_call", limit=5, exclude_function_args="true"))
    slim_calls = slim.json()["results"]
    assert [tx["tx_id"] for tx in slim_calls] == [tx["tx_id"] for tx in calls]
    assert all("function_args" not in tx["contract_call"] for tx in slim_calls)
    assert all("function_name" in tx["contract_call"] for tx in slim_calls)

    asc = list_tx(sim, session, **day_params(limit=50)).json()
    desc = list_tx(sim, session, **day_params(limit=50, order="desc")).json()
    assert asc["total"] == desc["total"]
    assert api_key(desc["results"][0]) > api_key(desc["results"][-1]) > api_key(asc["results"][-1])
    fees = list_tx(sim, session, **day_params(limit=50, sort_by="fee", order="desc")).json()["results"]
    assert [int(t["fee_rate"]) for t in fees] == sorted((int(t["fee_rate"]) for t in fees), reverse=True)


def test_rate_limit_and_headers(chain: SyntheticChain, session: requests.Session) -> None:
    with SimulatorServer(chain, rpm_limit=3) as sim:
        ok = [list_tx(sim, session, **day_params(limit=1)) for _ in range(3)]
        assert [r.status_code for r in ok] == [200, 200, 200]
        assert [r.headers["ratelimit-remaining"] for r in ok] == ["2", "1", "0"]
        for name in (
            "ratelimit-limit",
            "ratelimit-reset",
            "x-ratelimit-cost-stacks",
            "x-ratelimit-limit-stacks-minute",
            "x-ratelimit-remaining-stacks-minute",
        ):
            assert name in ok[0].headers
        assert int(ok[0].headers["ratelimit-reset"]) > time.time()
        limited = list_tx(sim, session, **day_params(limit=1))
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.headers["ratelimit-remaining"] == "0"
        assert session.get(f"{sim.url}/_sim/stats", timeout=5).status_code == 200  # admin: never limited
        assert sim.stats()["sent_429"] == 1


# --- faults ------------------------------------------------------------------------------------------


def with_faults(sim: SimulatorServer, session: requests.Session, **fields: Any) -> None:
    response = session.post(f"{sim.url}/_sim/faults", json=fields, timeout=5)
    assert response.status_code == 200, response.text


def test_gone_and_fail_days(sim: SimulatorServer, session: requests.Session) -> None:
    with_faults(sim, session, gone=True)
    gone = list_tx(sim, session, **day_params(limit=1))
    assert gone.status_code == 410
    assert gone.json()["error"] == "Gone" and "disabled" in gone.json()["message"]

    with_faults(sim, session, fail_days=[DAY.isoformat()])
    assert list_tx(sim, session, **day_params(limit=1)).status_code == 500
    assert list_tx(sim, session, **day_params(DAY + dt.timedelta(days=1), limit=1)).status_code == 200
    start, _ = day_bounds(DAY)
    straddling = list_tx(sim, session, start_time=start - 10, end_time=start, limit=1)
    assert straddling.status_code == 500
    assert sim.stats()["faults"] == {"fail_day": 2, "gone": 1}

    sim.faults.fail_days = []  # the live config can be mutated in-process
    assert list_tx(sim, session, **day_params(limit=1)).status_code == 200


def test_transport_faults(sim: SimulatorServer, session: requests.Session) -> None:
    with_faults(sim, session, truncate_rate=1.0)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        list_tx(sim, session, **day_params(limit=50)).json()

    with_faults(sim, session, reset_rate=1.0)
    with pytest.raises(requests.exceptions.ConnectionError):
        list_tx(sim, session, **day_params(limit=1))

    with_faults(sim, session, error_rate=1.0, fault_seed=3)
    codes = {list_tx(sim, session, **day_params(limit=1)).status_code for _ in range(20)}
    assert codes <= {500, 502, 503, 504, 522, 525} and len(codes) > 1

    with_faults(sim, session, malformed_json_rate=1.0)
    malformed = list_tx(sim, session, **day_params(limit=1))
    assert malformed.status_code == 200
    with pytest.raises(ValueError):
        malformed.json()

    with_faults(sim, session, latency_ms=150)
    started = time.perf_counter()
    assert list_tx(sim, session, **day_params(limit=1)).status_code == 200
    assert time.perf_counter() - started >= 0.15
    faults = sim.stats()["faults"]
    assert faults["truncate"] == faults["reset"] == faults["malformed_json"] == 1 and faults["error"] == 20


def test_fault_rates_are_seeded(chain: SyntheticChain, session: requests.Session) -> None:
    def outcomes() -> list[int]:
        with SimulatorServer(chain, FaultConfig(error_rate=0.5, fault_seed=5)) as sim:
            return [list_tx(sim, session, **day_params(limit=1)).status_code for _ in range(12)]

    first = outcomes()
    assert first == outcomes() and 200 in first and len(set(first)) > 1


def test_429_bursts_and_retry_after_modes(sim: SimulatorServer, session: requests.Session) -> None:
    with_faults(sim, session, burst_429_every=3, burst_429_length=2, retry_after_mode="http-date")
    statuses = [list_tx(sim, session, **day_params(limit=1)) for _ in range(6)]
    assert [r.status_code for r in statuses] == [200, 200, 429, 429, 200, 429]
    when = email.utils.parsedate_to_datetime(statuses[2].headers["retry-after"])
    assert 0 <= when.timestamp() - time.time() <= 3

    with_faults(sim, session, burst_429_every=1, retry_after_mode="zero")
    assert list_tx(sim, session, limit=1).headers["retry-after"] == "0"
    with_faults(sim, session, burst_429_every=1, retry_after_mode="none")
    limited = list_tx(sim, session, limit=1)
    assert limited.status_code == 429 and "retry-after" not in limited.headers
    with_faults(sim, session, burst_429_every=1, retry_after_mode="seconds")
    assert list_tx(sim, session, limit=1).headers["retry-after"] == "1"


def test_monthly_quota(sim: SimulatorServer, session: requests.Session) -> None:
    with_faults(sim, session, monthly_quota=2)
    first, second, third = (list_tx(sim, session, **day_params(limit=1)) for _ in range(3))
    assert first.headers["x-ratelimit-limit-stacks-month"] == "2"
    assert [
        first.headers["x-ratelimit-remaining-stacks-month"],
        second.headers["x-ratelimit-remaining-stacks-month"],
    ] == ["1", "0"]
    assert third.status_code == 429
    assert third.headers["x-ratelimit-remaining-stacks-month"] == "0"
    assert int(third.headers["retry-after"]) > 0


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("missing_field", lambda tx: "sender_address" not in tx),
        ("wrong_type", lambda tx: isinstance(tx["block_height"], str)),
        ("unknown_enum", lambda tx: tx["tx_status"] == "future_status"),
    ],
)
def test_corrupt_records(sim: SimulatorServer, session: requests.Session, kind: str, check: Any) -> None:
    with_faults(sim, session, corrupt=kind)
    for offset in (0, 50):
        rows = list_tx(sim, session, **day_params(limit=50, offset=offset)).json()["results"]
        assert len(rows) == 50 and sum(1 for tx in rows if check(tx)) == 1


def test_total_drift_and_short_page(sim: SimulatorServer, session: requests.Session, chain: SyntheticChain) -> None:
    real = chain.day_total(DAY)
    with_faults(sim, session, total_drift=True)
    totals = [list_tx(sim, session, **day_params(limit=50, offset=o)).json()["total"] for o in (0, 50, 100)]
    assert totals == [real, real + 1, real + 2]

    with_faults(sim, session, short_page=True)
    body = list_tx(sim, session, **day_params(limit=50)).json()
    assert body["total"] == real and len(body["results"]) == 49


# --- admin, keys ---------------------------------------------------------------------------------


def test_admin_endpoints(sim: SimulatorServer, session: requests.Session, chain: SyntheticChain) -> None:
    config = FaultConfig(latency_ms=1, fail_days=["2025-01-02"], corrupt="wrong_type", monthly_quota=10)
    assert FaultConfig.from_dict(config.to_dict()) == config
    posted = session.post(f"{sim.url}/_sim/faults", json=config.to_dict(), timeout=5)
    assert posted.status_code == 200
    assert session.get(f"{sim.url}/_sim/faults", timeout=5).json() == config.to_dict()
    assert sim.faults == config
    for bad in ({"nope": 1}, {"error_rate": 2}, {"retry_after_mode": "soon"}, {"corrupt": "x"}):
        assert session.post(f"{sim.url}/_sim/faults", json=bad, timeout=5).status_code == 400
    sim.faults = FaultConfig()  # settable in-process too
    assert session.get(f"{sim.url}/_sim/faults", timeout=5).json() == FaultConfig().to_dict()

    day = session.get(f"{sim.url}/_sim/day/{DAY.isoformat()}", timeout=5).json()
    expected = hashlib.sha256("\n".join(tx["tx_id"] for tx in chain.day_transactions(DAY)).encode())
    assert day["total"] == chain.day_total(DAY) and day["tx_ids_sha256"] == expected.hexdigest()

    list_tx(sim, session, limit=51)
    stats = session.get(f"{sim.url}/_sim/stats", timeout=5).json()
    assert stats["requests"] == 1 and stats["by_status"]["400"] == 1 and stats["admin_requests"] >= 8
    assert session.get(f"{sim.url}/_sim/unknown", timeout=5).status_code == 404


def test_api_keys_are_counted_and_optionally_required(chain: SyntheticChain, session: requests.Session) -> None:
    secret = "sim-key-0123456789"
    with SimulatorServer(chain, required_api_key=secret) as sim:
        missing = list_tx(sim, session, limit=1)
        assert missing.status_code == 401 and missing.json()["error"] == "Unauthorized"
        wrong = session.get(f"{sim.url}/extended/v1/tx", headers={"x-api-key": "wrong"}, timeout=5)
        assert wrong.status_code == 401
        for _ in range(2):
            ok = session.get(f"{sim.url}/extended/v1/tx", params={"limit": 1}, headers={"x-api-key": secret}, timeout=5)
            assert ok.status_code == 200
        stats = sim.stats()
        assert stats["api_keys_seen"] == 2 and stats["requests_with_api_key"] == 3
        assert secret not in repr(stats) and "wrong" not in repr(stats)


def test_stop_closes_pooled_connections(chain: SyntheticChain, session: requests.Session) -> None:
    sim = SimulatorServer(chain).start()
    url = sim.url
    assert session.get(f"{url}/extended", timeout=5).status_code == 200
    sim.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get(f"{url}/extended", timeout=5)


def test_concurrent_clients(sim: SimulatorServer) -> None:
    import concurrent.futures

    def fetch(offset: int) -> list[str]:
        with requests.Session() as s:
            rows = list_tx(sim, s, **day_params(limit=50, offset=offset)).json()["results"]
            return [tx["tx_id"] for tx in rows]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        pages = list(pool.map(fetch, range(0, 800, 50)))
    ids = list(itertools.chain.from_iterable(pages))
    assert len(ids) == len(set(ids)) == 800


# --- packaging -----------------------------------------------------------------------------------


def test_simulator_is_standalone() -> None:
    """Only stdlib and its own modules: it must run as a separate process without dagster."""
    import ast
    import pathlib
    import sys

    import stx_pipeline.simulator as package

    for source in pathlib.Path(package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            for name in names:
                top = name.split(".")[0]
                assert name.startswith("stx_pipeline.simulator") or top in sys.stdlib_module_names, (
                    f"{source.name} imports {name}"
                )


@pytest.mark.slow  # starts a Python process
def test_serve_prints_its_url_and_answers() -> None:
    import subprocess
    import sys

    code = (
        "from stx_pipeline.simulator import serve, ChainConfig; "
        "serve(port=0, chain_config=ChainConfig(txs_per_day=500))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # A cold start takes well under a second here and much longer under load: wait on the printed URL itself.
        line = read_line(proc)
        url = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert url, line
        assert requests.get(f"{url.group(0)}/extended", timeout=60).json()["status"] == "ready"
    finally:
        proc.kill()
        proc.wait(timeout=30)


# --- v3 transactions and v2 blocks (the v9 replacements) -------------------------------------------


def get(sim: SimulatorServer, session: requests.Session, path: str, **params: Any) -> requests.Response:
    return session.get(f"{sim.url}{path}", params=params, timeout=10)


def test_v3_cursor_pages_a_day_newest_first_with_summaries(
    sim: SimulatorServer, session: requests.Session, chain: SyntheticChain
) -> None:
    # The day by burn_block_time, in v3's order; its heights are not one range (Bitcoin time inversions).
    day_txs = sorted(chain.day_transactions(DAY), key=lambda tx: (tx["block_height"], tx["tx_index"]))
    top = day_txs[-1]["block_height"]
    bottom = day_txs[0]["block_height"]
    start, end = day_bounds(DAY)
    cursor: str | None = f"{top}:0:0"  # no transaction sits at (top, 0, 0): the whole block `top`
    seen: list[dict[str, Any]] = []
    while cursor is not None:
        body = get(sim, session, "/extended/v3/transactions", limit=50, cursor=cursor).json()
        assert body["limit"] == 50 and isinstance(body["total"], int)
        seen.extend(body["results"])
        if body["results"][-1]["block"]["height"] < bottom:
            break
        cursor = body["cursor"]["next"]
    in_day = [r for r in seen if start <= r["bitcoin_block"]["time"] <= end]
    assert [r["tx_id"] for r in in_day] == [tx["tx_id"] for tx in reversed(day_txs)]
    assert len(in_day) < len([r for r in seen if bottom <= r["block"]["height"] <= top])  # other days in between
    keys = [(r["block"]["height"], r["block"]["tx_index"]) for r in seen]
    assert keys == sorted(keys, reverse=True)
    row, tx = in_day[0], day_txs[-1]
    assert set(row) >= {"tx_id", "sender", "sponsor", "fee_rate", "block", "bitcoin_block", "status", "type"}
    assert row["sender"] == {"address": tx["sender_address"], "nonce": tx["nonce"]}
    assert row["block"]["time"] == tx["block_time"] and row["block"]["tx_index"] == tx["tx_index"]
    assert row["bitcoin_block"] == {"height": tx["burn_block_height"], "time": tx["burn_block_time"]}
    assert "microblock_sequence" not in row  # the summary has none: the pipeline stores NULL


def test_v3_cursor_links_and_limits(sim: SimulatorServer, session: requests.Session) -> None:
    first = get(sim, session, "/extended/v3/transactions", limit=5).json()
    assert first["cursor"]["previous"] is None  # the tip
    second = get(sim, session, "/extended/v3/transactions", limit=5, cursor=first["cursor"]["next"]).json()
    assert second["cursor"]["current"] == first["cursor"]["next"]
    assert second["cursor"]["previous"] == first["cursor"]["current"]
    assert {r["tx_id"] for r in first["results"]}.isdisjoint(r["tx_id"] for r in second["results"])
    assert get(sim, session, "/extended/v3/transactions", limit=51).status_code == 400
    assert get(sim, session, "/extended/v3/transactions", cursor="nope").status_code == 400
    oldest = get(sim, session, "/extended/v3/transactions", limit=50, cursor="1:0:0").json()
    assert oldest["cursor"]["next"] is None and oldest["results"][-1]["block"]["height"] == 1


def test_v2_burn_blocks_and_blocks(sim: SimulatorServer, session: requests.Session, chain: SyntheticChain) -> None:
    day_txs = chain.day_transactions(DAY)
    last_burn = day_txs[-1]["burn_block_height"]
    burn = get(sim, session, f"/extended/v2/burn-blocks/{last_burn}").json()
    assert burn["burn_block_time"] == day_txs[-1]["burn_block_time"]
    assert burn["total_tx_count"] == sum(tx["burn_block_height"] == last_burn for tx in day_txs)
    assert len(burn["stacks_blocks"]) == 30
    listing = get(sim, session, "/extended/v2/burn-blocks", limit=30).json()
    assert len(listing["results"]) == 30 and listing["total"] > 30
    heights = [b["burn_block_height"] for b in listing["results"]]
    assert heights == sorted(heights, reverse=True)
    assert get(sim, session, "/extended/v2/burn-blocks", limit=31).status_code == 400
    blocks = get(sim, session, f"/extended/v2/burn-blocks/{last_burn}/blocks", limit=30).json()
    assert blocks["total"] == 30 and blocks["results"][0]["height"] == blocks["results"][-1]["height"] + 29
    assert sum(b["tx_count"] for b in blocks["results"]) == burn["total_tx_count"]
    assert get(sim, session, f"/extended/v2/burn-blocks/{last_burn}/blocks", limit=31).status_code == 400
    assert get(sim, session, "/extended/v2/blocks", limit=31).status_code == 400
    tip = get(sim, session, "/extended/v2/blocks", limit=1).json()["results"][0]
    assert get(sim, session, f"/extended/v2/blocks/{tip['height']}").json() == tip
    assert get(sim, session, f"/extended/v2/blocks/{tip['height'] + 1}").status_code == 404


def test_by_block_time_returns_the_latest_block_at_or_before(
    sim: SimulatorServer, session: requests.Session, chain: SyntheticChain
) -> None:
    _start, end = day_bounds(DAY)
    block = get(sim, session, f"/extended/v2/blocks/by-block-time/{end}").json()
    assert block["block_time"] <= end
    assert block["burn_block_time"] <= end
    # Nothing later at or before `end` in the day's last tenures.
    later = [tx for tx in chain.day_transactions(DAY) if block["block_time"] < tx["block_time"] <= end]
    assert later == []
    before_genesis = get(sim, session, f"/extended/v2/blocks/by-block-time/{chain.genesis_ts - 10}")
    assert before_genesis.status_code == 404
    assert before_genesis.json()["message"] == "No block found at or before the given timestamp"
    with_faults(sim, session, no_by_block_time=True)
    missing = get(sim, session, f"/extended/v2/blocks/by-block-time/{end}")
    assert missing.status_code == 404 and "Route GET" in missing.json()["message"]


def test_gone_after_requests_and_v3_faults(sim: SimulatorServer, session: requests.Session) -> None:
    with_faults(sim, session, gone_after_requests=2)
    statuses = [list_tx(sim, session, **day_params(limit=1)).status_code for _ in range(4)]
    assert statuses == [200, 200, 410, 410]
    # v3 and v2 never go away with v1, and carry no deprecation warning.
    v3 = get(sim, session, "/extended/v3/transactions", limit=1)
    assert v3.status_code == 200 and "warning" not in v3.headers
    with_faults(sim, session, error_rate=1.0)
    assert get(sim, session, "/extended/v3/transactions", limit=1).status_code >= 500
    assert get(sim, session, "/extended/v2/burn-blocks", limit=1).status_code >= 500
    with_faults(sim, session, corrupt="wrong_type")
    rows = get(sim, session, "/extended/v3/transactions", limit=5).json()["results"]
    assert any(isinstance(r["block"]["height"], str) for r in rows)


def test_v3_and_v2_share_the_rate_limit(chain: SyntheticChain, session: requests.Session) -> None:
    with SimulatorServer(chain, rpm_limit=2) as limited:
        assert get(limited, session, "/extended/v3/transactions", limit=1).status_code == 200
        assert get(limited, session, "/extended/v2/burn-blocks", limit=1).status_code == 200
        refused = get(limited, session, "/extended/v2/blocks", limit=1)
        assert refused.status_code == 429 and refused.headers["retry-after"]


def test_v3_cursor_is_read_like_the_real_server(sim: SimulatorServer, session: requests.Session) -> None:
    """resolveTransactionCursor + the txs column types: pattern 400, out-of-range 500, H:0:0, rows <= cursor."""
    path = "/extended/v3/transactions"
    for bad in ("12:3", "a:1:2", "1:2:3:4", "-1:0:0", "\u0661:0:0"):  # Arabic-Indic digit: not [0-9]
        answer = get(sim, session, path, cursor=bad)
        assert answer.status_code == 400, bad
        assert answer.json()["message"] == 'querystring/cursor must match pattern "^[0-9]+:[0-9]+:[0-9]+$"'
    for bad, kind in (
        ("100:2147483647:2147483647", "smallint"),
        ("100:0:32768", "smallint"),
        ("2147483648:0:1", "integer"),
    ):
        answer = get(sim, session, path, cursor=bad)
        assert answer.status_code == 500, bad
        assert answer.json()["message"].endswith(f"is out of range for type {kind}")
    assert sim.blocks.cursors_received[-1] == "2147483648:0:1"  # every cursor is recorded, bad ones too
    tip = get(sim, session, path, limit=1).json()["results"][0]["block"]["height"]
    height = tip - 100
    whole = get(sim, session, path, limit=50, cursor=f"{height}:0:0").json()
    top = get(sim, session, path, limit=50, cursor=f"{height}:2147483647:32767").json()
    assert whole["results"] == top["results"] and whole["results"][0]["block"]["height"] <= height
    # Any other cursor is used as sent: (H, 5, 3) is below every anchored row of H (microblock_sequence I32_MAX).
    below = get(sim, session, path, limit=5, cursor=f"{height}:5:3").json()
    assert all(r["block"]["height"] < height for r in below["results"])
    middle = get(sim, session, path, limit=5, cursor=f"{height}:2147483647:1").json()["results"]
    assert [r["block"]["tx_index"] for r in middle if r["block"]["height"] == height] in ([1, 0], [0], [])
    assert get(sim, session, path, cursor="0:0:0").json() == {
        "limit": 20,
        "total": 0,
        "cursor": {"next": None, "previous": None, "current": None},
        "results": [],
    }


def test_burn_blocks_total_is_the_stacks_tip_height(sim: SimulatorServer, session: requests.Session) -> None:
    """pg-store-v2.ts getBurnBlocks: `total` = chain_tip.block_count, not a count of burn blocks; 0 when empty."""
    listing = get(sim, session, "/extended/v2/burn-blocks", limit=30).json()
    tip_height = get(sim, session, "/extended/v2/blocks", limit=1).json()["results"][0]["height"]
    assert listing["total"] == tip_height
    # Heights without a tenure are skipped. A day has burn_gaps_per_day of them at seeded places, so the newest 30
    # may have none (it depends on today's date): 10 pages (over two days of Bitcoin blocks) always hold some.
    heights = [b["burn_block_height"] for b in listing["results"]]
    for offset in range(30, 300, 30):
        if heights[0] - heights[-1] + 1 > len(heights):
            break
        page = get(sim, session, "/extended/v2/burn-blocks", limit=30, offset=offset).json()
        heights += [b["burn_block_height"] for b in page["results"]]
    assert heights == sorted(set(heights), reverse=True)  # newest first, each once
    assert heights[0] - heights[-1] + 1 > len(heights)
    gap = next(h for h in range(heights[-1], heights[0]) if h not in heights)
    assert get(sim, session, f"/extended/v2/burn-blocks/{gap}").json()["message"] == "Not found"
    assert get(sim, session, f"/extended/v2/burn-blocks/{gap}/blocks").json()["message"] == "Burn block not found"
    past_end = get(sim, session, "/extended/v2/burn-blocks", limit=30, offset=10**7).json()
    assert past_end["results"] == [] and past_end["total"] == 0
