"""The published dashboard page: offline, escaped, atomic, and consistent with DuckDB."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from stx_pipeline.dashboard import files, metrics
from stx_pipeline.dashboard.models import DashboardResult
from stx_pipeline.dashboard.render import render_page, write_dashboard
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


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    rows = [*fixture_rows(), tx(date(2025, 3, 27), A, HOSTILE_TYPE, fee=7)]
    c = make_db(tmp_path / "stx.duckdb", rows)
    yield c
    c.close()


@pytest.fixture
def site(tmp_path: Path, conn: duckdb.DuckDBPyConnection) -> DashboardResult:
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


def test_page_and_library_are_written(site: DashboardResult, tmp_path: Path) -> None:
    out = tmp_path / "site"
    assert site.path == out / "index.html" and site.path.is_file()
    library = out / LIBRARY
    assert library.read_bytes() == files.plotly_js_source().read_bytes()
    html = site.path.read_text("utf-8")
    assert f'<script src="{LIBRARY}"></script>' in html
    assert site.size_bytes == site.path.stat().st_size
    assert sorted(p.name for p in out.iterdir()) == ["assets", "index.html"]  # no temp file left
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
    site: DashboardResult, conn: duckdb.DuckDBPyConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
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
    assert sorted(p.name for p in out.iterdir()) == ["assets", "index.html"]


def test_changed_library_is_replaced(site: DashboardResult, conn: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
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
global.Plotly = { newPlot: (el, traces) => { drawn[el.id] = traces.length; } };
eval(code);
console.log(JSON.stringify(drawn));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.slow  # starts a process: node
def test_chart_script_draws_every_chart(site: DashboardResult, tmp_path: Path) -> None:
    harness = tmp_path / "harness.js"
    harness.write_text(_NODE_HARNESS)
    out = subprocess.run(["node", str(harness), str(site.path)], capture_output=True, text=True, check=True)
    drawn = json.loads(out.stdout)
    assert sorted(drawn) == sorted(CHART_IDS)
    assert all(n >= 1 for n in drawn.values())


# The page in a real browser (charts drawn, console clean, screenshot): test_dashboard_browser.py.
