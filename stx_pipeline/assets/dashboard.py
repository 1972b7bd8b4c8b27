"""The `wallet_dashboard` asset: the published HTML page, rebuilt whenever new days of transactions land.

Wiring only: the SQL and rendering live in stx_pipeline.dashboard, and the asset goes through
`build_dashboard_from_path`, the same call as `stx-pipeline dashboard`. No `from __future__ import
annotations` here: Dagster reads the config and resource annotations when the decorators run.
"""

import time
from pathlib import Path

import dagster as dg
from pydantic import Field

from stx_pipeline.assets.transactions import ASSET_KEY as TRANSACTIONS_KEY
from stx_pipeline.dashboard import DashboardSourceError, build_dashboard_from_path, compare_page_totals
from stx_pipeline.dashboard.files import PLOTLY_JS
from stx_pipeline.dashboard.render import ASSETS_DIR, MAX_PAGE_BYTES, VALUE_PAGE
from stx_pipeline.days import compact_ranges
from stx_pipeline.resources import StorageResource
from stx_pipeline.settings import Settings
from stx_pipeline.storage import StorageError

ASSET_KEY = dg.AssetKey("wallet_dashboard")
PAGE_METADATA_KEY = "page"
CHECK_PAGE_TOTALS = "page_totals_match_duckdb"

AC = dg.AutomationCondition

# Plain eager() also requires every parent partition to exist, so with one historical day missing the
# page would never rebuild. Dropping that clause lets it rebuild after each new day, gaps or not; the
# page itself lists the missing days.
# eager() never fires on the sensor's first evaluation either: with days already stored when the asset
# is first deployed, the page would wait for the next new day. The second clause builds it once then
# (newly_true: a failed first build is not retried every tick; the next new day retries it).
WALLET_DASHBOARD_AUTOMATION = AC.eager().without(~AC.any_deps_missing()) | (
    AC.missing() & AC.any_deps_match(~AC.missing())
).newly_true().with_label("first build over stored days")


class WalletDashboardConfig(dg.Config):
    public_dir: str | None = Field(
        default=None,
        description="Directory to publish index.html into; unset: STX_PUBLIC_DIR (default public/wallet).",
    )

    def resolved_public_dir(self) -> Path:
        # Resolved at run time, not import time: the run's environment decides, as for the CLI.
        return Path(self.public_dir or Settings.from_env().public_dir).resolve()


@dg.asset(
    key=ASSET_KEY,
    deps=[TRANSACTIONS_KEY],
    automation_condition=WALLET_DASHBOARD_AUTOMATION,
    group_name="dashboards",
    kinds={"duckdb", "html"},
    description=(
        "Static wallet dashboard (index.html, value.html + the partial plotly.js bundle in assets/) computed in "
        "DuckDB from every stored day of stx_transactions through the per-day aggregates (wallet_day_activity; "
        "days still stale are refreshed first, in short write transactions), published atomically into STX_PUBLIC_DIR."
    ),
)
def wallet_dashboard(
    context: dg.AssetExecutionContext, config: WalletDashboardConfig, storage: StorageResource
) -> dg.MaterializeResult:
    # Stale aggregates (usually none: wallet_day_activity keeps them) are refreshed in short write transactions
    # that wait through ingestion's writes; the page itself is computed on a read-only connection.
    out_dir = config.resolved_public_dir()
    history = storage.backend()
    started = time.monotonic()
    try:
        result = build_dashboard_from_path(history, out_dir)
    except (DashboardSourceError, StorageError) as exc:
        raise dg.Failure(description=str(exc), metadata={"duckdb_path": history.describe()}) from exc
    seconds = time.monotonic() - started
    missing = compact_ranges(result.missing_days)
    context.log.info(
        f"wrote {result.path} ({result.size_bytes:,} bytes) in {seconds:.2f}s: {result.first_day}..{result.last_day}, "
        f"{result.days_covered} days stored, {len(result.missing_days)} missing"
    )
    # The budget is what a reader downloads: each page's HTML plus the chart library beside it.
    library_bytes = (result.path.parent / ASSETS_DIR / PLOTLY_JS).stat().st_size
    value_page = result.path.with_name(VALUE_PAGE)
    weights = {page.name: page.stat().st_size + library_bytes for page in (result.path, value_page)}
    for name, weight in weights.items():
        if weight > MAX_PAGE_BYTES:
            context.log.warning(
                f"{name} weighs {weight:,} bytes with its scripts, above the {MAX_PAGE_BYTES:,}-byte budget"
            )
    headline = {
        f"headline/{name}": dg.MetadataValue.float(float(value))
        if isinstance(value, float)
        else dg.MetadataValue.int(int(value))
        for name, value in result.headline.items()
        if value is not None
    }
    return dg.MaterializeResult(
        metadata={
            PAGE_METADATA_KEY: dg.MetadataValue.path(str(result.path)),
            "value_page": dg.MetadataValue.path(str(value_page)),
            "size_bytes": dg.MetadataValue.int(result.size_bytes),
            "page_weight_bytes": dg.MetadataValue.int(max(weights.values())),
            "first_day": dg.MetadataValue.text(result.first_day.isoformat() if result.first_day else "-"),
            "last_day": dg.MetadataValue.text(result.last_day.isoformat() if result.last_day else "-"),
            "days_covered": dg.MetadataValue.int(result.days_covered),
            "missing_days": dg.MetadataValue.int(len(result.missing_days)),
            # Compacted runs (a..b): a 100-day gap stays one short line in the UI.
            "missing_ranges": dg.MetadataValue.text(", ".join(missing) if missing else "none"),
            "seconds": dg.MetadataValue.float(round(seconds, 2)),
            **headline,
        }
    )


@dg.asset_check(
    asset=wallet_dashboard,
    name=CHECK_PAGE_TOTALS,
    description="Total transactions and fees embedded in the published page equal count(*) and sum(fee_ustx).",
)
def page_totals_match_duckdb(context: dg.AssetCheckExecutionContext, storage: StorageResource) -> dg.AssetCheckResult:
    # The page checked is the one the latest materialization reported, wherever it was published.
    event = context.instance.get_latest_materialization_event(ASSET_KEY)
    materialization = event.asset_materialization if event else None
    page_entry = materialization.metadata.get(PAGE_METADATA_KEY) if materialization else None
    if page_entry is None:
        return dg.AssetCheckResult(passed=False, metadata={"reason": "wallet_dashboard was never materialized"})
    page = Path(str(page_entry.value))
    if not page.is_file():
        return dg.AssetCheckResult(passed=False, metadata={"reason": f"{page} does not exist", "page": str(page)})
    # A rebuild or ingestion between the write and this read would show as a mismatch: rerun the check or
    # let the next rebuild (requested automatically after new days) settle it.
    comparison = compare_page_totals(page, storage.backend())
    return dg.AssetCheckResult(
        passed=comparison.matches,
        metadata={
            "page": dg.MetadataValue.path(str(page)),
            "page_transactions": dg.MetadataValue.int(int(comparison.page.get("transactions") or 0)),  # type: ignore[call-overload]
            "page_fees_ustx": dg.MetadataValue.int(int(comparison.page.get("fees_ustx") or 0)),  # type: ignore[call-overload]
            "duckdb_transactions": dg.MetadataValue.int(comparison.duckdb["transactions"]),
            "duckdb_fees_ustx": dg.MetadataValue.int(comparison.duckdb["fees_ustx"]),
        },
    )


# The implicit default automation sensor is STOPPED in OSS; this one runs as soon as the daemon does.
wallet_dashboard_automation = dg.AutomationConditionSensorDefinition(
    "wallet_dashboard_automation",
    target=dg.AssetSelection.assets(ASSET_KEY),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Rebuilds wallet_dashboard after new days of stx_transactions land, even while older days are missing.",
)

__all__ = [
    "CHECK_PAGE_TOTALS",
    "WALLET_DASHBOARD_AUTOMATION",
    "WalletDashboardConfig",
    "page_totals_match_duckdb",
    "wallet_dashboard",
    "wallet_dashboard_automation",
]
