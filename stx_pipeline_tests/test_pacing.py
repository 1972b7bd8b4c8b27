"""Pacing by what the server says: header parsing on real HTTP answers, and measured request rates.

Rates are measured over a bounded window from the simulator's own request count (/_sim/stats) and compared as
ratios; the pacer only ever adds waits, so a noisy machine can make a rate lower, never higher.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from stx_pipeline.hiro import HiroClient
from stx_pipeline.hiro.pacing import PaceBudget, advertised_limits, names_a_limit, pace_under
from stx_pipeline.simulator import ChainConfig, SimulatorServer, SyntheticChain
from stx_pipeline_tests.scripted_server import Answer, ScriptedServer

HIRO_HEADERS = {  # as docs.hiro.so "Response headers" lists them, keyless
    "ratelimit-limit": "50",
    "ratelimit-remaining": "49",
    "ratelimit-reset": "1767225600",
    "x-ratelimit-cost-stacks": "1",
    "x-ratelimit-limit-stacks-minute": "50",
    "x-ratelimit-remaining-stacks-minute": "49",
    "x-ratelimit-limit-stacks-second": "20",
    "x-ratelimit-remaining-stacks-second": "19",
}


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer().start()
    yield srv
    srv.stop()


def answer_headers(server: ScriptedServer, headers: dict[str, str], status: int = 200) -> Mapping[str, str]:
    """The headers of a real HTTP answer carrying `headers` (case and folding as the wire gives them)."""
    server.push(Answer(status, {"ok": True}, headers))
    return requests.get(f"{server.url}/extended", timeout=10).headers


@pytest.mark.parametrize(
    ("headers", "limits"),
    [
        (HIRO_HEADERS, [(50, 60), (20, 1)]),  # Hiro: window-named headers rule, the bare ratelimit-limit adds nothing
        ({"RateLimit-Limit": "120"}, [(120, 60)]),  # bare: per minute, Hiro's unit
        ({"ratelimit-limit": "20", "x-ratelimit-limit-stacks-minute": "500"}, [(500, 60)]),  # bare never per-second
        ({"ratelimit-limit": "100, 100;w=60, 1000;w=3600"}, [(100, 60), (1000, 3600)]),  # IETF draft 00-02
        ({"ratelimit-policy": "10;w=1"}, [(10, 1)]),  # IETF draft 03-06
        ({"RateLimit-Policy": '"default";q=300;w=60, "daily";q=10000;w=86400'}, [(300, 60), (10000, 86400)]),  # 07+
        ({"ratelimit-limit": "lots"}, []),
        ({"x-ratelimit-cost-stacks": "1"}, []),
    ],
)
def test_advertised_limits_from_real_answers(server: ScriptedServer, headers: dict, limits: list) -> None:
    assert advertised_limits(answer_headers(server, headers)) == limits


def test_tightest_limit_and_the_margin(server: ScriptedServer) -> None:
    budget = PaceBudget(None, 50)
    assert budget.rpm == 49  # before any answer: under the documented keyless limit
    assert budget.observe(answer_headers(server, HIRO_HEADERS), 200) is False  # Hiro says 50/min too: same pace
    assert budget.advertised == (50, 60)
    # An hourly quota tighter than the minute limit rules: 999 per hour.
    assert budget.observe(answer_headers(server, {"ratelimit-limit": "100, 100;w=60, 1000;w=3600"}), 200)
    assert budget.rpm == pytest.approx(999 / 60)
    assert pace_under(1, 60) == 1  # no margin below one request


def test_no_limit_header_lifts_the_default_once_and_never_a_known_limit(server: ScriptedServer) -> None:
    unlimited = PaceBudget(None, 50)
    assert unlimited.observe(answer_headers(server, {}), 200)
    assert unlimited.rpm is None

    known = PaceBudget(None, 500)
    known.observe(answer_headers(server, {"x-ratelimit-limit-stacks-minute": "120"}), 200)
    assert known.rpm == 119
    # A proxy's bare 502, and a later answer without headers, keep what the API said.
    assert not known.observe(answer_headers(server, {}, 502), 502)
    assert not known.observe(answer_headers(server, {}), 200)
    assert known.rpm == 119

    # An unreadable limit is not "no limit": the default stands.
    garbled = PaceBudget(None, 50)
    assert not garbled.observe(answer_headers(server, {"ratelimit-limit": "lots"}), 200)
    assert garbled.rpm == 49
    assert names_a_limit(answer_headers(server, {"ratelimit-limit": "lots"}))


def test_client_pace_before_and_after_the_first_answer(server: ScriptedServer) -> None:
    assert HiroClient(server.url).requests_per_minute == 49  # keyless: Hiro's documented 50/min, one under
    assert HiroClient(server.url, api_key="k").requests_per_minute == 499  # keyed: 500/min
    assert HiroClient(server.url, requests_per_minute=30).requests_per_minute == 30  # an own budget below it
    server.push(Answer(200, {"ok": True}, {"x-ratelimit-limit-stacks-minute": "500"}))
    keyed = HiroClient(server.url, api_key="k", requests_per_minute=600)
    keyed.get_json("/extended")
    assert keyed.requests_per_minute == 499  # the lower of 600 configured and 500 advertised
    server.default = Answer(200, {"ok": True})
    plain = HiroClient(server.url)
    plain.get_json("/extended")
    assert plain.requests_per_minute == 0  # no limit advertised, none configured: unpaced


# --- measured against the simulator -----------------------------------------------------------------


PATH = "/extended/v2/burn-blocks"


def measured_rpm(sim: SimulatorServer, client: HiroClient, requests_n: int, threads: int = 4) -> float:
    """Requests per minute while `threads` page threads make `requests_n` calls as fast as the client allows.

    The simulator's own count (/_sim/stats) must be exactly the calls made (no retry, no 429). The rate counts
    intervals (calls beyond the first) over the wall time, so an evenly paced client at R/min measures <= R.
    """
    before = sim.stats()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda _: client.get_json(PATH, {"limit": 1}), range(requests_n)))
    elapsed = time.monotonic() - started
    after = requests.get(f"{sim.url}/_sim/stats", timeout=10).json()
    assert after["requests"] - before["requests"] == requests_n
    assert after["sent_429"] == before["sent_429"]
    return (requests_n - 1) * 60.0 / elapsed


@pytest.fixture(scope="module")
def chain() -> SyntheticChain:
    return SyntheticChain(ChainConfig(seed=11, txs_per_day=400))


def test_simulator_advertises_a_limit_only_when_it_has_one(chain: SyntheticChain) -> None:
    with SimulatorServer(chain) as free:
        headers = requests.get(f"{free.url}{PATH}", timeout=10).headers
    assert not names_a_limit(headers)
    with SimulatorServer(chain, rpm_limit=120) as limited:
        headers = requests.get(f"{limited.url}{PATH}", timeout=10).headers
    assert advertised_limits(headers) == [(120, 60)]
    assert headers["ratelimit-limit"] == "120" and headers["ratelimit-remaining"] == "119"


@pytest.mark.slow  # measures a request rate over seconds of wall time
def test_advertised_limit_below_the_budget_rules(chain: SyntheticChain) -> None:
    with SimulatorServer(chain, rpm_limit=120) as sim, HiroClient(sim.url, requests_per_minute=600) as client:
        rate = measured_rpm(sim, client, 13)
        assert client.requests_per_minute == 119
    # 12 intervals of at least 60/119 s: at or below the advertised limit, and not far below it.
    assert 0.6 <= rate / 120 <= 1.0, rate


@pytest.mark.slow  # measures a request rate over seconds of wall time
def test_budget_below_the_advertised_limit_rules(chain: SyntheticChain) -> None:
    with SimulatorServer(chain, rpm_limit=600) as sim, HiroClient(sim.url, requests_per_minute=120) as client:
        rate = measured_rpm(sim, client, 13)
        assert client.requests_per_minute == 120
    assert 0.6 <= rate / 120 <= 1.0, rate


def test_no_limit_advertised_and_no_budget_is_full_speed(chain: SyntheticChain) -> None:
    with SimulatorServer(chain) as sim, HiroClient(sim.url) as client:
        rate = measured_rpm(sim, client, 200)
        assert client.requests_per_minute == 0
    # Unpaced: far above any budget that would pace (the keyless default is 50/min).
    assert rate / 120 >= 10, rate
