"""Helpers shared by the ingestion and status benchmarks: machine facts, timing, a fast 1M-row database.

Run the benchmarks from the project root with the project's interpreter (`.venv/bin/python bench/...`);
they add the project root to sys.path themselves.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

# Partitions and settings read the environment at import time: never let a benchmark reach the real API.
os.environ.setdefault("STX_API_URL", "http://127.0.0.1:9")

import duckdb  # noqa: E402

PYTHON = sys.executable
VENV_BIN = Path(PYTHON).parent


def machine() -> dict[str, str]:
    """nproc, memory, CPU model and versions: printed at the top of every benchmark."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        mem = subprocess.run(["free", "-h"], capture_output=True, text=True, check=True).stdout.splitlines()[1]
        mem = " ".join(mem.split())
    except (OSError, subprocess.CalledProcessError, IndexError):
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def print_machine() -> None:
    facts = machine()
    print("Machine: " + ", ".join(f"{k}={v}" for k, v in facts.items()), flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def run_timed(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[float, int, str]:
    """Wall seconds, exit code and combined output of a command (a cold process each time)."""
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900)
    return time.perf_counter() - started, proc.returncode, proc.stdout + proc.stderr


def simulator_table(txs_per_day: int, day: dt.date, seed: int = 7) -> Any:
    """One simulator day as the ingestion code converts it (an Arrow table in the storage schema)."""
    from stx_pipeline.days import day_window
    from stx_pipeline.hiro import records_to_table
    from stx_pipeline.simulator import ChainConfig, SyntheticChain

    records = SyntheticChain(ChainConfig(seed=seed, txs_per_day=txs_per_day)).day_transactions(day)
    return records_to_table(records, day, window=day_window(day))


# Copies of a real day under new tx_ids and shifted dates: every row stays realistic (same distribution
# of types, wallets, fees) while the table grows by one day per INSERT.
_REPLICATE_SQL = """
INSERT INTO stx_transactions
SELECT '0x' || sha256(tx_id || ':' || CAST($k AS VARCHAR)),
       partition_date - CAST($k AS INTEGER),
       block_height - CAST($k AS BIGINT) * 4320,
       block_hash,
       block_time - to_days(CAST($k AS INTEGER)),
       burn_block_time - to_days(CAST($k AS INTEGER)),
       burn_block_height - CAST($k AS BIGINT) * 144,
       tx_index, microblock_sequence, tx_type, tx_status, sender_address, sponsored, sponsor_address,
       fee_ustx, nonce, token_transfer_recipient, token_transfer_amount_ustx, contract_id, function_name,
       ingested_at
FROM stx_transactions
WHERE partition_date = $base
"""


def fill_database(
    path: Path, rows: int, *, last_day: dt.date, txs_per_day: int = 50_000, seed: int = 7
) -> dict[str, Any]:
    """A DuckDB file of about `rows` transactions ending on `last_day`: one simulator day written by
    `replace_day` (the ingestion path), then copied under new tx_ids to the days before it."""
    from stx_pipeline.storage import replace_day

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    started = time.perf_counter()
    table = simulator_table(txs_per_day, last_day, seed)
    per_day = len(table)
    copies = max(0, -(-rows // per_day) - 1)
    conn = duckdb.connect(str(path))
    try:
        replace_day(conn, last_day, table)
        for k in range(1, copies + 1):
            conn.execute(_REPLICATE_SQL, {"k": k, "base": last_day})
        conn.execute("CHECKPOINT")
        total = conn.execute("SELECT count(*) FROM stx_transactions").fetchone()[0]
    finally:
        conn.close()
    return {
        "rows": int(total),
        "days": copies + 1,
        "first_day": (last_day - dt.timedelta(days=copies)).isoformat(),
        "last_day": last_day.isoformat(),
        "seconds": round(time.perf_counter() - started, 1),
        "bytes": path.stat().st_size,
    }
