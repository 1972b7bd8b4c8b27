"""HTML rendering of the dashboard and its atomic publication into an output directory."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import duckdb
from jinja2 import Environment, PackageLoader, StrictUndefined

from stx_pipeline.dashboard import metrics
from stx_pipeline.dashboard.files import PLOTLY_JS, PLOTLY_VERSION, atomic_write_bytes, ensure_plotly
from stx_pipeline.dashboard.models import USTX_PER_STX, Coverage, DashboardData, DashboardResult, SummaryRow
from stx_pipeline.dashboard.payload import chart_payload, totals_payload, value_payload
from stx_pipeline.dashboard.value import ValueData, compute_value
from stx_pipeline.schema import USER_TX_TYPES
from stx_pipeline.storage.aggregates import aggregates_fresh

PAGE = "index.html"
VALUE_PAGE = "value.html"
# The navigation shared by both pages: (file, label), in order.
PAGES: tuple[tuple[str, str], ...] = ((PAGE, "Wallet growth"), (VALUE_PAGE, "Wallet value & retention"))
NA = "\u2013"  # en dash for "no value"
ASSETS_DIR = "assets"
# Page weight budget of one page: its HTML plus the scripts it loads (the partial plotly bundle).
MAX_PAGE_BYTES = 2_000_000
EXPLORER = "https://explorer.hiro.so"


def _int(value: int | None) -> str:
    return NA if value is None else f"{value:,}"


def _stx(ustx: float | int | None) -> str:
    """µSTX as STX: two decimals for large sums, more where fees are fractions of a STX."""
    if ustx is None:
        return NA
    stx = ustx / USTX_PER_STX
    return f"{stx:,.2f}" if abs(stx) >= 100 else f"{stx:,.4f}"


def _pct(share: float | None) -> str:
    return NA if share is None else f"{share * 100:.1f}%"


def _utc(moment: datetime | None) -> str:
    return NA if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _age(delta: timedelta) -> str:
    minutes = max(int(delta.total_seconds() // 60), 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    return f"{days} d {hours} h" if days else f"{hours} h {mins} min"


def _explorer_address(address: str) -> str:
    """Explorer link of a principal; quote() keeps a hostile string inside the path (autoescape does the rest)."""
    return f"{EXPLORER}/address/{quote(address, safe='')}?chain=mainnet"


def _explorer_contract(contract_id: str) -> str:
    # The explorer shows a contract (its source and calls) under /txid/<contract id>.
    return f"{EXPLORER}/txid/{quote(contract_id, safe='')}?chain=mainnet"


def _summary_rows(rows: list[SummaryRow]) -> tuple[list[SummaryRow], list[int]]:
    """Windows within the history, plus the first one longer than it; longer ones would repeat that row."""
    shown: list[SummaryRow] = []
    for r in rows:
        shown.append(r)
        if not r.complete:
            break
    return shown, [r.days for r in rows[len(shown) :]]


def _environment() -> Environment:
    # autoescape on for everything: every chain string reaching the page goes through it.
    env = Environment(
        loader=PackageLoader("stx_pipeline.dashboard", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        int=_int,
        stx=_stx,
        pct=_pct,
        utc=_utc,
        explorer_address=_explorer_address,
        explorer_contract=_explorer_contract,
    )
    # `tojson` (for the page's <script type="application/json"> data) escapes <, >, & and ' as \u escapes, so no
    # chain string can close the element or open a comment, and JSON.parse still yields the same string.
    # Compact, insertion-ordered, UTF-8 as is; NaN is refused (JSON.parse would reject the page's data).
    env.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "separators": (",", ":"), "allow_nan": False}
    return env


_ENV = _environment()


def _common(cov: Coverage, built_at: datetime, page: str, page_js: str) -> dict[str, object]:
    """What both pages' shared layout (base.html.j2) needs."""
    newest = cov.newest_tx_at
    return {
        "cov": cov,
        "built_at": built_at,
        "freshness": _age(built_at - newest) if newest else None,
        "plotly_src": f"{ASSETS_DIR}/{PLOTLY_JS}",
        "plotly_version": f"plotly.js {PLOTLY_VERSION}",
        "pages": PAGES,
        "page": page,
        "page_js": page_js,
    }


def _utc_aware(built_at: datetime) -> datetime:
    return built_at.replace(tzinfo=UTC) if built_at.tzinfo is None else built_at


def render_page(data: DashboardData, built_at: datetime) -> str:
    """The growth page, index.html."""
    built_at = _utc_aware(built_at)
    summary_rows, summary_hidden = _summary_rows(data.summary)
    return _ENV.get_template("index.html.j2").render(
        **_common(data.coverage, built_at, PAGE, "index.js"),
        title="Stacks wallet growth",
        as_of=data.as_of,
        data=data,
        summary_rows=summary_rows,
        summary_hidden=summary_hidden,
        chart_data=chart_payload(data),
        totals_data=totals_payload(data),
        retention_days=metrics.RETENTION_DAYS,
        max_cohorts=metrics.MAX_COHORTS,
        user_types=USER_TX_TYPES,
    )


# Headings of value.DEFINITIONS' entries on the page.
DEFINITION_LABELS = {
    "wallet": "Wallet",
    "activation": "Activation",
    "cohort": "Cohort",
    "fees_paid": "Fees paid",
    "fee_value": "Fee value (30 / 60 / 90 days)",
    "fee_distribution": "Fee distribution",
    "network_fees": "Network fee value",
    "funded": "Funded",
    "active": "Active",
    "value": "Value",
    "funnel": "Funnel",
    "retention": "Retention at day N",
    "retention_segments": "Retention by segment",
    "sponsored_share": "Sponsored share",
    "failed_rate": "Failed-transaction rate",
    "new_returning": "New vs returning",
    "stx_transferred": "STX transferred",
}


def render_value_page(value: ValueData, cov: Coverage, built_at: datetime) -> str:
    """The value page, value.html, with the growth page's header (coverage) and navigation."""
    built_at = _utc_aware(built_at)
    # A wallet whose first transaction's block time is after the last stored day (it waits for that day, as on
    # the growth page) would make a cohort of the future: only cohorts started by as_of are shown.
    if value.as_of is not None:
        value = dataclasses.replace(value, cohorts=tuple(c for c in value.cohorts if c.cohort <= value.as_of))
    return _ENV.get_template("value.html.j2").render(
        **_common(cov, built_at, VALUE_PAGE, "value.js"),
        title="Stacks wallet value & retention",
        as_of=value.as_of,
        v=value,
        cohorts=value.cohorts,
        definition_labels=DEFINITION_LABELS,
        chart_data=value_payload(value),
    )


def _headline(data: DashboardData) -> dict[str, float | int | None]:
    rows = {r.days: r for r in data.summary}
    last = data.daily[-1] if data.daily else None
    r7, r30 = rows.get(7), rows.get(30)
    return {
        "active_wallets_7d": r7.active_wallets if r7 else 0,
        "active_wallets_30d": r30.active_wallets if r30 else 0,
        "new_wallets_30d": r30.new_wallets if r30 else 0,
        "retention_30d": r30.retention_30d if r30 else None,
        "dau_mau": last.dau_mau if last else None,
        "transactions_total": data.totals.transactions,
        "fees_total_stx": data.totals.fees_stx,
    }


def write_dashboard(
    conn: duckdb.DuckDBPyConnection, out_dir: Path, built_at: datetime | None = None, fresh: bool | None = None
) -> DashboardResult:
    """Compute every metric, render, and publish `out_dir/index.html` and `out_dir/value.html`, each atomically.
    `fresh`: the caller's `aggregates_fresh(conn)` on this connection, when it has it."""
    built_at = built_at or datetime.now(UTC)
    if fresh is None:  # looked up once for both pages (each look is several catalog queries)
        fresh = aggregates_fresh(conn)
    data = metrics.compute_all(conn, fresh=fresh)
    value = compute_value(conn, as_of=data.as_of, fresh=fresh)
    page = render_page(data, built_at).encode("utf-8")
    value_page = render_value_page(value, data.coverage, built_at).encode("utf-8")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # The library goes first: a freshly published page must never point at a missing file.
    ensure_plotly(out_dir / ASSETS_DIR)
    atomic_write_bytes(out_dir / VALUE_PAGE, value_page)
    path = out_dir / PAGE
    size = atomic_write_bytes(path, page)
    cov = data.coverage
    return DashboardResult(
        path=path,
        size_bytes=size,
        first_day=cov.first_day,
        last_day=cov.last_day,
        days_covered=cov.days_covered,
        missing_days=cov.missing_days,
        headline=_headline(data),
    )


__all__ = ["MAX_PAGE_BYTES", "PAGE", "VALUE_PAGE", "render_page", "render_value_page", "write_dashboard"]
