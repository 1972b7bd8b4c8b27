"""The v3 cursor listing (issue #6): same days as v1, the auto switch on 410, failures, and calls per day.

Real HTTP against the simulator on 127.0.0.1; asset runs materialize into real DuckDB files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from stx_pipeline.definitions import defs
from stx_pipeline.devtools.resources import pipeline_resources
from stx_pipeline.hiro import HiroClient, fetch_day
from stx_pipeline.hiro.strategy import DayFetcher
from stx_pipeline.hiro.v3 import V3DayLister
from stx_pipeline.schema import LISTING_COLUMNS
from stx_pipeline.settings import Settings, SettingsError
from stx_pipeline.simulator import ChainConfig, FaultConfig, SimulatorServer, SyntheticChain
from stx_pipeline.storage import day_content_hash, day_counts, duplicate_tx_ids
from stx_pipeline_tests.conftest import days, failure_message

# As the code location builds it from this environment (conftest: STX_START_DATE=2024-11-01).
stx_transactions = defs().get_assets_def("stx_transactions")

FIRST, LAST = "2025-03-01", "2025-03-07"
WEEK = days(FIRST, 7)
DAY = WEEK[0]
FIXED_INGEST = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def module_sim(small_chain: SyntheticChain) -> Iterator[SimulatorServer]:
    with SimulatorServer(small_chain, FaultConfig()) as sim:
        yield sim


@pytest.fixture
def sim(module_sim: SimulatorServer) -> Iterator[SimulatorServer]:
    module_sim.faults = FaultConfig()
    yield module_sim
    module_sim.faults = FaultConfig()


@pytest.fixture(scope="module")
def v1_week(module_sim: SimulatorServer, tmp_path_factory: pytest.TempPathFactory) -> dict[dt.date, str]:
    """Content hashes of the week stored through v1: the reference every v3 run must reproduce."""
    module_sim.faults = FaultConfig()
    db = tmp_path_factory.mktemp("v1") / "v1.duckdb"
    result = materialize(module_sim, db, strategy="v1", first=FIRST, last=LAST)
    assert result.success
    assert run_metadata(result)["api_strategy"] == "v1"
    return content_hashes(db, WEEK)


def materialize(
    sim: SimulatorServer,
    db: Path,
    *,
    strategy: str,
    partition: str | None = None,
    first: str | None = None,
    last: str | None = None,
    instance: dg.DagsterInstance | None = None,
    **hiro: Any,
) -> dg.ExecuteInProcessResult:
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last} if first else {}
    return dg.materialize(
        [stx_transactions],
        resources=pipeline_resources(sim.url, db, strategy=strategy, **hiro),
        partition_key=partition,
        tags=tags,
        raise_on_error=False,
        instance=instance,
    )


def content_hashes(db: Path, wanted: list[dt.date]) -> dict[dt.date, str]:
    """Per-day hashes over the columns both listings give (v3 has no microblock_sequence: see microblocks())."""
    with duckdb.connect(str(db), read_only=True) as conn:
        return {d: day_content_hash(conn, d, LISTING_COLUMNS) for d in wanted}


def microblocks(db: Path) -> dict[dt.date, set[int | None]]:
    """The microblock_sequence values stored per day: v1's 2147483647 ("not in a microblock"), v3's NULL."""
    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute("SELECT DISTINCT partition_date, microblock_sequence FROM stx_transactions").fetchall()
    out: dict[dt.date, set[int | None]] = {}
    for day, value in rows:
        out.setdefault(day, set()).add(value)
    return out


def run_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    materialization = result.asset_materializations_for_node("stx_transactions")[-1]
    return {key: value.value for key, value in materialization.metadata.items()}


def gone_answers(sim: SimulatorServer) -> int:
    """410s answered so far (the module's simulator is shared: compare before and after)."""
    return int(sim.stats()["by_status"].get("410", 0))


class RecordingClient(HiroClient):
    """Counts the calls per endpoint family, to measure what a day costs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: Counter[str] = Counter()

    def get_json(self, path: str, params: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        family = "/".join(part if not part.isdigit() else "{n}" for part in path.split("/"))
        self.calls[family] += 1
        return super().get_json(path, params, **kwargs)


# --- same days through both strategies -------------------------------------------------------------


@pytest.mark.slow  # a long in-process scenario (several seconds): make test
def test_a_week_through_v3_equals_the_week_through_v1(sim, small_chain, v1_week, tmp_path):
    db = tmp_path / "v3.duckdb"
    gone_before = gone_answers(sim)
    result = materialize(sim, db, strategy="v3", first=FIRST, last=LAST)
    assert result.success
    assert content_hashes(db, WEEK) == v1_week
    with duckdb.connect(str(db), read_only=True) as conn:
        assert day_counts(conn, WEEK) == {d: small_chain.day_total(d) for d in WEEK}
        assert duplicate_tx_ids(conn) == 0
    metadata = run_metadata(result)
    assert metadata["api_strategy"] == "v3"
    assert metadata["switched_to_v3"] is False
    assert metadata["deprecation_notices"] == 0  # v1 was never asked
    assert {entry["strategy"] for entry in metadata["per_day"]} == {"v3"}
    assert all(c.passed for c in result.get_asset_check_evaluations())
    assert gone_answers(sim) == gone_before


def test_v3_records_convert_to_the_same_arrow_table_as_v1(sim):
    """Column by column, not only through the stored hash: the field mapping is exact."""
    with HiroClient(sim.url, requests_per_minute=0) as client:
        v1 = fetch_day(client, DAY)
        v3 = V3DayLister(client).fetch_day(DAY)
    v1_table, v3_table = v1.table.drop(["ingested_at"]), v3.table.drop(["ingested_at"])
    for name in v1_table.column_names:
        if name != "microblock_sequence":
            assert v3_table.column(name).equals(v1_table.column(name)), name
    # v3 cannot tell the microblock sequence: NULL, not v1's "outside a microblock" constant.
    assert set(v1_table.column("microblock_sequence").to_pylist()) == {2147483647}
    assert v3_table.column("microblock_sequence").null_count == len(v3_table)
    assert v3.total == v1.total and v3.strategy == "v3" and v1.strategy == "v1"
    # The table covers the columns the issue names, with v3 values where v1 has them.
    rows = v3.table.to_pylist()
    sponsored = [r for r in rows if r["sponsored"]]
    assert sponsored and all(r["sponsor_address"] for r in sponsored)
    assert {r["tx_type"] for r in rows} >= {"coinbase", "tenure_change", "contract_call", "token_transfer"}


@pytest.mark.slow  # days fetched twice under injected faults (~15 s)
def test_v3_survives_transient_faults_with_the_same_content(sim, v1_week, tmp_path):
    sim.faults = FaultConfig(
        error_rate=0.1, reset_rate=0.03, truncate_rate=0.03, malformed_json_rate=0.03, burst_429_every=6, fault_seed=3
    )
    db = tmp_path / "v3-faults.duckdb"
    result = materialize(sim, db, strategy="v3", partition=DAY.isoformat(), max_attempts=10)
    assert result.success
    assert run_metadata(result)["retries"] > 0
    assert content_hashes(db, [DAY]) == {DAY: v1_week[DAY]}


# --- auto: the sunset arriving mid-run -------------------------------------------------------------


@pytest.mark.slow  # a long in-process scenario (several seconds): make test
def test_auto_switches_to_v3_when_v1_starts_answering_410_mid_run(sim, small_chain, v1_week, tmp_path):
    pages_per_day = math.ceil(small_chain.day_total(DAY) / 50)
    # v1 dies during the third day's pages.
    sim.faults = FaultConfig(gone_after_requests=2 * pages_per_day + 3)
    db = tmp_path / "auto.duckdb"
    gone_before = gone_answers(sim)
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(sim, db, strategy="auto", first=FIRST, last=LAST, instance=instance)
    assert result.success, failure_message(result)
    assert content_hashes(db, WEEK) == v1_week  # complete days, the same rows
    metadata = run_metadata(result)
    assert metadata["api_strategy"] == "v3"
    assert metadata["switched_to_v3"] is True
    assert [e["strategy"] for e in metadata["per_day"]] == ["v1", "v1"] + ["v3"] * 5
    assert metadata["deprecation_notices"] == 1  # logged once per run, not once per page
    # The switch is remembered: 410s only for the pages of the day that met the sunset (fetched
    # concurrently), never v1 again for the later days.
    assert 1 <= gone_answers(sim) - gone_before <= pages_per_day
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert sum("switching this run to the v3 cursor listing" in m for m in messages) == 1
    assert sum("Deprecation notice from the API" in m for m in messages) == 1


def test_auto_while_v1_answers_stays_on_v1(sim, tmp_path):
    result = materialize(sim, tmp_path / "auto-v1.duckdb", strategy="auto", partition=DAY.isoformat())
    assert result.success
    metadata = run_metadata(result)
    assert metadata["api_strategy"] == "v1" and metadata["switched_to_v3"] is False
    assert metadata["deprecation_notices"] == 1


def test_v1_alone_fails_on_410_with_a_hint(sim, tmp_path):
    sim.faults = FaultConfig(gone=True)
    result = materialize(sim, tmp_path / "v1.duckdb", strategy="v1", partition=DAY.isoformat())
    assert not result.success
    message = failure_message(result)
    assert "HTTP 410" in message and "STX_API_STRATEGY=v3" in message


# --- STX_API_STRATEGY=v3 alone ---------------------------------------------------------------------


def test_strategy_comes_from_the_environment(monkeypatch):
    from stx_pipeline.resources import resources_from_env

    monkeypatch.setenv("STX_API_STRATEGY", "v3")
    settings = Settings.from_env()
    assert settings.api_strategy == "v3"
    assert resources_from_env(settings)["hiro"].strategy == "v3"
    monkeypatch.delenv("STX_API_STRATEGY")
    assert Settings.from_env().api_strategy == "auto"
    monkeypatch.setenv("STX_API_STRATEGY", "v2")
    with pytest.raises(SettingsError, match="STX_API_STRATEGY"):
        Settings.from_env()


@pytest.mark.slow  # a long in-process scenario (several seconds): make test
def test_v3_alone_works_when_v1_is_gone(sim, v1_week, tmp_path, monkeypatch):
    monkeypatch.setenv("STX_API_STRATEGY", "v3")
    sim.faults = FaultConfig(gone=True)
    db = tmp_path / "v3-only.duckdb"
    gone_before = gone_answers(sim)
    result = materialize(sim, db, strategy=Settings.from_env().api_strategy, partition=DAY.isoformat())
    assert result.success
    assert content_hashes(db, [DAY]) == {DAY: v1_week[DAY]}
    assert gone_answers(sim) == gone_before  # v1 never asked
    assert run_metadata(result)["switched_to_v3"] is False


# --- bad v3 answers fail the day clearly -----------------------------------------------------------


@pytest.mark.parametrize(
    ("faults", "needle"),
    [
        (FaultConfig(corrupt="missing_field"), "field 'sender.address' is missing"),
        (FaultConfig(corrupt="wrong_type"), "field 'block.height' should be an integer"),
        (FaultConfig(short_page=True), "total_tx_count"),
        (FaultConfig(fail_days=[DAY]), "HTTP 500"),
    ],
)
def test_bad_v3_answers_fail_the_day_and_write_nothing(sim, tmp_path, faults, needle):
    sim.faults = faults
    db = tmp_path / "bad.duckdb"
    result = materialize(sim, db, strategy="v3", partition=DAY.isoformat(), max_attempts=2, max_backoff_s=0.1)
    assert not result.success
    message = failure_message(result)
    assert needle in message, message
    assert DAY.isoformat() in message
    if "field" in needle:
        assert "transaction 0x" in message and "at offset" in message  # names the tx_id and its offset
    assert not db.exists() or content_hashes(db, [DAY])[DAY] == hashlib.md5(b"").hexdigest()


def test_unknown_v3_enum_values_are_stored_as_they_come(sim, tmp_path):
    sim.faults = FaultConfig(corrupt="unknown_enum")
    db = tmp_path / "enum.duckdb"
    assert materialize(sim, db, strategy="v3", partition=DAY.isoformat()).success
    with duckdb.connect(str(db), read_only=True) as conn:
        row = conn.execute("SELECT count(*) FROM stx_transactions WHERE tx_status = 'future_status'").fetchone()
    assert row is not None and row[0] > 0


# --- calls per day -----------------------------------------------------------------------------------


def test_calls_per_day_under_each_strategy(sim, small_chain):
    """v1 costs its pages; v3 its pages (one per height run at most more) plus a bounded boundary search."""
    measured: dict[str, list[int]] = {"v1": [], "v3": [], "v3_boundary": []}
    with RecordingClient(sim.url, requests_per_minute=0) as client:
        lister = V3DayLister(client, page_workers=1)  # one segment per run: pages <= ceil(rows / 50) + runs
        for index, day in enumerate(WEEK[:3]):
            total = small_chain.day_total(day)
            client.calls.clear()
            v1 = fetch_day(client, day)
            assert v1.requests == sum(client.calls.values()) == math.ceil(total / 50)
            assert set(client.calls) == {"/extended/v1/tx"}
            measured["v1"].append(v1.requests)

            client.calls.clear()
            v3 = lister.fetch_day(day)
            calls = dict(client.calls)
            assert v3.requests == sum(calls.values())
            measured["v3"].append(v3.requests)
            measured["v3_boundary"].append(v3.boundary_requests)
            # Tip (first day only), by-block-time, a probe or two, ~6 overlapping burn-block pages, the top height.
            assert v3.boundary_requests <= (11 if index == 0 else 10), calls
            assert calls["/extended/v2/blocks/by-block-time/{n}"] == 1
            assert calls["/extended/v2/burn-blocks/{n}/blocks"] == 1
            runs = len(lister.day_blocks(day).runs)
            assert calls["/extended/v3/transactions"] <= math.ceil(total / 50) + runs
    print(f"calls per day: {measured}")


def test_boundary_search_without_by_block_time_falls_back_to_a_burn_block_search(sim, v1_week):
    sim.faults = FaultConfig(no_by_block_time=True)
    with RecordingClient(sim.url, requests_per_minute=0) as client:
        lister = V3DayLister(client)
        fetched = [lister.fetch_day(day) for day in WEEK[:2]]
        assert lister.by_block_time_available is False
        # The missing route was asked once, then remembered.
        assert client.calls["/extended/v2/blocks/by-block-time/{n}"] == 1
        with HiroClient(sim.url, requests_per_minute=0) as v1_client:
            for day, v3 in zip(WEEK[:2], fetched, strict=True):
                v1 = fetch_day(v1_client, day)
                assert v3.table.column("tx_id").to_pylist() == v1.table.column("tx_id").to_pylist()
                assert v3.boundary_requests <= 12


def test_days_outside_the_chain_are_empty(sim, small_chain):
    with HiroClient(sim.url, requests_per_minute=0) as client:
        lister = V3DayLister(client)
        before = small_chain.config.genesis - dt.timedelta(days=1)
        assert lister.fetch_day(before).total == 0
        genesis = lister.fetch_day(small_chain.config.genesis)
        assert genesis.total == small_chain.day_total(small_chain.config.genesis)


def test_segments_are_paged_concurrently_and_still_match(sim, small_chain):
    with HiroClient(sim.url, requests_per_minute=0) as client:
        v3 = V3DayLister(client, page_workers=4).fetch_day(DAY)
        v1 = fetch_day(client, DAY)
    assert v3.table.column("tx_id").to_pylist() == v1.table.column("tx_id").to_pylist()
    # Two segments at 400 tx/day (MIN_PAGES_PER_SEGMENT): one partial page more at most per segment.
    assert v3.pages <= math.ceil(v1.total / 50) + 2


def test_day_fetcher_switches_once_and_remembers(sim):
    sim.faults = FaultConfig(gone=True)
    gone_before = gone_answers(sim)
    with HiroClient(sim.url, requests_per_minute=0) as client:
        fetcher = DayFetcher(client, "auto", page_workers=1)
        first = fetcher.fetch(WEEK[0])
        second = fetcher.fetch(WEEK[1])
    assert (first.strategy, second.strategy) == ("v3", "v3")
    assert fetcher.switched_to_v3 and fetcher.active == "v3"
    assert gone_answers(sim) - gone_before == 1
    with pytest.raises(ValueError, match="unknown API strategy"):
        DayFetcher(client, "v2")


@pytest.mark.parametrize("by_block_time", [True, False])
def test_boundary_search_survives_gaps_in_burn_heights(by_block_time):
    """A third of the burn heights without a tenure (pre-Nakamoto-like): listing offsets lie far below
    `tip - height`; the search measures the gap density instead of reading `total` (the Stacks tip height)."""
    chain = SyntheticChain(ChainConfig(seed=5, txs_per_day=400, burn_gaps_per_day=48))
    day = dt.date(2025, 3, 1)
    faults = FaultConfig(no_by_block_time=not by_block_time)
    with SimulatorServer(chain, faults) as gappy, HiroClient(gappy.url, requests_per_minute=0) as client:
        found = V3DayLister(client, page_workers=1).day_blocks(day)
        heights = {chain.burn_height(t) for t in chain.day_tenures(day)}
        assert {b.height for b in found.burn_blocks} == heights
        assert found.total == chain.day_total(day)
        assert found.requests <= 14, found.requests
        fetched = V3DayLister(client).fetch_day(day)
        v1 = fetch_day(client, day)
    assert fetched.table.column("tx_id").to_pylist() == v1.table.column("tx_id").to_pylist()


# --- issue #10: 14 days with inversions, big tenures and gaps, through v1, v3 and auto ------------------

FORTNIGHT = days("2025-03-01", 14)
CURSOR_TYPES = (2_147_483_647, 2_147_483_647, 32_767)  # block_height, microblock_sequence integer; tx_index smallint


def _split_ends(chain: SyntheticChain, day: dt.date) -> tuple[bool, bool]:
    """(start, end): whether an inversion splits the day's heights at its first / last midnight."""
    tenures = chain.day_tenures(day)
    members = set(tenures)
    previous = set(chain.day_tenures(day - dt.timedelta(days=1)))
    start = any(t in previous for t in range(tenures[0], tenures[0] + 8))
    end = any(t not in members for t in range(tenures[-1] - 8, tenures[-1]))
    return start, end


@pytest.mark.slow  # a fortnight fetched three ways (~30 s)
def test_fortnight_lands_identically_through_v1_v3_and_auto(tmp_path):
    chain = SyntheticChain(ChainConfig(seed=11, txs_per_day=1500))
    # The premises: inversions at both midnights of some days, tenures over a v3 page, gaps in burn heights.
    ends = [_split_ends(chain, d) for d in FORTNIGHT]
    assert any(start and end for start, end in ends)
    assert sum(start for start, _ in ends) >= 3 and sum(end for _, end in ends) >= 3
    assert any(chain.tenure_tx_count(t) > 50 for d in FORTNIGHT for t in chain.day_tenures(d))
    tenures = [t for d in FORTNIGHT for t in chain.day_tenures(d)]
    burn = sorted(chain.burn_height(t) for t in tenures)
    assert burn[-1] - burn[0] + 1 > len(burn)  # burn heights without a tenure
    first, last = FORTNIGHT[0].isoformat(), FORTNIGHT[-1].isoformat()
    expected_counts = {d: chain.day_total(d) for d in FORTNIGHT}

    with SimulatorServer(chain, FaultConfig()) as sim:
        hashes: dict[str, dict[dt.date, str]] = {}
        for strategy in ("v1", "v3", "auto"):
            if strategy == "auto":
                # v1 answers 410 from inside the fifth day's pages on.
                pages_before = sum(math.ceil(expected_counts[d] / 50) for d in FORTNIGHT[:4])
                sim.faults = FaultConfig(gone_after_requests=pages_before + 5)
            requests_before, cursors_before = sim.stats()["requests"], len(sim.blocks.cursors_received)
            db = tmp_path / f"{strategy}.duckdb"
            result = materialize(sim, db, strategy=strategy, first=first, last=last)
            assert result.success, failure_message(result)
            hashes[strategy] = content_hashes(db, FORTNIGHT)
            with duckdb.connect(str(db), read_only=True) as conn:
                assert day_counts(conn, FORTNIGHT) == expected_counts
                assert duplicate_tx_ids(conn) == 0
            metadata = run_metadata(result)
            per_day = {e["day"]: e for e in metadata["per_day"]}
            cursors = list(sim.blocks.cursors_received)[cursors_before:]
            if strategy == "v1":
                # The v1 path as before: ceil(total / 50) pages a day, nothing else asked.
                assert all(per_day[d.isoformat()]["requests"] == math.ceil(expected_counts[d] / 50) for d in FORTNIGHT)
                assert sim.stats()["requests"] - requests_before == sum(e["requests"] for e in per_day.values())
                assert cursors == [] and microblocks(db) == {d: {2147483647} for d in FORTNIGHT}
            if strategy == "v3":
                assert microblocks(db) == {d: {None} for d in FORTNIGHT}
            if strategy == "auto":
                assert metadata["switched_to_v3"] is True
                assert [e["strategy"] for e in metadata["per_day"]] == ["v1"] * 4 + ["v3"] * 10
            # Every cursor the v3 path sent fits the real columns' types (the simulator would have answered 500).
            if strategy != "v1":
                assert cursors, "the v3 path sent no cursor"
                for cursor in cursors:
                    numbers = [int(n) for n in cursor.split(":")]
                    assert len(numbers) == 3 and all(0 <= n <= m for n, m in zip(numbers, CURSOR_TYPES, strict=True))
        assert "500" not in sim.stats()["by_status"]
    assert hashes["v3"] == hashes["v1"]
    assert hashes["auto"] == hashes["v1"]
