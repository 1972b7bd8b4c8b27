"""Days listed one ahead on the shared pacer (DayFetcher.fetch_days through ingest.ingest_days): the simulator over
real HTTP with real round trips, a real DuckDB file. Overlap must change nothing but the time: days land whole
with the same content, a failing day fails alone, the budget holds, and a stop gives up the day listed ahead."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from pathlib import Path

import duckdb
import pytest

from stx_pipeline.days import day_window
from stx_pipeline.hiro import EndpointGoneError, HiroClient
from stx_pipeline.hiro.strategy import LOOKAHEAD_ROWS, DayFetcher
from stx_pipeline.hiro.transactions import first_batch
from stx_pipeline.ingest import IngestResult, ingest_days
from stx_pipeline.simulator import ChainConfig, FaultConfig, SimulatorServer, SyntheticChain
from stx_pipeline.storage import day_content_hash, replace_day
from stx_pipeline.storage.backend import DuckDBFileStorage
from stx_pipeline_tests.conftest import days

SIX = days("2025-03-01", 6)
LOG = logging.getLogger("test_day_overlap")


@pytest.fixture(scope="module")
def chain() -> SyntheticChain:
    chain = SyntheticChain(ChainConfig(seed=5, txs_per_day=600))  # ~12 pages a day
    for day in SIX:
        chain.day_transactions(day)  # generated before any clock runs
    return chain


def ingest(url: str, db: Path, wanted: list[dt.date], **client: object) -> IngestResult:
    """The asset's loop, v1 listing (a 410 is then a stop), 4 page workers, one day listed ahead."""
    with HiroClient(url, pool_size=16, **client) as hiro:  # type: ignore[arg-type]
        return ingest_days(wanted, hiro, DayFetcher(hiro, "v1"), DuckDBFileStorage(str(db)), LOG)


def hashes(db: Path, wanted: list[dt.date]) -> dict[dt.date, str]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return {d: day_content_hash(conn, d) for d in wanted}


def test_first_batch_trusts_three_quarters_of_the_hint_and_at_most_one_page_per_worker():
    assert first_batch(None, 4) == 1  # nothing known: the first page alone
    assert first_batch(120, 4) == 1  # 90 rows surely there: one full page
    assert first_batch(600, 4) == 4  # 450 rows: 9 pages sure, 4 workers
    assert first_batch(600, 16) == 9


@pytest.mark.slow  # a long in-process scenario (several seconds): make test
def test_overlapped_days_land_whole_with_the_content_of_days_fetched_one_at_a_time(chain, tmp_path):
    with SimulatorServer(chain, FaultConfig(latency_ms=30)) as sim:
        result = ingest(sim.url, tmp_path / "overlap.duckdb", SIX)
        # The reference: each day listed alone (no lookahead, no size hint), written the same way.
        with HiroClient(sim.url) as hiro:
            fetched = [DayFetcher(hiro, "v1").fetch(day) for day in SIX]
    with duckdb.connect(str(tmp_path / "alone.duckdb")) as conn:
        for f in fetched:
            replace_day(conn, f.day, f.table)
    totals = {day: chain.day_total(day) for day in SIX}
    assert not result.failures
    assert result.api_totals == totals
    assert result.stored == totals  # every day whole: rows stored = the API's total
    assert result.duplicates == 0
    assert hashes(tmp_path / "overlap.duckdb", SIX) == hashes(tmp_path / "alone.duckdb", SIX)
    # Later days' first pages went out together (sized by the previous day) and no page past a day's end.
    assert result.stats["requests"] == sum(-(-t // 50) for t in totals.values())


def test_a_failing_day_in_the_middle_fails_alone_while_the_days_around_it_land(chain, tmp_path):
    bad = SIX[2]
    with SimulatorServer(chain, FaultConfig(latency_ms=20, fail_days=[bad.isoformat()])) as sim:
        result = ingest(sim.url, tmp_path / "h.duckdb", SIX, max_attempts=2, max_backoff_s=0.1)
    assert list(result.failures) == [bad]
    assert "HTTP 500" in str(result.failures[bad])
    assert f"start_time={day_window(bad)[0]}&" in str(result.failures[bad])  # the bad day's own request
    assert result.written_days == [d.isoformat() for d in SIX if d != bad]
    assert result.not_attempted == []
    with duckdb.connect(str(tmp_path / "h.duckdb"), read_only=True) as conn:
        stored = dict(conn.execute("SELECT partition_date, count(*) FROM stx_transactions GROUP BY 1").fetchall())
    assert stored == {d: chain.day_total(d) for d in SIX if d != bad}


@pytest.mark.slow  # a long in-process scenario (several seconds): make test
def test_requests_never_exceed_the_budget_with_days_overlapping(chain, tmp_path):
    """600/min = one start per 0.1 s; 200 ms round trips put several requests of two days in flight at once."""
    rpm = 600
    samples: list[tuple[float, int]] = []
    done = threading.Event()
    with SimulatorServer(chain, FaultConfig(latency_ms=200), rpm_limit=rpm) as sim:

        def sample() -> None:  # the server's own count of requests received, every 20 ms
            while not done.is_set():
                samples.append((time.monotonic(), sim.stats()["requests"]))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            result = ingest(sim.url, tmp_path / "b.duckdb", SIX[:4], requests_per_minute=rpm)
        finally:
            done.set()
            sampler.join()
        server = sim.stats()
    assert not result.failures and server["sent_429"] == 0 and result.stats["rate_limited"] == 0
    pages = sum(-(-chain.day_total(d) // 50) for d in SIX[:4])
    assert server["requests"] == pages
    # Over every window of at least 1 s the server saw no more than the budget allows: window / 0.1 s, plus one
    # for the window's edges and one for the sampling's own 20 ms resolution.
    worst = 0.0
    for i, (t0, n0) in enumerate(samples):
        for t1, n1 in samples[i + 1 :]:
            if t1 - t0 >= 1.0:
                assert n1 - n0 <= (t1 - t0) / 0.1 + 2, f"{n1 - n0} requests in {t1 - t0:.2f} s"
                worst = max(worst, (n1 - n0) / ((t1 - t0) / 0.1))
    assert worst > 0.6  # and the overlap did use the budget (the windows ran near the limit)


def test_a_stop_error_gives_up_the_day_listed_ahead(chain, tmp_path):
    """v1 answers 410 from the 20th request (day 2 of 6, strategy v1: a stop). The day listed ahead is given up:
    nothing more is sent once ingest_days has returned, and the later days are not attempted."""
    faults = FaultConfig(latency_ms=100, gone_after_requests=20)
    with SimulatorServer(chain, faults) as sim:
        result = ingest(sim.url, tmp_path / "s.duckdb", SIX)
        after_return = sim.stats()["requests"]
        time.sleep(1.0)
        assert sim.stats()["requests"] == after_return  # no thread of the lookahead still sending
    (failed_day,) = result.failures
    assert isinstance(result.failures[failed_day], EndpointGoneError)
    assert failed_day == SIX[1]
    assert result.written_days == [SIX[0].isoformat()]
    assert result.not_attempted == SIX[2:]
    # The days stop at the 410s: the 19 good requests, then what was in flight or queued on the 8 page threads
    # as each day met its own 410 — not the 4 later days' ~50 requests.
    assert 20 <= after_return <= 20 + 16


def test_a_refused_key_stops_the_run_and_the_lookahead_sends_nothing_more(chain, tmp_path):
    """The quota: once the server says the month is spent, no later request leaves (client-wide)."""
    with SimulatorServer(chain, FaultConfig(latency_ms=50, monthly_quota=30)) as sim:
        result = ingest(sim.url, tmp_path / "q.duckdb", SIX, max_attempts=2)
        after_return = sim.stats()["requests"]
        time.sleep(0.5)
        assert sim.stats()["requests"] == after_return
    assert len(result.failures) == 1
    assert result.written_days == [d.isoformat() for d in SIX[: len(result.written_days)]]
    assert after_return <= 30 + 8


@pytest.mark.slow  # a long in-process scenario (several seconds): make test
def test_closing_the_listing_gives_up_the_day_listed_ahead_before_it_is_whole():
    """What ingest_days does on a stop or a failed write: close the iterator after day 1. Day 2 (over 64 pages)
    is listed ahead only up to its first LOOKAHEAD_ROWS rows until its turn; closing gives up the rest, unsent."""
    big = SyntheticChain(ChainConfig(seed=9, txs_per_day=4000))  # 68-92 pages a day
    pages = {d: -(-big.day_total(d) // 50) for d in SIX[:2]}
    assert pages[SIX[1]] * 50 > LOOKAHEAD_ROWS
    with SimulatorServer(big, FaultConfig(latency_ms=20)) as sim, HiroClient(sim.url, pool_size=16) as hiro:
        listings = DayFetcher(hiro, "v1").fetch_days(SIX)
        day, fetched = next(listings)
        assert day == SIX[0] and fetched.total == big.day_total(SIX[0])  # type: ignore[union-attr]
        time.sleep(0.5)  # day 2 reaches its lookahead bound and waits for its turn
        listings.close()  # returns once the lookahead's threads are done
        sent = sim.stats()["requests"]
        time.sleep(0.5)
        assert sim.stats()["requests"] == sent
    assert pages[SIX[0]] < sent <= pages[SIX[0]] + LOOKAHEAD_ROWS // 50 < pages[SIX[0]] + pages[SIX[1]]
