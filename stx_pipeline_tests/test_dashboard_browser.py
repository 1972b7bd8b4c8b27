"""The published page in a real headless Chromium: every chart drawn, no console error, no injected element.

Chromium is driven over the DevTools protocol through `--remote-debugging-pipe` (fd 3 in, fd 4 out,
NUL-separated JSON): no extra dependency, and console errors come typed (`Runtime.consoleAPICalled` type
"error", `Runtime.exceptionThrown`, `Log.entryAdded` level "error") instead of being guessed from log text.

Skipped when Chromium is missing, unless STX_REQUIRE_BROWSER=1 (CI), which turns that into a failure.
The screenshots of the realistic pages go to test-artifacts/; with STX_UPDATE_SCREENSHOTS=1 also to docs/img/
(the README shows those).
"""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from stx_pipeline.dashboard import build_dashboard_from_path
from stx_pipeline.dashboard.files import PLOTLY_JS
from stx_pipeline.days import day_window
from stx_pipeline.hiro import records_to_table
from stx_pipeline.simulator import ChainConfig, SyntheticChain
from stx_pipeline.simulator.catalog import HOSTILE_CONTRACT_NAME, HOSTILE_FUNCTION_NAME
from stx_pipeline.storage import replace_day
from stx_pipeline_tests.conftest import PROJECT_ROOT
from stx_pipeline_tests.test_dashboard_page import CHART_IDS, VALUE_CHART_IDS, page_weight

pytestmark = pytest.mark.slow  # a headless browser

REQUIRE_BROWSER = os.environ.get("STX_REQUIRE_BROWSER") == "1"
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
DOCS_IMG = PROJECT_ROOT / "docs" / "img"
UPDATE_SCREENSHOTS = os.environ.get("STX_UPDATE_SCREENSHOTS") == "1"
WIDTH = 1400
# Realistic pages: 100 days of the simulator's chain at ~1,000 transactions a day (~100,000 rows): long enough for
# every card of both pages (DAU / MAU from day 30, 90-day fee value from day 90).
REALISTIC_DAYS = 100
REALISTIC_TXS_PER_DAY = 1000
PAGE_CHARTS = {"index.html": CHART_IDS, "value.html": VALUE_CHART_IDS}
LAST_DAY = dt.date(2025, 3, 16)
BUILT_AT = dt.datetime(2025, 3, 17, 6, 30, tzinfo=dt.UTC)


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = chromium_binary()
    if binary is None:
        if REQUIRE_BROWSER:
            pytest.fail("STX_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (set STX_REQUIRE_BROWSER=1 to make this a failure)")
    return binary


def _above_nine(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


class DevTools:
    """A minimal DevTools protocol client over Chromium's debugging pipe, one page session."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # Child-side ends at 10 or above, so moving them onto 3 and 4 below never clobbers one another.
        to_chrome_r, from_chrome_w = (_above_nine(fd) for fd in (to_chrome_r, from_chrome_w))

        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        # The protocol wants exactly fds 3 (in) and 4 (out). bash (dash takes single-digit fds only) moves
        # our pipe ends there: no preexec_fn (unsafe with threads), and it works through Debian's wrapper script.
        wire = f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w} {to_chrome_r}<&- {from_chrome_w}>&-'
        self.proc = subprocess.Popen(
            ["bash", "-c", wire, binary, *flags],
            pass_fds=(to_chrome_r, from_chrome_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None

    def close(self) -> None:
        try:
            self.call("Browser.close", session=False, timeout=10)
        except Exception:
            self.proc.kill()
        finally:
            self.proc.wait(timeout=30)
            os.close(self._to_chrome)
            os.close(self._from_chrome)

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no answer from chromium")
            ready, _, _ = select.select([self._from_chrome], [], [], remaining)
            if ready:
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium closed the pipe (exit {self.proc.poll()})")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: bool = True, timeout: float = 60):
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._read_message(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)  # an event, kept for the console checks

    def wait_for(self, method: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._read_message(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def problems(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions, and browser-side errors (e.g. a file not found)."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
                found.append(f"console.{params['type']}: {[a.get('value') for a in params.get('args', [])]}")
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                found.append(f"uncaught: {details.get('exception', {}).get('description') or details.get('text')}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                found.append(f"log error: {entry.get('text')} {entry.get('url', '')}")
        return found


@pytest.fixture
def devtools(chromium: str) -> Iterator[DevTools]:
    with tempfile.TemporaryDirectory(prefix="stx-chromium-") as profile:
        client = DevTools(chromium, Path(profile))
        try:
            targets = client.call("Target.getTargets", session=False)["targetInfos"]
            page = next(t for t in targets if t["type"] == "page")
            client.session = client.call(
                "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}, session=False
            )["sessionId"]
            for domain in ("Runtime", "Page", "Log"):
                client.call(f"{domain}.enable")
            yield client
        finally:
            client.close()


def set_viewport(client: DevTools, height: int) -> None:
    metrics = {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False}
    client.call("Emulation.setDeviceMetricsOverride", metrics)


def open_page(client: DevTools, page: Path, height: int = 900, charts: tuple[str, ...] = CHART_IDS) -> None:
    client.call(
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    client.events.clear()
    client.call("Page.navigate", {"url": page.resolve().as_uri()})
    client.wait_for("Page.loadEventFired")
    # Plotly draws synchronously on load; give late errors (e.g. from resize handlers) a moment to surface.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and drawn_charts(client, charts) != sorted(charts):
        time.sleep(0.2)


def drawn_charts(client: DevTools, charts: tuple[str, ...] = CHART_IDS) -> list[str]:
    ids = json.dumps(list(charts))
    return sorted(client.evaluate(f"{ids}.filter(id => document.querySelector('#' + id + ' svg.main-svg'))"))


def screenshot(client: DevTools, target: Path) -> int:
    """The whole page at WIDTH, not only the viewport; returns the height captured."""
    height = int(client.evaluate("Math.ceil(document.documentElement.scrollHeight)"))
    client.call(
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    time.sleep(0.5)  # responsive charts re-lay out to the new viewport
    shot = client.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(base64.b64decode(shot["data"]))
    return height


def fill(db: Path, chain: SyntheticChain, days: list[dt.date]) -> None:
    db.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(db)) as conn:
        for day in days:
            replace_day(conn, day, records_to_table(chain.day_transactions(day), day, window=day_window(day)))


@pytest.fixture(scope="module")
def realistic_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("realistic")
    chain = SyntheticChain(ChainConfig(seed=7, txs_per_day=REALISTIC_TXS_PER_DAY))
    first = LAST_DAY - dt.timedelta(days=REALISTIC_DAYS - 1)
    fill(root / "stx.duckdb", chain, [first + dt.timedelta(days=i) for i in range(REALISTIC_DAYS)])
    return build_dashboard_from_path(root / "stx.duckdb", root / "public", built_at=BUILT_AT).path


# Every card of a page: a chart without a drawing, a "no data" message, or a headline figure shown as a dash.
EMPTY_CARDS = """[
  ...Array.from(document.querySelectorAll('.chart')).filter(el => !el.querySelector('svg.main-svg')
      || !(el.data || []).some(t => ['x', 'y', 'z'].some(k => (t[k] || []).some(v => v !== null)))).map(el => el.id),
  ...Array.from(document.querySelectorAll('.no-data')).map(el => 'no-data: ' + el.textContent),
  ...Array.from(document.querySelectorAll('.kpi')).filter(el => el.querySelector('.value').textContent.trim()
      .startsWith('\u2013')).map(el => 'kpi: ' + el.querySelector('.label').textContent)
]"""


@pytest.mark.parametrize("page_name", ["index.html", "value.html"])
def test_realistic_page_draws_every_card_without_errors(
    devtools: DevTools, realistic_site: Path, page_name: str
) -> None:
    page = realistic_site.parent / page_name
    charts = PAGE_CHARTS[page_name]
    open_page(devtools, page, charts=charts)
    assert drawn_charts(devtools, charts) == sorted(charts)
    assert devtools.problems() == []
    assert devtools.evaluate(EMPTY_CARDS) == []
    # The shared navigation leads to the other page, and the banner for a missing library stays hidden.
    assert devtools.evaluate(
        "Array.from(document.querySelectorAll('nav.pages a')).map(a => a.getAttribute('href'))"
    ) == [other for other in PAGE_CHARTS if other != page_name]
    assert devtools.evaluate("getComputedStyle(document.getElementById('library-missing')).display") == "none"
    assert page_weight(page) < 2_000_000
    shot = ARTIFACTS / f"wallet-{page.stem}.png"
    height = screenshot(devtools, shot)
    assert height > 2000
    assert shot.stat().st_size > 50_000
    assert devtools.problems() == []
    if UPDATE_SCREENSHOTS:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_IMG / f"dashboard-{page.stem}.png")


def test_hostile_strings_stay_text_in_the_browser(devtools: DevTools, tmp_path: Path) -> None:
    chain = SyntheticChain(ChainConfig(seed=11, txs_per_day=600, hostile_strings=True))
    # 35 days: enough history for every chart (DAU/MAU and cohorts need 30 days) to be drawn.
    fill(tmp_path / "stx.duckdb", chain, [LAST_DAY - dt.timedelta(days=i) for i in range(35)])
    page = build_dashboard_from_path(tmp_path / "stx.duckdb", tmp_path / "public", built_at=BUILT_AT).path
    open_page(devtools, page)
    assert drawn_charts(devtools) == sorted(CHART_IDS)
    assert devtools.problems() == []
    # No element came out of the chain's strings: only our 4 scripts, no <img>, and no dialog was opened.
    assert devtools.evaluate("document.scripts.length") == 4
    assert devtools.evaluate("document.images.length") == 0
    assert not [e for e in devtools.events if e.get("method") == "Page.javascriptDialogOpening"]
    text = devtools.evaluate("document.body.innerText")
    assert HOSTILE_CONTRACT_NAME in text and HOSTILE_FUNCTION_NAME in text


def test_missing_chart_library_is_reported(devtools: DevTools, tmp_path: Path) -> None:
    """The console checks above can fail: a page whose chart library is gone yields a browser error, and the page
    says so in its banner and in every chart card instead of leaving them blank."""
    chain = SyntheticChain(ChainConfig(seed=3, txs_per_day=400))
    fill(tmp_path / "stx.duckdb", chain, [LAST_DAY])
    page = build_dashboard_from_path(tmp_path / "stx.duckdb", tmp_path / "public", built_at=BUILT_AT).path
    (page.parent / "assets" / PLOTLY_JS).unlink()
    client = devtools
    for name, charts in PAGE_CHARTS.items():
        set_viewport(client, 900)
        client.events.clear()
        client.call("Page.navigate", {"url": (page.parent / name).resolve().as_uri()})
        client.wait_for("Page.loadEventFired")
        time.sleep(0.3)
        assert drawn_charts(client, charts) == []
        assert any(PLOTLY_JS in p or "ERR_FILE_NOT_FOUND" in p for p in client.problems()), client.problems()
        banner = client.evaluate("document.getElementById('library-missing').innerText")
        assert "Charts cannot be drawn" in banner and f"assets/{PLOTLY_JS}" in banner
        assert client.evaluate("getComputedStyle(document.getElementById('library-missing')).display") != "none"
        messages = client.evaluate("Array.from(document.querySelectorAll('.chart')).map(el => el.innerText)")
        assert len(messages) == len(charts)
        assert set(messages) == {"Chart not drawn: the chart library (assets/) is missing."}
