"""One listing across the runs of an in-process backfill (hiro/backfill_listing.py through ingest.ingest_days): the
simulator over real HTTP with real round trips, a real DuckDB file. The next run's first day is listed while a run
ends; that must change nothing but the time: days land whole with the same content, a failing day fails alone in
the run that owns it, each request is counted once, and a stop or the backfill's end gives up what was listed
ahead."""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path

import duckdb
import pytest

from stx_pipeline.hiro import HiroClient, QuotaExhaustedError
from stx_pipeline.hiro.backfill_listing import LOOKAHEAD_DAYS, BackfillListing, active, backfill_listing
from stx_pipeline.hiro.strategy import DayFetcher
from stx_pipeline.ingest import IngestResult, ingest_days
from stx_pipeline.simulator import ChainConfig, FaultConfig, SimulatorServer, SyntheticChain
from stx_pipeline.storage import day_content_hash, replace_day
from stx_pipeline.storage.backend import DuckDBFileStorage
from stx_pipeline_tests.conftest import days

SIX = days("2025-03-01", 6)
LOG = logging.getLogger("test_backfill_listing")


@pytest.fixture(scope="module")
def chain() -> SyntheticChain:
    chain = SyntheticChain(ChainConfig(seed=5, txs_per_day=600))  # ~12 pages a day
    for day in SIX:
        chain.day_transactions(day)  # generated before any clock runs
    return chain


def pages(chain: SyntheticChain, wanted: list[dt.date]) -> int:
    return sum(-(-chain.day_total(d) // 50) for d in wanted)


def open_shared(shared: BackfillListing, url: str, **client: object) -> None:
    shared.open(
        lambda log: HiroClient(url, pool_size=16, logger=log, **client),  # type: ignore[arg-type]
        lambda hiro, log: DayFetcher(hiro, "v1", logger=log),
    )


def run(shared: BackfillListing, db: Path, wanted: list[dt.date]) -> IngestResult:
    """One run of the backfill, as the asset does it inside `backfill --in-process`."""
    assert shared.client is not None and shared.fetcher is not None
    return ingest_days(wanted, shared.client, shared.fetcher, DuckDBFileStorage(str(db)), LOG, shared=shared)


def hashes(db: Path, wanted: list[dt.date]) -> dict[dt.date, str]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return {d: day_content_hash(conn, d) for d in wanted}


def wait_for_requests(sim: SimulatorServer, at_least: int, timeout_s: float = 10.0) -> int:
    deadline = time.monotonic() + timeout_s
    while (sent := sim.stats()["requests"]) < at_least and time.monotonic() < deadline:
        time.sleep(0.02)
    return sent


def test_the_next_runs_first_day_is_listed_between_runs_and_every_day_lands_whole(chain, tmp_path):
    db = tmp_path / "shared.duckdb"
    with SimulatorServer(chain, FaultConfig(latency_ms=20)) as sim:
        with backfill_listing(SIX) as shared:
            assert active() is shared
            open_shared(shared, sim.url)
            first = run(shared, db, SIX[:2])
            # Between the runs (Dagster closing run 1, opening run 2) the next days go on being listed.
            ahead = SIX[: 2 + LOOKAHEAD_DAYS]
            between = wait_for_requests(sim, pages(chain, ahead))
            time.sleep(0.2)
            assert sim.stats()["requests"] == between == pages(chain, ahead)  # and no further
            second = run(shared, db, SIX[2:4])
            third = run(shared, db, SIX[4:])
        assert active() is None
        server = sim.stats()
        with HiroClient(sim.url) as hiro:  # the reference: each day listed alone
            alone = [DayFetcher(hiro, "v1").fetch(day) for day in SIX]
    with duckdb.connect(str(tmp_path / "alone.duckdb")) as conn:
        for f in alone:
            replace_day(conn, f.day, f.table)
    results = (first, second, third)
    assert all(not r.failures and r.duplicates == 0 and not r.mismatched for r in results)
    assert [r.written_days for r in results] == [[d.isoformat() for d in SIX[i : i + 2]] for i in (0, 2, 4)]
    assert hashes(db, SIX) == hashes(tmp_path / "alone.duckdb", SIX)
    # No page past a day's end (later days sized by the previous day's total, across runs too), and each
    # request counted in exactly one run.
    assert server["requests"] == pages(chain, SIX)
    assert sum(r.stats["requests"] for r in results) == pages(chain, SIX)


def test_a_failing_first_day_of_a_run_fails_in_that_run_alone(chain, tmp_path):
    """Day 3, listed while run 1 ends, answers 500: run 1 is whole and clean; run 2 has day 3 failed, day 4 written."""
    bad = SIX[2]
    db = tmp_path / "f.duckdb"
    faults = FaultConfig(latency_ms=20, fail_days=[bad.isoformat()])
    with SimulatorServer(chain, faults) as sim, backfill_listing(SIX[:4]) as shared:
        open_shared(shared, sim.url, max_attempts=2, max_backoff_s=0.1)
        first = run(shared, db, SIX[:2])
        second = run(shared, db, SIX[2:4])
    assert not first.failures and first.written_days == [d.isoformat() for d in SIX[:2]]
    assert list(second.failures) == [bad] and "HTTP 500" in str(second.failures[bad])
    assert second.written_days == [SIX[3].isoformat()]
    with duckdb.connect(str(db), read_only=True) as conn:
        stored = dict(conn.execute("SELECT partition_date, count(*) FROM stx_transactions GROUP BY 1").fetchall())
    assert stored == {d: chain.day_total(d) for d in SIX[:4] if d != bad}


def test_a_run_that_stops_gives_up_the_day_listed_ahead(chain, tmp_path):
    """The quota runs out in run 1 (a stop): the day listed ahead for run 2 sends nothing once run 1 has returned."""
    db = tmp_path / "s.duckdb"
    quota = pages(chain, SIX[:1]) + 3  # run 1 meets the quota
    with (
        SimulatorServer(chain, FaultConfig(latency_ms=30, monthly_quota=quota)) as sim,
        backfill_listing(SIX[:4]) as shared,
    ):
        open_shared(shared, sim.url, max_attempts=2)
        first = run(shared, db, SIX[:2])
        after = sim.stats()["requests"]
        time.sleep(0.5)
        assert sim.stats()["requests"] == after  # the day listed ahead sent nothing more
    # Whichever of run 1's days met the quota (day 2 is listed while day 1 drains), the run stopped there.
    assert len(first.failures) == 1 and isinstance(next(iter(first.failures.values())), QuotaExhaustedError)
    assert first.written_days == [d.isoformat() for d in SIX[: len(first.written_days)]]
    assert after <= quota + 4 * (1 + LOOKAHEAD_DAYS)  # what the page threads had in flight


def test_a_run_that_is_not_the_next_drops_the_day_listed_ahead(chain, tmp_path):
    """Run 2 of the plan fails before its asset runs (or is skipped): run 3 starts a listing at its own days; the
    day listed for run 2 is given up, not kept."""
    db = tmp_path / "n.duckdb"
    with SimulatorServer(chain, FaultConfig(latency_ms=20)) as sim:
        with backfill_listing(SIX) as shared:
            open_shared(shared, sim.url)
            first = run(shared, db, SIX[:2])
            third = run(shared, db, SIX[4:])
        sent = sim.stats()["requests"]
    assert not first.failures and not third.failures
    assert third.stored == {d: chain.day_total(d) for d in SIX[4:]}
    # Days 3.. were listed ahead (at most LOOKAHEAD_DAYS of them) and given up.
    assert pages(chain, SIX[:2] + SIX[4:]) < sent <= pages(chain, SIX[: 2 + LOOKAHEAD_DAYS] + SIX[4:])
    with duckdb.connect(str(db), read_only=True) as conn:
        assert (
            conn.execute("SELECT count(*) FROM stx_transactions WHERE partition_date IN (?, ?)", SIX[2:4]).fetchone()[0]
            == 0
        )


def test_closing_the_backfill_gives_up_what_was_listed_ahead(chain, tmp_path):
    with SimulatorServer(chain, FaultConfig(latency_ms=20)) as sim:
        with backfill_listing(SIX) as shared:
            open_shared(shared, sim.url)
            run(shared, db := tmp_path / "c.duckdb", SIX[:2])
        closed = sim.stats()["requests"]
        time.sleep(0.5)
        assert sim.stats()["requests"] == closed
    assert closed <= pages(chain, SIX[: 2 + LOOKAHEAD_DAYS])
    assert shared.client is not None and active() is None
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute("SELECT count(DISTINCT partition_date) FROM stx_transactions").fetchone()[0] == 2


def test_days_outside_the_plan_are_not_the_backfills():
    shared = BackfillListing(SIX[:4])
    assert shared.index_of(SIX[1:3]) == 1
    assert shared.index_of(SIX[3:5]) is None  # runs past the plan's end
    assert shared.index_of([SIX[0], SIX[2]]) is None  # not consecutive in the plan
    with backfill_listing(SIX), pytest.raises(RuntimeError, match="already running"), backfill_listing(SIX):
        pass


def test_started_early_the_first_day_is_listed_before_the_first_run_and_counted_in_it(chain, tmp_path):
    """`backfill --in-process` starts the listing once the plan is known, while Dagster sets up the first run."""
    db = tmp_path / "e.duckdb"
    with SimulatorServer(chain, FaultConfig(latency_ms=20)) as sim, backfill_listing(SIX[:4]) as shared:
        shared.start(
            lambda log: HiroClient(sim.url, pool_size=16, logger=log),
            lambda hiro, log: DayFetcher(hiro, "v1", logger=log),
        )
        assert wait_for_requests(sim, pages(chain, SIX[:1])) >= pages(chain, SIX[:1])  # before any run
        first = run(shared, db, SIX[:2])
        second = run(shared, db, SIX[2:4])
        sent = sim.stats()["requests"]
    assert not first.failures and not second.failures
    assert first.stored == {d: chain.day_total(d) for d in SIX[:2]}
    assert second.stored == {d: chain.day_total(d) for d in SIX[2:4]}
    assert sent == pages(chain, SIX[:4]) == first.stats["requests"] + second.stats["requests"]


@pytest.mark.slow  # Dagster runs in this process (a few seconds)
def test_backfill_in_process_runs_share_the_listing_through_dagster(tmp_path, monkeypatch):
    """`run_in_process` (the CLI's --in-process) with a real instance: between run 1's end and run 2's start the
    simulator is already answering run 2's first day; every day is materialized whole, nothing fetched twice."""
    from rich.console import Console

    from stx_pipeline.devtools.dagster_env import pipeline_env
    from stx_pipeline.operations.backfill import run_in_process
    from stx_pipeline.settings import Settings

    four = SIX[:4]
    with SimulatorServer(
        chain_small := SyntheticChain(ChainConfig(seed=3, txs_per_day=300)), FaultConfig(latency_ms=40)
    ) as sim:
        for key, value in pipeline_env(tmp_path, sim.url, STX_DAYS_PER_RUN="2", STX_START_DATE=str(SIX[0])).items():
            monkeypatch.setenv(key, value)
        (tmp_path / "data").mkdir(parents=True, exist_ok=True)
        seen: list[int] = []

        def between_runs(first: dt.date, last: dt.date, success: bool) -> None:
            if last == four[1]:
                seen.append(wait_for_requests(sim, pages(chain_small, four[:3])))

        outcome = run_in_process(four, Settings.from_env(), Console(quiet=True), on_batch=between_runs)
        sent = sim.stats()["requests"]
    assert outcome.failed == [] and outcome.exit_code == 0
    assert seen == [pages(chain_small, four[:3])]  # day 3 listed before run 2 began
    assert sent == pages(chain_small, four)
    with duckdb.connect(str(tmp_path / "data" / "wallet_metrics.duckdb"), read_only=True) as conn:
        stored = dict(conn.execute("SELECT partition_date, count(*) FROM stx_transactions GROUP BY 1").fetchall())
    assert stored == {d: chain_small.day_total(d) for d in four}
