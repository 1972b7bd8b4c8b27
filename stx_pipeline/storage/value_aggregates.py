"""Per-day aggregates for the value page, refreshed in the same transaction as `aggregates.py`'s, and a per-wallet
table kept incrementally from them.

    agg_value_wallet_day  partition_date, day, address, n_sent, n_paid, n_sponsored_paid, fee_paid_ustx,
                          n_received, received_ustx
        one row per wallet and block-time day (schema.DAY_EXPR) within a stored partition, over mined user
        transactions (schema.USER_TX_TYPES, schema.MINED_EXPR): transactions it sent; fees it PAID (the payer is
        the sponsor of a sponsored transaction, `sponsored AND sponsor_address IS NOT NULL`, else the sender) and
        how many of those it paid for someone else; STX it received by successful token transfers.
    agg_value_day         partition_date, day, n_mined, fee_ustx, n_user, n_sponsored, n_failed, stx_transferred_ustx
        every mined transaction's count and fee (system transactions included: their fees are the network's too);
        user transactions, sponsored ones, failed ones (a status other than `success`) and the µSTX moved by
        successful token transfers.
    wallet_value          address, first_day, last_day, tx_30, fee_30, fee_60, fee_90, received_by_activation,
                          last_partition
        per address of agg_value_wallet_day: activation day (its first day with a sent transaction, as
        `wallet_first_seen`; NULL for an address that only received or sponsored: not a wallet), last such day,
        transactions sent in days 0-29 after activation, fees paid in days 0-29 / 0-59 / 0-89, µSTX received by
        transfer on or before the activation day (every receipt so far while not activated), and the newest
        partition holding any of its rows.

`refresh_value_partitions` is called by `aggregates._refresh_chunk` inside its transaction: it replaces the
partitions' rows of the two per-day tables and brings `wallet_value` up to date for the addresses those partitions
had or have, and no other (every column of an address's row is a function of its own per-day rows):

- an address whose rows all lie in partitions before the refreshed ones, and which the refreshed partitions did not
  hold before (a daily top-up, a build from nothing in order), gets its new rows ADDED to its stored row: its
  activation day cannot move earlier, so each window sum grows by the new rows inside it (no rescan);
- any other (a re-fetched day it was in, an older day written late) is recounted from its stored row: when its
  activation day stays (every address of a re-fetch with the same transactions), from the refreshed partitions'
  rows alone, before and after (`WALLET_VALUE_LOCAL`); else from its rows of block-time days from the refreshed
  partitions on, up to the last day its windows need (`WALLET_VALUE_MOVE`): a re-fetched day can move an
  activation day later, and with it every window, but rows of earlier days did not change;
- an address with no row left from there on (or whose last sending day before is then unknown) is recomputed
  from all its per-day rows (one scan of agg_value_wallet_day for all such addresses; usually there are none).

No Dagster here.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from stx_pipeline.schema import DAY_EXPR, MINED_EXPR, TABLE, USER_TX_TYPES
from stx_pipeline.storage.ingest_record import has_table
from stx_pipeline.storage.partition_set import PartitionSet, partition_set

VALUE_WALLET_DAY = "agg_value_wallet_day"
VALUE_DAY = "agg_value_day"
WALLET_VALUE = "wallet_value"

# The fee windows after activation kept per wallet (days 0..h-1) and the tx-count window of the "active" segment.
FEE_HORIZONS: tuple[int, ...] = (30, 60, 90)
TX_WINDOW = 30
# wallet_value's sums over an address's rows relative to its activation day (`_windows`).
_SUMS: tuple[str, ...] = ("tx_30", *(f"fee_{h}" for h in FEE_HORIZONS), "received_by_activation")

CREATE_SQL = (
    f"""CREATE TABLE IF NOT EXISTS {VALUE_WALLET_DAY} (
        partition_date DATE NOT NULL, day DATE NOT NULL, address VARCHAR NOT NULL, n_sent BIGINT NOT NULL,
        n_paid BIGINT NOT NULL, n_sponsored_paid BIGINT NOT NULL, fee_paid_ustx BIGINT NOT NULL,
        n_received BIGINT NOT NULL, received_ustx BIGINT NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {VALUE_DAY} (
        partition_date DATE NOT NULL, day DATE NOT NULL, n_mined BIGINT NOT NULL, fee_ustx BIGINT NOT NULL,
        n_user BIGINT NOT NULL, n_sponsored BIGINT NOT NULL, n_failed BIGINT NOT NULL,
        stx_transferred_ustx BIGINT NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {WALLET_VALUE} (
        address VARCHAR NOT NULL, first_day DATE, last_day DATE, tx_30 BIGINT NOT NULL,
        fee_30 BIGINT NOT NULL, fee_60 BIGINT NOT NULL, fee_90 BIGINT NOT NULL,
        received_by_activation BIGINT NOT NULL, last_partition DATE NOT NULL)""",
)

_PAID_BY_SPONSOR = "(sponsored IS TRUE AND sponsor_address IS NOT NULL)"

# One partition's rows from the raw table; `{where}` restricts the partitions (empty: the whole table, the
# from-scratch computation the tests compare with). The sender's rows (with the fees it paid itself) and the few
# other roles (sponsors, recipients) are grouped apart and joined: regrouping a UNION ALL of every role took twice
# as long (bench/bench_value.py).
VALUE_WALLET_DAY_SELECT = f"""
    WITH s AS (
        SELECT partition_date, {DAY_EXPR} AS day, sender_address AS address, count(*) AS n_sent,
               count(*) FILTER (WHERE NOT {_PAID_BY_SPONSOR}) AS n_paid,
               coalesce(sum(fee_ustx) FILTER (WHERE NOT {_PAID_BY_SPONSOR}), 0) AS fee
        FROM {TABLE}
        WHERE list_contains($user_types, tx_type) AND {MINED_EXPR} {{where}}
        GROUP BY ALL
    ), o AS (
        SELECT partition_date, day, address, sum(n_sponsored) AS n_sponsored, sum(fee) AS fee,
               sum(n_received) AS n_received, sum(received) AS received
        FROM (
            SELECT partition_date, {DAY_EXPR} AS day, sponsor_address AS address, count(*) AS n_sponsored,
                   coalesce(sum(fee_ustx), 0) AS fee, 0 AS n_received, 0 AS received
            FROM {TABLE}
            WHERE list_contains($user_types, tx_type) AND {MINED_EXPR} AND {_PAID_BY_SPONSOR} {{where}}
            GROUP BY ALL
            UNION ALL
            SELECT partition_date, {DAY_EXPR} AS day, token_transfer_recipient, 0, 0, count(*),
                   coalesce(sum(token_transfer_amount_ustx), 0)
            FROM {TABLE}
            WHERE tx_type = 'token_transfer' AND tx_status = 'success' AND token_transfer_recipient IS NOT NULL
                  {{where}}
            GROUP BY ALL
        )
        GROUP BY ALL
    )
    SELECT partition_date, day, address, CAST(coalesce(s.n_sent, 0) AS BIGINT) AS n_sent,
           CAST(coalesce(s.n_paid, 0) + coalesce(o.n_sponsored, 0) AS BIGINT) AS n_paid,
           CAST(coalesce(o.n_sponsored, 0) AS BIGINT) AS n_sponsored_paid,
           CAST(coalesce(s.fee, 0) + coalesce(o.fee, 0) AS BIGINT) AS fee_paid_ustx,
           CAST(coalesce(o.n_received, 0) AS BIGINT) AS n_received,
           CAST(coalesce(o.received, 0) AS BIGINT) AS received_ustx
    FROM s FULL OUTER JOIN o USING (partition_date, day, address)"""

VALUE_DAY_SELECT = f"""
    SELECT partition_date, {DAY_EXPR} AS day, count(*) AS n_mined,
           CAST(coalesce(sum(fee_ustx), 0) AS BIGINT) AS fee_ustx,
           count(*) FILTER (WHERE list_contains($user_types, tx_type)) AS n_user,
           count(*) FILTER (WHERE list_contains($user_types, tx_type) AND sponsored IS TRUE) AS n_sponsored,
           count(*) FILTER (WHERE list_contains($user_types, tx_type) AND tx_status <> 'success') AS n_failed,
           CAST(coalesce(sum(token_transfer_amount_ustx)
                FILTER (WHERE tx_type = 'token_transfer' AND tx_status = 'success'), 0) AS BIGINT)
               AS stx_transferred_ustx
    FROM {TABLE}
    WHERE {MINED_EXPR} {{where}}
    GROUP BY partition_date, day"""


# Per address from `{source}`, agg_value_wallet_day or some of its rows (those of the addresses a refresh
# recomputes), and `{days}` restricting the days (e.g. `AND day <= $as_of`; empty: every day). A NULL first_day
# makes every window filter NULL, so a non-wallet's windows are 0 and its receipts all count.
def _windows(rows: str, first: str) -> str:
    """The window sums of `rows` (per-day rows) against activation day `first`, as the columns of wallet_value."""
    fees = ", ".join(
        f"CAST(coalesce(sum({rows}.fee_paid_ustx) FILTER (WHERE {rows}.day >= {first} AND {rows}.day < {first} + {h})"
        f", 0) AS BIGINT) AS fee_{h}"
        for h in FEE_HORIZONS
    )
    return (
        f"CAST(coalesce(sum({rows}.n_sent) FILTER (WHERE {rows}.day < {first} + {TX_WINDOW}), 0) AS BIGINT) AS tx_30, "
        f"{fees}, CAST(coalesce(sum({rows}.received_ustx) FILTER (WHERE {first} IS NULL OR {rows}.day <= {first}), 0)"
        " AS BIGINT) AS received_by_activation"
    )


WALLET_VALUE_SELECT = f"""
    WITH a AS (SELECT * FROM {{source}} WHERE TRUE {{days}}),
    w AS (SELECT address, min(day) FILTER (WHERE n_sent > 0) AS first_day,
                 max(day) FILTER (WHERE n_sent > 0) AS last_day, max(partition_date) AS last_partition
          FROM a GROUP BY address)
    SELECT w.address, w.first_day, w.last_day, {_windows("a", "w.first_day")}, w.last_partition
    FROM w JOIN a USING (address)
    GROUP BY w.address, w.first_day, w.last_day, w.last_partition"""

# The added path: `value_add` holds the refreshed partitions' rows of addresses whose stored rows all lie before
# them. Their new rows are on or after the refreshed partitions' first day and their stored activity no later than
# the day after their last partition (a block-time day spills at most one day past its partition), so the stored
# activation day, if any, stays; an address activating now takes its first new sending day. Receipts: a stored
# wallet's stay as they are (plus new ones on its activation day); a non-wallet's all lie on or before any new one.
# `value_old` holds their stored rows (read once: joining wallet_value itself scanned it for each join).
# One stored row can fall inside a new activation's fee windows: a non-wallet's fee paid (as a sponsor) on day $lo,
# stored in partition $lo - 1 (`spill`).
WALLET_VALUE_ADD = f"""
    WITH spill AS (
        SELECT address, day, fee_paid_ustx FROM {VALUE_WALLET_DAY}
        WHERE partition_date = CAST($lo AS DATE) - 1 AND day >= CAST($lo AS DATE) AND fee_paid_ustx <> 0
          AND address IN (SELECT address FROM value_add)),
    f AS (
        SELECT n.address, coalesce(any_value(o.first_day), min(n.day) FILTER (WHERE n.n_sent > 0)) AS first_day
        FROM value_add n LEFT JOIN value_old o USING (address) GROUP BY n.address),
    s AS (
        SELECT f.address, f.first_day, max(n.day) FILTER (WHERE n.n_sent > 0) AS last_day,
               max(n.partition_date) AS last_partition, {_windows("n", "f.first_day")}
        FROM value_add n JOIN f USING (address) GROUP BY f.address, f.first_day)
    SELECT s.address, s.first_day, greatest(o.last_day, s.last_day),
           coalesce(o.tx_30, 0) + s.tx_30,
           {", ".join(f"coalesce(o.fee_{h}, 0) + s.fee_{h} + coalesce(p.fee_{h}, 0)" for h in FEE_HORIZONS)},
           coalesce(o.received_by_activation, 0) + s.received_by_activation,
           greatest(o.last_partition, s.last_partition)
    FROM s LEFT JOIN value_old o USING (address)
    LEFT JOIN (
        SELECT spill.address, {
    ", ".join(f"sum(spill.fee_paid_ustx) FILTER (WHERE spill.day < f.first_day + {h}) AS fee_{h}" for h in FEE_HORIZONS)
}
        FROM spill JOIN f USING (address) JOIN value_old so USING (address)
        WHERE so.first_day IS NULL AND spill.day >= f.first_day
        GROUP BY spill.address
    ) p USING (address)"""


UPGRADE_CHUNK_DAYS = 365  # as aggregates.CHUNK_DAYS


# The recounted path, for addresses the refreshed partitions held before or that have rows stored at or after them
# (a re-fetched day, an older day written late), from their stored row and only their rows of block-time days
# >= $lo: `value_r` (now) and `value_was` (before: the rows outside the refreshed partitions, which did not change,
# and the partitions' replaced rows). Rows of earlier days did not change. An activation before $lo stays, and each
# window moves by (rows now - rows before); else the activation is the first sending day now >= $lo (or none), its
# windows lie wholly in `value_r`, and the receipts are those before $lo (stored minus before) plus those now.
# Addresses with no row left at or after $lo, or whose last sending day before $lo is unknown, are left out
# (recomputed from all their rows).
WALLET_VALUE_MOVE = f"""
    WITH r1 AS (
        SELECT address, min(day) FILTER (WHERE n_sent > 0) AS r_first, max(day) FILTER (WHERE n_sent > 0) AS r_last,
               max(partition_date) AS r_part
        FROM value_r GROUP BY address),
    f AS (
        SELECT o.address, o.first_day AS o_first, o.last_day AS o_last, r1.r_last, r1.r_part,
               CASE WHEN o.first_day < CAST($lo AS DATE) THEN o.first_day ELSE r1.r_first END AS first_day
        FROM value_so o JOIN r1 USING (address)),
    now AS (SELECT f.address, {_windows("r", "f.first_day")} FROM f JOIN value_r r USING (address) GROUP BY f.address),
    was AS (SELECT f.address, {_windows("w", "f.o_first")} FROM f JOIN value_was w USING (address) GROUP BY f.address)
    SELECT f.address, f.first_day,
           CASE WHEN f.o_last > CAST($until AS DATE) THEN f.o_last WHEN f.r_last IS NOT NULL THEN f.r_last
                WHEN f.o_first < CAST($lo AS DATE) THEN f.o_last END,
           {
    ", ".join(
        f"CASE WHEN f.o_first < CAST($lo AS DATE) THEN o.{c} - coalesce(was.{c}, 0) ELSE 0 END + coalesce(now.{c}, 0)"
        for c in ("tx_30", *(f"fee_{h}" for h in FEE_HORIZONS))
    )
},
           o.received_by_activation - coalesce(was.received_by_activation, 0)
               + coalesce(now.received_by_activation, 0),
           CASE WHEN o.last_partition >= CAST($until AS DATE) THEN o.last_partition ELSE f.r_part END
    FROM f JOIN value_so o USING (address) LEFT JOIN now USING (address) LEFT JOIN was USING (address)
    WHERE f.r_last IS NOT NULL OR f.o_first IS NULL OR f.o_first >= CAST($lo AS DATE) OR f.o_last < CAST($lo AS DATE)"""


# The local path, for recounted addresses whose new row follows from their stored row and the refreshed partitions'
# rows alone, before (`value_was`) and now (`value_now`), without reading any other day: rows outside the partitions
# did not change, so when the activation day stays, every window and the receipts move by (now - before). That
# holds unless the partitions held the activation day and lost it (the next sending day is elsewhere), or now hold
# an earlier one (its windows reach rows outside them): the first day found as wallet_first_seen does. The last
# sending day and the last partition stay as stored unless they lay in the partitions and are gone from them.
# Addresses left out (`ok` false) take WALLET_VALUE_MOVE.
WALLET_VALUE_LOCAL = f"""
    WITH was AS (
        SELECT w.address, min(w.day) FILTER (WHERE w.n_sent > 0) AS w_first, max(w.day) FILTER (WHERE w.n_sent > 0)
               AS w_last, {_windows("w", "o.first_day")}
        FROM value_was w JOIN value_so o USING (address) GROUP BY w.address),
    now AS (
        SELECT n.address, min(n.day) FILTER (WHERE n.n_sent > 0) AS n_first, max(n.day) FILTER (WHERE n.n_sent > 0)
               AS n_last, max(n.partition_date) AS n_part, {_windows("n", "o.first_day")}
        FROM value_now n JOIN value_so o USING (address) GROUP BY n.address),
    c AS (
        SELECT o.*, w.w_first, w.w_last, n.n_first, n.n_last, n.n_part,
               o.last_partition IN (SELECT day FROM value_days) AS part_in,
               {", ".join(f"coalesce(w.{c}, 0) AS w_{c}, coalesce(n.{c}, 0) AS n_{c}" for c in _SUMS)}
        FROM value_so o LEFT JOIN was w USING (address) LEFT JOIN now n USING (address))
    SELECT address, first_day,
           CASE WHEN last_day IS NULL OR w_last IS NULL OR last_day > w_last THEN greatest(last_day, n_last)
                ELSE n_last END AS last_day,
           {", ".join(f"{c} - w_{c} + n_{c} AS {c}" for c in _SUMS)},
           CASE WHEN part_in THEN n_part ELSE greatest(last_partition, n_part) END AS last_partition,
           coalesce((CASE WHEN first_day IS NULL THEN n_first
                          WHEN w_first IS NULL OR first_day < w_first THEN least(first_day, n_first)
                          WHEN n_first <= first_day THEN n_first END) IS NOT DISTINCT FROM first_day
                    AND (last_day IS NULL OR w_last IS NULL OR last_day > w_last OR n_last >= last_day)
                    AND (NOT part_in OR n_part >= last_partition), false) AS ok
    FROM c"""


def ensure_value_aggregates(conn: duckdb.DuckDBPyConnection) -> None:
    for sql in CREATE_SQL:
        conn.execute(sql)


def value_aggregates_exist(conn: duckdb.DuckDBPyConnection) -> bool:
    return has_table(conn, WALLET_VALUE)


def refresh_value_partitions(
    conn: duckdb.DuckDBPyConnection, days: list[dt.date], first_seen: str | None = None
) -> None:
    """Replace the value aggregates of partitions `days` from their raw rows and recompute `wallet_value` for the
    wallets they had or have. Runs inside the caller's transaction (it neither begins nor commits). `first_seen`,
    the first-seen table already refreshed for `days` in that transaction, bounds the days a re-fetch reads.

    A database whose other aggregates were built before these tables existed gets them for every built partition
    here, once (the same SELECTs over those partitions)."""
    from stx_pipeline.storage.aggregates import BUILT  # the other aggregates' build record; imported late: no cycle

    fresh = not value_aggregates_exist(conn)
    ensure_value_aggregates(conn)
    todo = set(days)
    if fresh and has_table(conn, BUILT):
        todo.update(r[0] for r in conn.execute(f"SELECT partition_date FROM {BUILT}").fetchall())
    ordered = sorted(todo)
    # Oldest first, a year at a time: bounds one statement's memory, and each chunk finds the ones before it
    # stored, so a database getting these tables for its whole history takes the added path throughout.
    for i in range(0, len(ordered), UPGRADE_CHUNK_DAYS):
        # wallet_first_seen holds every partition's wallets: it bounds a chunk's reads only when it is the last.
        _refresh_value_chunk(conn, ordered[i : i + UPGRADE_CHUNK_DAYS], first_seen if not fresh else None)


def _move_until(conn: duckdb.DuckDBPyConnection, chunk: PartitionSet, first_seen: str | None) -> dt.date | None:
    """The last block-time day WALLET_VALUE_MOVE needs for the addresses left in `value_touched`, from their stored
    row and their activation day now (`first_seen`, the same day as wallet_first_seen's, already refreshed): an
    activation before $lo keeps its windows before $lo + 89; a new one needs its windows' days and the receipts up
    to both activation days; an address with none needs every row (up to the day after its last partition). A
    stored last sending day or last partition beyond it stays as it is. No bound (date.max) without `first_seen`."""
    if first_seen is None:
        return dt.date.max
    reach = max(*FEE_HORIZONS, TX_WINDOW) - 1
    row = conn.execute(
        f"""SELECT max(CASE WHEN o.first_day < CAST($lo AS DATE) THEN CAST($lo AS DATE) + {reach}
                            WHEN o.first_day IS NULL OR f.first_day IS NULL THEN o.last_partition + 1
                            ELSE greatest(f.first_day + {reach}, o.first_day) END)
            FROM value_so o
            LEFT JOIN (SELECT * FROM {first_seen} WHERE address IN (SELECT address FROM value_touched)) f
                USING (address)
            WHERE o.address IN (SELECT address FROM value_touched)""",
        {"lo": chunk.lo},
    ).fetchone()
    until = row[0] if row and row[0] is not None else chunk.lo
    return max(until, chunk.hi + dt.timedelta(days=2))


def _refresh_value_chunk(conn: duckdb.DuckDBPyConnection, ordered: list[dt.date], first_seen: str | None) -> None:
    chunk = partition_set(conn, "value_days", ordered)
    in_days, bounds = chunk.where(), chunk.params
    # The partitions' rows before their replacement (they all lie on block-time days >= $lo).
    conn.execute(f"CREATE OR REPLACE TEMP TABLE value_was AS SELECT * FROM {VALUE_WALLET_DAY} WHERE {in_days}", bounds)
    conn.execute("CREATE OR REPLACE TEMP TABLE value_touched AS SELECT DISTINCT address FROM value_was")
    for table in (VALUE_WALLET_DAY, VALUE_DAY):
        conn.execute(f"DELETE FROM {table} WHERE {in_days}", bounds)
    user_types = {"user_types": list(USER_TX_TYPES), **bounds}
    # Ordered by day: zone maps then find a recent day's rows (value_r below) without reading the whole last chunk.
    conn.execute(
        f"INSERT INTO {VALUE_WALLET_DAY} SELECT * FROM ({VALUE_WALLET_DAY_SELECT.format(where='AND ' + in_days)}) "
        "ORDER BY day, partition_date",
        user_types,
    )
    conn.execute(f"INSERT INTO {VALUE_DAY} {VALUE_DAY_SELECT.format(where='AND ' + in_days)}", user_types)
    # The partitions' new rows, and the stored rows of every address they had or have: wallet_value is read once
    # (three lookups before; a DELETE ... RETURNING instead of this and the DELETE below took 3x as long at 50M).
    conn.execute(f"CREATE OR REPLACE TEMP TABLE value_new AS SELECT * FROM {VALUE_WALLET_DAY} WHERE {in_days}", bounds)
    conn.execute(
        f"""CREATE OR REPLACE TEMP TABLE value_stored AS SELECT * FROM {WALLET_VALUE}
            WHERE address IN (SELECT address FROM value_new UNION SELECT address FROM value_was)"""
    )
    # New rows of addresses with nothing stored in or after the refreshed partitions: added to their stored row.
    # (An address the partitions held before has its last_partition in them: never here.)
    conn.execute(
        """CREATE OR REPLACE TEMP TABLE value_add AS SELECT * FROM value_new
           WHERE address NOT IN (SELECT address FROM value_stored WHERE last_partition >= CAST($lo AS DATE))""",
        {"lo": bounds["lo"]},
    )
    conn.execute(
        "INSERT INTO value_touched SELECT DISTINCT address FROM value_new "
        "EXCEPT SELECT address FROM value_add EXCEPT SELECT address FROM value_touched"
    )
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE value_old AS SELECT * FROM value_stored "
        "WHERE address IN (SELECT address FROM value_add)"
    )
    conn.execute(f"CREATE OR REPLACE TEMP TABLE value_added AS {WALLET_VALUE_ADD}", {"lo": bounds["lo"]})
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE value_so AS SELECT * FROM value_stored "
        "WHERE address IN (SELECT address FROM value_touched)"
    )
    # The local path (WALLET_VALUE_LOCAL) first: most recounted addresses (a re-fetch with the same transactions,
    # all of them) need no row outside the partitions; only the others read further.
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE value_now AS SELECT * FROM value_new "
        "WHERE address IN (SELECT address FROM value_touched)"
    )
    conn.execute(f"CREATE OR REPLACE TEMP TABLE value_local AS {WALLET_VALUE_LOCAL}")
    conn.execute("DELETE FROM value_touched WHERE address IN (SELECT address FROM value_local WHERE ok)")
    # The recounted path (WALLET_VALUE_MOVE): rows of days >= $lo only, found by partition (>= $lo - 1: a block-time
    # day spills at most one day past its partition), so a re-fetch of a recent day reads a few recent partitions.
    # Up to $until only: the day after which no address's row changes its result (_move_until).
    moving = {"lo": bounds["lo"], "until": _move_until(conn, chunk, first_seen)}
    conn.execute(
        f"""CREATE OR REPLACE TEMP TABLE value_r AS SELECT * FROM {VALUE_WALLET_DAY}
            WHERE partition_date >= CAST($lo AS DATE) - 1 AND day BETWEEN CAST($lo AS DATE) AND CAST($until AS DATE)
              AND address IN (SELECT address FROM value_touched)""",
        moving,
    )
    conn.execute("INSERT INTO value_was SELECT * FROM value_r WHERE partition_date NOT IN (SELECT day FROM value_days)")
    conn.execute(f"CREATE OR REPLACE TEMP TABLE value_moved AS {WALLET_VALUE_MOVE}", moving)
    # Only non-empty inserts: with DuckDB 1.5.5, an INSERT of no rows from a TEMP table here made the rows of the
    # previous INSERT into wallet_value vanish from this connection's view (a 2M-row build from nothing kept a
    # fraction of them; not reproduced at test sizes: bench/bench_value.py checks its build against a from-scratch one).
    # Every stored row read above is written again below, recomputed, unless its address has no row left.
    conn.execute(f"DELETE FROM {WALLET_VALUE} WHERE address IN (SELECT address FROM value_stored)")
    conn.execute("DELETE FROM value_local WHERE NOT ok")
    conn.execute("ALTER TABLE value_local DROP COLUMN ok")
    for name in ("value_added", "value_local", "value_moved"):
        if conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]:
            conn.execute(f"INSERT INTO {WALLET_VALUE} SELECT * FROM {name}")
    conn.execute("DELETE FROM value_touched WHERE address IN (SELECT address FROM value_moved)")
    # The rest from all their rows, read once (a filter inside WALLET_VALUE_SELECT's CTE ran for each of its two
    # reads); usually none, and the scan is skipped.
    if conn.execute("SELECT count(*) FROM value_touched").fetchone()[0]:
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE value_rows AS SELECT * FROM {VALUE_WALLET_DAY} "
            "WHERE address IN (SELECT address FROM value_touched)"
        )
        conn.execute(f"INSERT INTO {WALLET_VALUE} " + WALLET_VALUE_SELECT.format(source="value_rows", days=""))
    for name in (
        "value_days",
        "value_was",
        "value_touched",
        "value_add",
        "value_old",
        "value_added",
        "value_so",
        "value_new",
        "value_stored",
        "value_now",
        "value_local",
        "value_r",
        "value_moved",
        "value_rows",
    ):
        conn.execute(f"DROP TABLE IF EXISTS temp.{name}")
