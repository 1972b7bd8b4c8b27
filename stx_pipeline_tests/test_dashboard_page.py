"""The published dashboard page: offline, escaped, atomic, and consistent with DuckDB."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import duckdb
import pytest

from stx_pipeline.dashboard import files, metrics
from stx_pipeline.dashboard.models import DashboardResult
from stx_pipeline.dashboard.render import NA, render_page, write_dashboard
from stx_pipeline.dashboard.value import DEFINITIONS as VALUE_DEFINITIONS
from stx_pipeline.schema import TABLE
from stx_pipeline_tests.test_dashboard_metrics import (
    FIRST,
    HOSTILE_CONTRACT,
    HOSTILE_FUNCTION,
    A,
    fixture_rows,
    make_db,
    tx,
)
from stx_pipeline_tests.test_value_metrics import build as build_value_history
from stx_pipeline_tests.test_value_metrics import history as value_history

BUILT_AT = datetime(2025, 4, 10, 8, 0, 30, tzinfo=UTC)
CHART_IDS = (
    "chart-daily-wallets",
    "chart-weekly-wallets",
    "chart-monthly-wallets",
    "chart-dau-mau",
    "chart-tx-type",
    "chart-tx-status",
    "chart-fees",
    "chart-cohorts",
)
HOSTILE_TYPE = "</script><!--'\"&x"


class _Page(HTMLParser):
    """Collects script elements and table-cell text as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.cells: list[str] = []
        self._script: dict[str, str | None] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self._script = dict(attrs)
            self.scripts.append((self._script, ""))
        elif tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None
        elif tag == "td" and self._cell is not None:
            self.cells.append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)
        elif self._cell is not None:
            self._cell.append(data)


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def json_script(html: str, element_id: str) -> object:
    (text,) = [text for attrs, text in parse(html).scripts if attrs.get("id") == element_id]
    return json.loads(text)


# Module-scoped: most tests only read the database and the page; the two that rewrite a site use `fresh_site`.
@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    rows = [*fixture_rows(), tx(date(2025, 3, 27), A, HOSTILE_TYPE, fee=7)]
    c = make_db(tmp_path_factory.mktemp("db") / "stx.duckdb", rows)
    yield c
    c.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, conn: duckdb.DuckDBPyConnection) -> DashboardResult:
    return write_dashboard(conn, tmp_path_factory.mktemp("page") / "site", built_at=BUILT_AT)


@pytest.fixture
def fresh_site(tmp_path: Path, conn: duckdb.DuckDBPyConnection) -> DashboardResult:
    return write_dashboard(conn, tmp_path / "site", built_at=BUILT_AT)


LIBRARY = f"assets/{files.PLOTLY_JS}"


def test_vendored_library_is_the_pinned_partial_bundle() -> None:
    """The checked-in bundle is byte for byte the npm package's file named in vendor/README.md."""
    source = files.plotly_js_source()
    payload = source.read_bytes()
    assert hashlib.sha256(payload).hexdigest() == files.PLOTLY_SHA256
    assert f"plotly.js (cartesian - minified) v{files.PLOTLY_VERSION}".encode() in payload[:200]
    assert len(payload) == 1_500_041  # the full bundle is 4.8 MB
    readme = (files.VENDOR_DIR / "README.md").read_text()
    assert files.PLOTLY_VERSION in readme and files.PLOTLY_SHA256 in readme
    assert "MIT" in (files.VENDOR_DIR / "plotly-LICENSE").read_text()


def page_weight(page: Path) -> int:
    """The page's HTML plus every script it loads from a file beside it."""
    srcs = [attrs["src"] for attrs, _ in parse(page.read_text("utf-8")).scripts if attrs.get("src")]
    return page.stat().st_size + sum((page.parent / str(src)).stat().st_size for src in srcs)


def test_page_and_library_are_written(fresh_site: DashboardResult, tmp_path: Path) -> None:
    site = fresh_site
    out = tmp_path / "site"
    assert site.path == out / "index.html" and site.path.is_file()
    library = out / LIBRARY
    assert library.read_bytes() == files.plotly_js_source().read_bytes()
    html = site.path.read_text("utf-8")
    assert f'<script src="{LIBRARY}"></script>' in html
    assert site.size_bytes == site.path.stat().st_size
    assert sorted(p.name for p in out.iterdir()) == ["assets", "index.html", "value.html"]  # no temp file left
    assert sorted(p.name for p in (out / "assets").iterdir()) == [files.PLOTLY_JS]
    assert oct(site.path.stat().st_mode & 0o777) == "0o644"


def test_result_metadata(site: DashboardResult) -> None:
    assert (site.first_day, site.last_day, site.days_covered) == (FIRST, date(2025, 4, 9), 37)
    assert site.missing_days == (date(2025, 4, 2), date(2025, 4, 3), date(2025, 4, 4))
    assert site.headline["active_wallets_7d"] == 3
    assert site.headline["active_wallets_30d"] == 4
    assert site.headline["new_wallets_30d"] == 2
    assert site.headline["transactions_total"] == 55
    assert site.headline["fees_total_stx"] == pytest.approx(0.032156)


def test_nothing_is_loaded_from_the_network(site: DashboardResult) -> None:
    html = site.path.read_text("utf-8")
    assert "http://" not in html
    # The only absolute URLs are links a reader clicks (the explorer): nothing the page loads by itself.
    assert not re.search(r"""src\s*=\s*["']?\s*(?:[a-z]+:)?//""", html, re.IGNORECASE)
    hrefs = re.findall(r"""<(\w+)[^>]*\bhref\s*=\s*["']?\s*(?:[a-z]+:)?//""", html, re.IGNORECASE)
    assert hrefs and set(hrefs) == {"a"}
    assert "@import" not in html and "url(" not in html


def test_header_states_coverage_and_freshness(site: DashboardResult) -> None:
    html = site.path.read_text("utf-8")
    assert "2025-03-01 → 2025-04-09" in html
    assert "37 of 40" in html
    assert "<code>2025-04-02..2025-04-04</code>" in html
    assert "Built</dt><dd>2025-04-10 08:00 UTC" in html
    assert '2025-04-10 00:00 UTC <span class="muted">(8 h 0 min before build)' in html
    for chart in CHART_IDS:
        assert f'id="{chart}"' in html


def test_hostile_chain_strings_stay_text(site: DashboardResult) -> None:
    html = site.path.read_text("utf-8")
    assert "<script>alert" not in html
    assert "</script><script>" not in html
    assert HOSTILE_TYPE not in html and "<!--" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&#34;&#39;" in html
    assert "&lt;/script&gt;&lt;script&gt;" in html
    page = parse(html)
    # Exactly our four script elements, and the hostile strings read back verbatim as cell text.
    assert [attrs.get("id") or attrs.get("src") for attrs, _ in page.scripts] == [
        "stx-totals",
        "stx-data",
        LIBRARY,
        None,
    ]
    assert HOSTILE_CONTRACT in page.cells and HOSTILE_FUNCTION in page.cells
    # The hostile tx_type travels in the chart JSON and decodes to itself.
    data = json_script(html, "stx-data")
    assert HOSTILE_TYPE in [s["name"] for s in data["tx_by_type"]["series"]]  # type: ignore[index]


def test_totals_json_matches_duckdb(site: DashboardResult, conn: duckdb.DuckDBPyConnection) -> None:
    totals = json_script(site.path.read_text("utf-8"), "stx-totals")
    n, fees = conn.execute(f"SELECT count(*), sum(fee_ustx) FROM {TABLE}").fetchone()
    assert totals == {
        "transactions": n,
        "fees_ustx": fees,
        "first_day": "2025-03-01",
        "last_day": "2025-04-09",
        "days_covered": 37,
    }


def test_rewrite_is_atomic_and_keeps_an_unchanged_library(
    fresh_site: DashboardResult, conn: duckdb.DuckDBPyConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = fresh_site
    out = tmp_path / "site"
    library = out / LIBRARY
    inode = library.stat().st_ino
    write_dashboard(conn, out, built_at=BUILT_AT)
    assert library.stat().st_ino == inode  # identical library: not copied again

    before = site.path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_dashboard(conn, out, built_at=datetime(2030, 1, 1, tzinfo=UTC))
    assert site.path.read_bytes() == before  # readers still see the complete old page
    assert sorted(p.name for p in out.iterdir()) == ["assets", "index.html", "value.html"]


def test_changed_library_is_replaced(
    fresh_site: DashboardResult, conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    library = tmp_path / "site" / LIBRARY
    library.write_text("stale")
    write_dashboard(conn, tmp_path / "site", built_at=BUILT_AT)
    assert library.read_bytes() == files.plotly_js_source().read_bytes()


def test_empty_table_renders_no_data(tmp_path: Path) -> None:
    conn = make_db(tmp_path / "empty.duckdb", [])
    result = write_dashboard(conn, tmp_path / "site", built_at=BUILT_AT)
    html = result.path.read_text("utf-8")
    assert "No data" in html
    assert json_script(html, "stx-totals") == {
        "transactions": 0,
        "fees_ustx": 0,
        "first_day": None,
        "last_day": None,
        "days_covered": 0,
    }
    assert (result.first_day, result.days_covered, result.missing_days) == (None, 0, ())


def test_render_page_is_deterministic(conn: duckdb.DuckDBPyConnection) -> None:
    data = metrics.compute_all(conn)
    assert render_page(data, BUILT_AT) == render_page(metrics.compute_all(conn), BUILT_AT)


# The chart script runs under node against a stub DOM and Plotly: it must parse the embedded
# JSON and call Plotly once per chart div, even where no browser is installed.
_NODE_HARNESS = r"""
const fs = require("fs");
const html = fs.readFileSync(process.argv[2], "utf8");
const grab = (re) => { const m = html.match(re); if (!m) throw new Error("missing " + re); return m[1]; };
const json = grab(/<script type="application\/json" id="stx-data">([\s\S]*?)<\/script>/);
const code = grab(/<script>\n([\s\S]*?)<\/script>\n<\/body>/);
const drawn = {};
const div = (id) => ({ id: id, appendChild() {}, style: {} });
global.document = { getElementById: (id) => id === "stx-data" ? { textContent: json } : div(id),
                    createElement: () => ({}), querySelectorAll: () => [] };
global.Plotly = { newPlot: (el, traces, layout, config) => { drawn[el.id] = { traces, layout, config }; } };
eval(code);
console.log(JSON.stringify(drawn));
"""


def run_chart_script(page: Path, tmp_path: Path) -> dict[str, Any]:
    """Every Plotly.newPlot call of the page's script: {chart id: {traces, layout, config}}."""
    harness = tmp_path / "harness.js"
    harness.write_text(_NODE_HARNESS)
    out = subprocess.run(["node", str(harness), str(page)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.slow  # starts a process: node
def test_chart_script_draws_every_chart(site: DashboardResult, tmp_path: Path) -> None:
    drawn = run_chart_script(site.path, tmp_path)
    assert sorted(drawn) == sorted(CHART_IDS)
    assert all(len(d["traces"]) >= 1 for d in drawn.values())


def _round_step(step: float) -> bool:
    """1, 2, 2.5 or 5 times a power of ten."""
    mantissa = step / 10 ** math.floor(math.log10(step))
    return any(math.isclose(mantissa, m) for m in (1, 2, 2.5, 5))


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.slow  # starts a process: node
def test_chart_layouts_fix_the_reported_defects(site: DashboardResult, tmp_path: Path) -> None:
    drawn = run_chart_script(site.path, tmp_path)
    # No mode bar over any chart.
    assert {d["config"]["displayModeBar"] for d in drawn.values()} == {False}
    # Weekly ticks on the Mondays the bars stand for, a whole number of weeks apart.
    weekly = drawn["chart-weekly-wallets"]
    xaxis = weekly["layout"]["xaxis"]
    assert date.fromisoformat(xaxis["tick0"]).isoweekday() == 1 and xaxis["dtick"] % (7 * 86_400_000) == 0
    assert all(date.fromisoformat(x).isoweekday() == 1 for x in weekly["traces"][0]["x"])
    # Months as two-line category labels (no rotation into the axis title), no axis title.
    monthly = drawn["chart-monthly-wallets"]
    assert monthly["traces"][0]["x"] == ["Mar<br>2025", "Apr<br>2025"]
    assert monthly["layout"]["xaxis"]["type"] == "category" and "title" not in monthly["layout"]["xaxis"]
    # Dual-axis charts: both axes 4 round steps from 0.
    for chart in ("chart-dau-mau", "chart-fees"):
        layout = drawn[chart]["layout"]
        for axis in ("yaxis", "yaxis2"):
            step = layout[axis]["dtick"]
            assert _round_step(step) and layout[axis]["range"] == [0, pytest.approx(4 * step)], (chart, axis)
    # Fixed colours per type; system types hidden by default, user types shown.
    types = {t["name"]: t for t in drawn["chart-tx-type"]["traces"]}
    assert types["token_transfer"]["marker"]["color"] == "#5546ff"
    assert types["contract_call"]["marker"]["color"] == "#f28e2b"
    assert types["coinbase (system)"]["visible"] == "legendonly"
    assert types["token_transfer"]["visible"] is True
    statuses = {t["name"]: t["marker"]["color"] for t in drawn["chart-tx-status"]["traces"]}
    assert statuses["success"] == "#59a14f" and statuses["abort_by_post_condition"] == "#e15759"
    # Cohort heatmap from week 1, values in discrete bands (z is a band index + 0.5).
    heat = drawn["chart-cohorts"]["traces"][0]
    assert heat["x"][0] == 1
    assert {z % 1 for row in heat["z"] for z in row if z is not None} == {0.5}


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.slow  # starts a process: node
def test_value_chart_script_draws_every_chart(value_site: Path, tmp_path: Path) -> None:
    drawn = run_chart_script(value_site / "value.html", tmp_path)
    assert sorted(drawn) == sorted(VALUE_CHART_IDS)
    assert all(len(d["traces"]) >= 1 for d in drawn.values())
    curves = {t["name"]: t["y"] for t in drawn["chart-retention-curves"]["traces"]}
    assert curves["All (blended)"][0] is not None


# The page in a real browser (charts drawn, console clean, screenshot): test_dashboard_browser.py.


# The value page over test_value_metrics' hand-computed history (values checked there; here: that they reach the
# page, where, and how they are labelled).
VALUE_CHART_IDS = (
    "chart-cohort-value",
    "chart-fee-histogram",
    "chart-funnel",
    "chart-retention-curves",
    "chart-cohort-retention",
    "chart-network-fees",
    "chart-rates",
    "chart-new-returning",
    "chart-stx-transferred",
)


@pytest.fixture(scope="module")
def value_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once per module: the tests using it only read the pages."""
    root = tmp_path_factory.mktemp("value")
    conn = build_value_history(root / "v.duckdb", value_history())
    try:
        write_dashboard(conn, root / "site", built_at=BUILT_AT)
    finally:
        conn.close()
    return root / "site"


def row_cells(html: str, first_cell: str) -> list[str]:
    """The text of the cells of the table row whose first cell starts with `first_cell`."""
    cells = parse(html).cells
    i = next(i for i, c in enumerate(cells) if c.startswith(first_cell))
    return [c.strip() for c in cells[i : i + 11]]


def test_value_page_shows_the_hand_computed_cohorts(value_site: Path) -> None:
    html = (value_site / "value.html").read_text("utf-8")
    # Week of 2025-01-06: A, S, B (S paid B's sponsored fee); 30-day fees 1,100,000 / 3,000 / 3,000 µSTX.
    cells = row_cells(html, "2025-01-06")
    assert cells[:5] == ["2025-01-06 ‡", "3", "1 33.3%", "1 33.3%", "1 33.3%"]
    assert cells[5] == "0.3687 / 0.0030"  # mean 1,106,000 / 3 µSTX, median 3,000
    # 60 and 90 days: 2,106,000 / 3 and 4,106,000 / 3 µSTX
    assert cells[6] == "0.7020 / 0.0030" and cells[7] == "1.3687 / 0.0030"
    assert cells[8] == "0.0030 / 0.0030 / 0.5515 / 0.8806"  # quantile_cont p25/p50/p75/p90
    assert cells[9:11] == ["66.7%", "33.3%"]  # day 1+, day 7+
    # C's week: too young for 90 days, so a dash, not a zero.
    assert row_cells(html, "2025-02-03")[5:8] == ["0.9000 / 0.9000", "0.9000 / 0.9000", NA]
    # E activated on the last stored day: its cohort is listed with nothing ripe.
    assert row_cells(html, "2025-04-14")[1:5] == ["1", "0 0.0%", NA, NA]


def test_value_page_defines_every_metric_and_states_the_funded_substitute(value_site: Path) -> None:
    html = (value_site / "value.html").read_text("utf-8")
    text = html_text(html)
    for definition in VALUE_DEFINITIONS.values():
        assert definition in text
    assert "which the transaction history cannot give" in text
    assert "received by token transfer on or before its activation day" in text
    for chart in VALUE_CHART_IDS:
        assert f'id="{chart}"' in html
    data = json_script(html, "stx-data")
    assert data["cohorts"]["label"][:2] == ["2025-01-06", "2025-02-03"]  # type: ignore[index]
    assert data["days"]["sponsored_share"][-2:] == [0.5, 0.0]  # type: ignore[index]


def html_text(html: str) -> str:
    """Visible text with entities decoded and whitespace collapsed."""

    class _Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.parts: list[str] = []
            self._skip = 0

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self._skip += tag in ("script", "style")

        def handle_endtag(self, tag: str) -> None:
            self._skip -= tag in ("script", "style")

        def handle_data(self, data: str) -> None:
            if not self._skip:
                self.parts.append(data)

    parser = _Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def test_both_pages_share_the_navigation_and_the_missing_library_banner(value_site: Path) -> None:
    for page, other in (("index.html", "value.html"), ("value.html", "index.html")):
        html = (value_site / page).read_text("utf-8")
        assert f'<a href="{other}">' in html and 'aria-current="page"' in html
        # Hidden until the script finds no Plotly: then it says what is missing and what to do.
        assert '<div class="card banner" id="library-missing" role="alert" hidden>' in html
        assert f"the chart library <code>{LIBRARY}</code> did not load" in html


@pytest.mark.parametrize("page", ["index.html", "value.html"])
def test_page_weight_is_under_two_megabytes(value_site: Path, page: str) -> None:
    weight = page_weight(value_site / page)
    assert weight < 2_000_000, weight
    assert weight > files.plotly_js_source().stat().st_size  # the library is counted


def test_addresses_link_to_the_explorer_escaped(site: DashboardResult) -> None:
    html = site.path.read_text("utf-8")
    assert f'<a class="addr" href="https://explorer.hiro.so/address/{A}?chain=mainnet"' in html
    # The hostile contract id is percent-encoded in the link and stays text in the cell.
    hrefs = re.findall(r'href="(https://explorer\.hiro\.so/txid/[^"]*)"', html)
    assert hrefs and all(re.fullmatch(r"[\w:/.\-%?=]+", h) for h in hrefs)
    assert HOSTILE_CONTRACT in parse(html).cells


def test_a_short_history_says_why_cards_are_empty(tmp_path: Path) -> None:
    """14 days (the old demo): DAU / MAU and retention explain themselves, and the 90-day row, which would repeat
    the 30-day one, is left out."""
    rows = [r for r in fixture_rows() if r["partition_date"] < FIRST + timedelta(days=14)]
    conn = make_db(tmp_path / "short.duckdb", rows)
    try:
        html = write_dashboard(conn, tmp_path / "site", built_at=BUILT_AT).path.read_text("utf-8")
    finally:
        conn.close()
    data = json_script(html, "stx-data")
    assert data["dau_mau_empty"] == (  # type: ignore[index]
        "DAU / MAU needs 30 days of history (MAU counts the trailing 30 days); 14 days are stored, "
        "so the first ratio appears on day 30."
    )
    text = html_text(html)
    assert "Left out: the 90-day window, longer than the stored history: it would repeat the last row." in text
    cells = parse(html).cells
    windows = [c.split(" ")[0] for c in cells if re.match(r"\d+ days", c)]
    assert windows == ["7", "30"]
    assert "not yet needs wallets first seen by 2025-02-12: the history starts 2025-03-01" in text
