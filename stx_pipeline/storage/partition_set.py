"""A set of partitions as a SQL filter: the one way a refresh names "the rows of these partitions".

No Dagster here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb


@dataclass(frozen=True)
class PartitionSet:
    """Days held in the temp table `table` (column `day`), with their bounds as query parameters."""

    table: str
    lo: dt.date
    hi: dt.date

    @property
    def params(self) -> dict[str, dt.date]:
        return {"lo": self.lo, "hi": self.hi}

    def where(self, column: str = "partition_date") -> str:
        """`column` is one of the days. BETWEEN lets DuckDB skip row groups outside the bounds (zone maps); IN keeps
        a sparse set exact. Takes the parameters `$lo` and `$hi` (`params`)."""
        return (
            f"{column} BETWEEN CAST($lo AS DATE) AND CAST($hi AS DATE) AND {column} IN (SELECT day FROM {self.table})"
        )


def partition_set(conn: duckdb.DuckDBPyConnection, table: str, days: list[dt.date]) -> PartitionSet:
    """Create (or replace) the temp table `table` holding `days` (non-empty) and return the set's filter."""
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {table} (day DATE)")
    conn.executemany(f"INSERT INTO {table} VALUES (?)", [[d] for d in days])
    return PartitionSet(table, min(days), max(days))
