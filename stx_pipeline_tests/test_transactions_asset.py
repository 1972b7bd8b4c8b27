"""The stx_transactions asset, materialized in-process against the simulator over real HTTP into a real file."""

from __future__ import annotations

import datetime as dt
import hashlib

import dagster as dg
import duckdb
import pytest

from stx_pipeline.assets.transactions import CHECK_ROWS_MATCH_TOTAL, CHECK_TX_ID_UNIQUE
from stx_pipeline.definitions import defs
from stx_pipeline.devtools.resources import pipeline_resources
from stx_pipeline.simulator import FaultConfig
from stx_pipeline.storage import day_content_hash, day_counts, duplicate_tx_ids
from stx_pipeline_tests.conftest import dagster_instance, days, failure_message

# As the code location builds it from this environment (conftest: STX_START_DATE=2024-11-01).
stx_transactions = defs().get_assets_def("stx_transactions")

DAY = dt.date(2025, 3, 1)


def materialize(sim, db, *, partition: str | None = None, first: str | None = None, last: str | None = None, **hiro):
    tags = {}
    if first:
        tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    return dg.materialize(
        [stx_transactions],
        resources=pipeline_resources(sim.url, db, **hiro),
        partition_key=partition,
        tags=tags,
        raise_on_error=False,
    )


def stored_tx_ids_sha(db, day: dt.date) -> str:
    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute(
            "SELECT tx_id FROM stx_transactions WHERE partition_date = ? "
            "ORDER BY burn_block_time, block_height, microblock_sequence, tx_index",
            [day],
        ).fetchall()
    return hashlib.sha256("\n".join(r[0] for r in rows).encode()).hexdigest()


def content_hashes(db, wanted: list[dt.date]) -> dict[dt.date, str]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return {d: day_content_hash(conn, d) for d in wanted}


def test_one_day_matches_the_api_total_and_tx_ids(simulator, small_chain, db_path):
    result = materialize(simulator, db_path, partition=DAY.isoformat())
    assert result.success
    total = small_chain.day_total(DAY)
    assert total > 100  # several pages
    with duckdb.connect(str(db_path), read_only=True) as conn:
        assert day_counts(conn, [DAY]) == {DAY: total}
        assert duplicate_tx_ids(conn) == 0
    # The simulator's own digest of the day's tx_ids in API order.
    expected = simulator.lister.chain.day_digest(DAY) if hasattr(simulator, "lister") else None
    admin = __import__("requests").get(f"{simulator.url}/_sim/day/{DAY}", timeout=5).json()
    assert admin["total"] == total
    assert stored_tx_ids_sha(db_path, DAY) == admin["tx_ids_sha256"]
    if expected is not None:
        assert expected == admin["tx_ids_sha256"]

    materialization = result.asset_materializations_for_node("stx_transactions")[0]
    metadata = materialization.metadata
    assert metadata["dagster/row_count"].value == total
    assert metadata["api_total"].value == total
    assert metadata["pages"].value == -(-total // 50)
    assert metadata["retries"].value == 0
    assert metadata["http_429_received"].value == 0
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {CHECK_ROWS_MATCH_TOTAL: True, CHECK_TX_ID_UNIQUE: True}


def test_multi_day_run_stores_each_day_whole(simulator, small_chain, db_path):
    wanted = days("2025-03-01", 3)
    result = materialize(simulator, db_path, first="2025-03-01", last="2025-03-03")
    assert result.success
    with duckdb.connect(str(db_path), read_only=True) as conn:
        assert day_counts(conn, wanted) == {d: small_chain.day_total(d) for d in wanted}
        # burn_block_time of every row lies inside its partition's UTC day (half-open).
        outside = conn.execute(
            "SELECT count(*) FROM stx_transactions WHERE burn_block_time < partition_date::TIMESTAMPTZ "
            "OR burn_block_time >= (partition_date + 1)::TIMESTAMPTZ"
        ).fetchone()[0]
    assert outside == 0
    materializations = result.asset_materializations_for_node("stx_transactions")
    assert sorted(m.partition for m in materializations) == [d.isoformat() for d in wanted]


def test_rematerializing_is_idempotent(simulator, db_path):
    assert materialize(simulator, db_path, partition=DAY.isoformat()).success
    before = content_hashes(db_path, [DAY])
    for _ in range(2):
        assert materialize(simulator, db_path, partition=DAY.isoformat()).success
    assert content_hashes(db_path, [DAY]) == before
    with duckdb.connect(str(db_path), read_only=True) as conn:
        assert duplicate_tx_ids(conn) == 0


@pytest.mark.slow  # days fetched twice under injected faults (~8 s)
def test_transient_faults_end_in_the_same_content(simulator, db_path, tmp_path):
    clean_db = tmp_path / "clean.duckdb"
    assert materialize(simulator, clean_db, partition=DAY.isoformat()).success
    simulator.faults = FaultConfig(
        error_rate=0.15,
        reset_rate=0.05,
        truncate_rate=0.05,
        malformed_json_rate=0.05,
        burst_429_every=4,
        burst_429_length=2,
        retry_after_mode="zero",
        fault_seed=3,
    )
    result = materialize(simulator, db_path, partition=DAY.isoformat(), max_backoff_s=0.3)
    assert result.success, failure_message(result)
    assert content_hashes(db_path, [DAY]) == content_hashes(clean_db, [DAY])
    metadata = result.asset_materializations_for_node("stx_transactions")[0].metadata
    assert metadata["retries"].value > 0
    assert metadata["http_429_received"].value > 0


def test_a_failing_day_writes_nothing_and_keeps_what_was_stored(simulator, small_chain, db_path):
    assert materialize(simulator, db_path, partition=DAY.isoformat()).success
    before = content_hashes(db_path, [DAY])
    simulator.faults = FaultConfig(fail_days=[DAY.isoformat()])
    result = materialize(simulator, db_path, partition=DAY.isoformat(), max_attempts=2, max_backoff_s=0.1)
    assert not result.success
    message = failure_message(result)
    assert "HTTP 500" in message and "/extended/v1/tx" in message
    assert content_hashes(db_path, [DAY]) == before


@pytest.mark.parametrize(
    ("faults", "needle"),
    [
        (FaultConfig(corrupt="missing_field"), "field 'sender_address' is missing"),
        (FaultConfig(corrupt="wrong_type"), "field 'block_height' should be an integer"),
        (FaultConfig(gone=True), "HTTP 410"),
        (FaultConfig(total_drift=True), "total changed"),
        (FaultConfig(short_page=True), "promises"),
    ],
)
def test_bad_answers_fail_the_partition_clearly_and_write_nothing(simulator, db_path, faults, needle):
    simulator.faults = faults
    # Under the default `auto` strategy a 410 switches to v3 (test_v3_strategy.py); v1 alone must fail clearly.
    strategy = "v1" if faults.gone else "auto"
    result = materialize(
        simulator, db_path, partition=DAY.isoformat(), max_attempts=2, max_backoff_s=0.1, strategy=strategy
    )
    assert not result.success
    message = failure_message(result)
    assert needle in message
    assert DAY.isoformat() in message or "/extended/v1/tx" in message
    assert not db_path.exists() or content_hashes(db_path, [DAY])[DAY] == hashlib.md5(b"").hexdigest()


def test_unknown_enum_values_are_stored_as_they_come(simulator, db_path):
    simulator.faults = FaultConfig(corrupt="unknown_enum")
    assert materialize(simulator, db_path, partition=DAY.isoformat()).success
    with duckdb.connect(str(db_path), read_only=True) as conn:
        unknown = conn.execute(
            "SELECT count(*) FROM stx_transactions WHERE tx_status NOT IN "
            "('success', 'abort_by_response', 'abort_by_post_condition', 'problematic_skipped') "
            "OR tx_type NOT IN ('token_transfer', 'contract_call', 'smart_contract', 'coinbase', "
            "'tenure_change', 'poison_microblock')"
        ).fetchone()[0]
    assert unknown > 0


@pytest.mark.slow  # a long in-process scenario (several seconds): make test
def test_a_bad_day_in_a_multi_day_run_fails_alone(simulator, small_chain, db_path, tmp_path):
    wanted = days("2025-03-01", 4)
    bad = wanted[1]
    simulator.faults = FaultConfig(fail_days=[bad.isoformat()])
    with dagster_instance(tmp_path / "dagster") as instance:
        result = dg.materialize(
            [stx_transactions],
            resources=pipeline_resources(simulator.url, db_path, max_attempts=2, max_backoff_s=0.1),
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": "2025-03-01",
                "dagster/asset_partition_range_end": "2025-03-04",
            },
            raise_on_error=False,
        )
        assert not result.success
        assert f"partition {bad}" in failure_message(result)
        statuses = instance.get_status_by_partition(
            stx_transactions.key, [d.isoformat() for d in wanted], stx_transactions.partitions_def
        )
    assert {k: v.value for k, v in statuses.items()} == {
        d.isoformat(): ("FAILED" if d == bad else "MATERIALIZED") for d in wanted
    }
    with duckdb.connect(str(db_path), read_only=True) as conn:
        assert day_counts(conn, wanted) == {d: (0 if d == bad else small_chain.day_total(d)) for d in wanted}
