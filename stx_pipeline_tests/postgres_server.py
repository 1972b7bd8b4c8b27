"""The `postgres_server` fixture: one throw-away PostgreSQL server per session (stx_pipeline.devtools.postgres)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stx_pipeline.devtools.postgres import PostgresServer, find_bin_dir, postgres_required, running_postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        message = "PostgreSQL server binaries not found (apt-get install postgresql, or set STX_PG_BIN)"
        if postgres_required():
            pytest.fail(message)
        pytest.skip(message)
    with running_postgres(bin_dir) as server:
        yield server
