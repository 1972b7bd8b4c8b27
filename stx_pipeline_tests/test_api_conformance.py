"""Every simulator answer the pipeline uses, validated against the real API's published response schemas.

Real HTTP on 127.0.0.1. The schemas are vendored under `schemas/` (README there): the v9.0.2 `openapi.yaml` of
hirosystems/stacks-blockchain-api for v2/v3, and a JSON schema written from the source's TypeBox schemas for the
v1 list the v9 spec no longer documents.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests

from stx_pipeline.simulator import ChainConfig, FaultConfig, SimulatorServer, SyntheticChain, day_bounds
from stx_pipeline.simulator.server import DEPRECATION_WARNING

SCHEMAS = Path(__file__).with_name("schemas")
OPENAPI = json.loads((SCHEMAS / "hiro_openapi_subset.json").read_text())
V1_LIST = json.loads((SCHEMAS / "v1_transaction_list.schema.json").read_text())
DAY = dt.date(2025, 3, 1)
ALL_TX_TYPES = {"token_transfer", "contract_call", "smart_contract", "coinbase", "tenure_change"}


def response_schema(path: str, status: str = "200") -> dict[str, Any]:
    return OPENAPI["paths"][path]["get"]["responses"][status]["content"]["application/json"]["schema"]


# The spec's schemas are JSON Schema as TypeBox emits it (`type: "null"` inside anyOf, which OpenAPI 3.0 itself
# does not allow), so a JSON Schema validator reads them as the server's own serializer does.
def problems(schema: dict[str, Any], body: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'/'.join(map(str, leaf.absolute_path)) or '<root>'}: {leaf.message[:200]}"
        for error in validator.iter_errors(body)
        for leaf in _reasons(error)
    ]


def _reasons(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """Inside a union (anyOf), the reasons of the closest branch (fewest errors), not "valid under none"."""
    if not error.context:
        return [error]
    branches: dict[Any, list[jsonschema.ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    closest = min(branches.values(), key=len)
    return [leaf for sub in closest for leaf in _reasons(sub)]


def assert_conforms(schema: dict[str, Any], response: requests.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text[:300]
    body = response.json()
    found = problems(schema, body)
    assert not found, f"{response.request.method} {response.url}: " + "; ".join(found[:5])
    return body


ERROR_SCHEMA = response_schema("/extended/v3/transactions", "4XX")


@pytest.fixture(scope="module")
def chain() -> SyntheticChain:
    # Full-size days: tenures over 50 transactions, every transaction type.
    return SyntheticChain(ChainConfig(seed=11))


@pytest.fixture
def sim(chain: SyntheticChain) -> Iterator[SimulatorServer]:
    with SimulatorServer(chain) as server:
        yield server


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def test_every_4xx_of_the_spec_is_the_same_error_schema() -> None:
    """One error schema serves all answers, the v1 list's and the gateway's 429 included."""
    schemas = {json.dumps(r["get"]["responses"]["4XX"], sort_keys=True) for r in OPENAPI["paths"].values()}
    assert len(schemas) == 1
    assert ERROR_SCHEMA["required"] == ["error"]
    assert OPENAPI["x-vendored-from"]["commit"] == "759c4a586b3f0cba330426a525d543d7d8fa2d9f"
    assert OPENAPI["info"]["version"] == "9.0.2"


@pytest.mark.slow  # every page of several days through the JSON schema (~8 s)
def test_v1_list_pages_conform_to_the_source_schema(sim: SimulatorServer, http: requests.Session) -> None:
    start, end = day_bounds(DAY)
    params = {"start_time": start, "end_time": end, "sort_by": "burn_block_time", "order": "asc", "limit": 50}
    seen_types: set[str] = set()
    offset, total, rows = 0, None, 0
    while total is None or offset < total:
        response = http.get(f"{sim.url}/extended/v1/tx", params={**params, "offset": offset}, timeout=10)
        body = assert_conforms(V1_LIST, response)
        assert response.headers["Warning"] == DEPRECATION_WARNING
        total = body["total"]
        rows += len(body["results"])
        seen_types |= {tx["tx_type"] for tx in body["results"]}
        offset += 50
    assert rows == total == sim.chain.day_total(DAY)
    assert seen_types >= ALL_TX_TYPES


def test_the_v1_schema_rejects_what_the_real_server_would_not_send(
    sim: SimulatorServer, http: requests.Session
) -> None:
    """The hand-written schema can fail: a row with a wrong type or a missing field is caught, by name."""
    start, end = day_bounds(DAY)
    params = {"start_time": start, "end_time": end, "limit": 50}
    for corruption, field in (("wrong_type", "block_height"), ("missing_field", "sender_address")):
        sim.faults = FaultConfig(corrupt=corruption)
        body = http.get(f"{sim.url}/extended/v1/tx", params=params, timeout=10).json()
        found = problems(V1_LIST, body)
        assert found, corruption
        victim = len(body["results"]) // 2
        assert any(p.startswith(f"results/{victim}") and field in p for p in found), found


def test_v3_transaction_pages_conform(sim: SimulatorServer, http: requests.Session) -> None:
    schema = response_schema("/extended/v3/transactions")
    cursor: str | None = None
    seen_types: set[str] = set()
    for _ in range(40):  # a few hundred rows back from the tip
        params: dict[str, Any] = {"limit": 50} | ({"cursor": cursor} if cursor else {})
        body = assert_conforms(schema, http.get(f"{sim.url}/extended/v3/transactions", params=params, timeout=10))
        seen_types |= {row["type"] for row in body["results"]}
        cursor = body["cursor"]["next"]
        assert cursor is not None
    assert seen_types >= ALL_TX_TYPES
    # An empty page (below the first block) has null cursors: still the schema.
    empty = assert_conforms(schema, http.get(f"{sim.url}/extended/v3/transactions?cursor=0:0:0", timeout=10))
    assert empty["results"] == [] and empty["cursor"] == {"next": None, "previous": None, "current": None}


def test_burn_block_answers_conform(sim: SimulatorServer, http: requests.Session) -> None:
    listing = assert_conforms(
        response_schema("/extended/v2/burn-blocks/"),
        http.get(f"{sim.url}/extended/v2/burn-blocks", params={"limit": 30, "offset": 500}, timeout=10),
    )
    assert len(listing["results"]) == 30
    # Integers on the wire, as the real serializer writes them; 0 only for one-block burn blocks.
    assert all(isinstance(b["avg_block_time"], int) and b["avg_block_time"] > 0 for b in listing["results"])
    height = listing["results"][0]["burn_block_height"]
    one = assert_conforms(
        response_schema("/extended/v2/burn-blocks/{height_or_hash}"),
        http.get(f"{sim.url}/extended/v2/burn-blocks/{height}", timeout=10),
    )
    assert one == listing["results"][0]
    blocks = assert_conforms(
        response_schema("/extended/v2/burn-blocks/{height_or_hash}/blocks"),
        http.get(f"{sim.url}/extended/v2/burn-blocks/{height}/blocks", params={"limit": 30}, timeout=10),
    )
    assert [b["hash"] for b in blocks["results"]] == one["stacks_blocks"][:30]
    assert sum(b["tx_count"] for b in blocks["results"]) <= one["total_tx_count"]


def test_block_answers_conform_and_their_cursors_chain(sim: SimulatorServer, http: requests.Session) -> None:
    schema = response_schema("/extended/v2/blocks/")
    top = assert_conforms(schema, http.get(f"{sim.url}/extended/v2/blocks", params={"limit": 10}, timeout=10))
    older = assert_conforms(
        schema, http.get(f"{sim.url}/extended/v2/blocks", params={"limit": 10, "offset": 10}, timeout=10)
    )
    # The real cursors (pg-store-v2.ts getBlocks): the page's first block; `prev_cursor` the first block of the
    # older page; `next_cursor` the newer page's first block, none above the tip.
    assert top["cursor"] == top["results"][0]["index_block_hash"]
    assert top["next_cursor"] is None
    assert top["prev_cursor"] == older["results"][0]["index_block_hash"] == older["cursor"]
    assert older["next_cursor"] == top["cursor"]
    by_height = assert_conforms(
        response_schema("/extended/v2/blocks/{height_or_hash}"),
        http.get(f"{sim.url}/extended/v2/blocks/{older['results'][3]['height']}", timeout=10),
    )
    assert by_height == older["results"][3]
    start, _ = day_bounds(DAY)
    at_midnight = assert_conforms(
        response_schema("/extended/v2/blocks/by-block-time/{timestamp}"),
        http.get(f"{sim.url}/extended/v2/blocks/by-block-time/{start}", timeout=10),
    )
    assert at_midnight["block_time"] <= start


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/extended/v1/tx", {"limit": 51}),
        ("/extended/v3/transactions", {"limit": 51}),
        ("/extended/v3/transactions", {"cursor": "not-a-cursor"}),
        ("/extended/v2/burn-blocks", {"limit": 31}),
        ("/extended/v2/blocks", {"limit": 31}),
    ],
)
def test_400_bodies_conform(sim: SimulatorServer, http: requests.Session, path: str, params: dict) -> None:
    body = assert_conforms(ERROR_SCHEMA, http.get(f"{sim.url}{path}", params=params, timeout=10), 400)
    assert body["error"] == "Bad Request" and body["message"]


@pytest.mark.parametrize(
    "path", ["/extended/v2/blocks/by-block-time/1", "/extended/v2/burn-blocks/1/blocks", "/extended/v9/nothing"]
)
def test_404_bodies_conform(sim: SimulatorServer, http: requests.Session, path: str) -> None:
    body = assert_conforms(ERROR_SCHEMA, http.get(f"{sim.url}{path}", timeout=10), 404)
    assert body["error"] == "Not Found"


def test_410_is_the_real_deprecation_plugin_answer(sim: SimulatorServer, http: requests.Session) -> None:
    sim.faults = FaultConfig(gone=True)
    response = http.get(f"{sim.url}/extended/v1/tx", params={"limit": 50}, timeout=10)
    body = assert_conforms(ERROR_SCHEMA, response, 410)
    # src/api/deprecation-plugin.ts:28-31 and :42 with the default message of src/api/init.ts:189.
    assert body == {
        "error": "Gone",
        "message": "This endpoint has been disabled. See https://docs.hiro.so/stacks/api for more information",
    }
    assert response.headers["Warning"] == '299 - "Deprecated: See https://docs.hiro.so/stacks/api for more information"'


def test_429_body_conforms(chain: SyntheticChain, http: requests.Session) -> None:
    with SimulatorServer(chain, rpm_limit=1) as limited:
        ok = http.get(f"{limited.url}/extended/v2/burn-blocks", params={"limit": 1}, timeout=10)
        assert ok.status_code == 200
        refused = http.get(f"{limited.url}/extended/v2/burn-blocks", params={"limit": 1}, timeout=10)
    body = assert_conforms(ERROR_SCHEMA, refused, 429)
    assert body["error"] == "Too Many Requests"
    assert int(refused.headers["retry-after"]) >= 1
