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
    wallet_value          address, first_day, last_day, tx_30, fee_30, fee_60, fee_90, received_by_activation
        per wallet that ever sent: activation day (its first active day, as `wallet_first_seen`), last active day,
        transactions sent in days 0-29 after activation, fees paid in days 0-29 / 0-59 / 0-89, and STX received
        by transfer on or before the activation day.

`refresh_value_partitions` is called by `aggregates._refresh_chunk` inside its transaction: it replaces the
partitions' rows of the two per-day tables and recomputes `wallet_value` for the wallets those partitions had or
have (as sender, payer or recipient) only: every column of a wallet's row is a function of that wallet's own
per-day rows, so no other wallet can change (a re-fetched old day can move an activation day later, and with it
every window). A daily top-up touches the day's wallets; a build from nothing, every wallet once per chunk.

No Dagster here.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from stx_pipeline.schema import DAY_EXPR, MINED_EXPR, TABLE, USER_TX_TYPES
from stx_pipeline.storage.ingest_record import has_table

VALUE_WALLET_DAY = "agg_value_wallet_day"
VALUE_DAY = "agg_value_day"
WALLET_VALUE = "wallet_value"

# The fee windows after activation kept per wallet (days 0..h-1) and the tx-count window of the "active" segment.
FEE_HORIZONS: tuple[int, ...] = (30, 60, 90)
TX_WINDOW = 30

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
        address VARCHAR NOT NULL, first_day DATE NOT NULL, last_day DATE NOT NULL, tx_30 BIGINT NOT NULL,
        fee_30 BIGINT NOT NULL, fee_60 BIGINT NOT NULL, fee_90 BIGINT NOT NULL,
        received_by_activation BIGINT NOT NULL)""",
)

_PAID_BY_SPONSOR = "(sponsored IS TRUE AND sponsor_address IS NOT NULL)"

# One partition's rows from the raw table; `{where}` restricts the partitions (empty: the whole table, the
# from-scratch computation the tests compare with). Each wallet role is one branch of the UNION ALL.
VALUE_WALLET_DAY_SELECT = f"""
    WITH t AS (
        SELECT partition_date, {DAY_EXPR} AS day, sender_address, tx_type, tx_status, fee_ustx,
               CASE WHEN {_PAID_BY_SPONSOR} THEN sponsor_address ELSE sender_address END AS payer,
               {_PAID_BY_SPONSOR} AS by_sponsor, token_transfer_recipient, token_transfer_amount_ustx
        FROM {TABLE}
        WHERE list_contains($user_types, tx_type) AND {MINED_EXPR} {{where}}
    ), roles AS (
        SELECT partition_date, day, sender_address AS address, 1 AS n_sent, 0 AS n_paid, 0 AS n_sponsored_paid,
               0 AS fee_paid_ustx, 0 AS n_received, 0 AS received_ustx
        FROM t
        UNION ALL
        SELECT partition_date, day, payer, 0, 1, CAST(by_sponsor AS INTEGER), coalesce(fee_ustx, 0), 0, 0 FROM t
        UNION ALL
        SELECT partition_date, day, token_transfer_recipient, 0, 0, 0, 0, 1, coalesce(token_transfer_amount_ustx, 0)
        FROM t
        WHERE tx_type = 'token_transfer' AND tx_status = 'success' AND token_transfer_recipient IS NOT NULL
    )
    SELECT partition_date, day, address, CAST(sum(n_sent) AS BIGINT) AS n_sent, CAST(sum(n_paid) AS BIGINT) AS n_paid,
           CAST(sum(n_sponsored_paid) AS BIGINT) AS n_sponsored_paid,
           CAST(sum(fee_paid_ustx) AS BIGINT) AS fee_paid_ustx, CAST(sum(n_received) AS BIGINT) AS n_received,
           CAST(sum(received_ustx) AS BIGINT) AS received_ustx
    FROM roles
    GROUP BY partition_date, day, address"""

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

# Per wallet from agg_value_wallet_day. `{wallets}` restricts the wallets (e.g. to those a refresh touched) and
# `{days}` the days (e.g. `AND day <= $as_of`); both empty for every wallet over every day.
_fee_windows = ",\n           ".join(
    f"CAST(coalesce(sum(a.fee_paid_ustx) FILTER (WHERE a.day >= w.first_day AND a.day < w.first_day + {h}), 0)"
    f" AS BIGINT) AS fee_{h}"
    for h in FEE_HORIZONS
)
WALLET_VALUE_SELECT = f"""
    WITH a AS (SELECT * FROM {VALUE_WALLET_DAY} WHERE TRUE {{wallets}} {{days}}),
    w AS (SELECT address, min(day) AS first_day, max(day) AS last_day FROM a WHERE n_sent > 0 GROUP BY address)
    SELECT w.address, w.first_day, w.last_day,
           CAST(coalesce(sum(a.n_sent) FILTER (WHERE a.day < w.first_day + {TX_WINDOW}), 0) AS BIGINT) AS tx_30,
           {_fee_windows},
           CAST(coalesce(sum(a.received_ustx) FILTER (WHERE a.day <= w.first_day), 0) AS BIGINT)
               AS received_by_activation
    FROM w JOIN a USING (address)
    GROUP BY w.address, w.first_day, w.last_day"""


def ensure_value_aggregates(conn: duckdb.DuckDBPyConnection) -> None:
    for sql in CREATE_SQL:
        conn.execute(sql)


def value_aggregates_exist(conn: duckdb.DuckDBPyConnection) -> bool:
    return has_table(conn, WALLET_VALUE)


def refresh_value_partitions(conn: duckdb.DuckDBPyConnection, days: list[dt.date]) -> None:
    """Replace the value aggregates of partitions `days` from their raw rows and recompute `wallet_value` for the
    wallets they had or have. Runs inside the caller's transaction (it neither begins nor commits).

    A database whose other aggregates were built before these tables existed gets them for every built partition
    here, once (the same SELECTs over those partitions)."""
    from stx_pipeline.storage.aggregates import BUILT  # the other aggregates' build record; imported late: no cycle

    fresh = not value_aggregates_exist(conn)
    ensure_value_aggregates(conn)
    todo = set(days)
    if fresh and has_table(conn, BUILT):
        todo.update(r[0] for r in conn.execute(f"SELECT partition_date FROM {BUILT}").fetchall())
    if not todo:
        return
    ordered = sorted(todo)
    # BETWEEN lets DuckDB skip row groups outside the range; IN keeps a sparse set exact.
    in_days = (
        "partition_date BETWEEN CAST($lo AS DATE) AND CAST($hi AS DATE) "
        "AND partition_date IN (SELECT day FROM value_days)"
    )
    bounds = {"lo": ordered[0], "hi": ordered[-1]}
    conn.execute("CREATE OR REPLACE TEMP TABLE value_days (day DATE)")
    conn.executemany("INSERT INTO value_days VALUES (?)", [[d] for d in ordered])
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE value_touched AS SELECT DISTINCT address FROM {VALUE_WALLET_DAY} "
        f"WHERE {in_days}",
        bounds,
    )
    for table in (VALUE_WALLET_DAY, VALUE_DAY):
        conn.execute(f"DELETE FROM {table} WHERE {in_days}", bounds)
    user_types = {"user_types": list(USER_TX_TYPES), **bounds}
    conn.execute(f"INSERT INTO {VALUE_WALLET_DAY} {VALUE_WALLET_DAY_SELECT.format(where='AND ' + in_days)}", user_types)
    conn.execute(f"INSERT INTO {VALUE_DAY} {VALUE_DAY_SELECT.format(where='AND ' + in_days)}", user_types)
    conn.execute(
        f"INSERT INTO value_touched SELECT DISTINCT address FROM {VALUE_WALLET_DAY} WHERE {in_days} "
        "EXCEPT SELECT address FROM value_touched",
        bounds,
    )
    conn.execute(f"DELETE FROM {WALLET_VALUE} WHERE address IN (SELECT address FROM value_touched)")
    conn.execute(
        f"INSERT INTO {WALLET_VALUE} "
        + WALLET_VALUE_SELECT.format(wallets="AND address IN (SELECT address FROM value_touched)", days="")
    )
    for name in ("value_days", "value_touched"):
        conn.execute(f"DROP TABLE temp.{name}")
