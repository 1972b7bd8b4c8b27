"""The `stx-pipeline` command: backfill | status | dashboard | audit | migrate | simulate.

Imports stay inside the commands: `status` must answer in well under a second, and `import dagster`
alone costs more than that.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import NoReturn

import click


def _settings():
    from stx_pipeline.settings import Settings, SettingsError

    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.UsageError(f"bad environment: {exc}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Stacks transaction history in DuckDB, run by Dagster."""
    # The same `.env` that Dagster loads for the code location (from the project root), so both see one
    # configuration; also when cron runs the CLI elsewhere with DAGSTER_HOME=<project>. One in the current
    # directory comes first; the environment itself always wins.
    from dotenv import load_dotenv

    from stx_pipeline.settings import anchor

    load_dotenv(".env", override=False)
    load_dotenv(anchor(".env"), override=False)


def _window(days, start, end, settings, *, option: str = "--days", clamp: bool = False) -> list[dt.date]:
    from stx_pipeline.operations.window import WindowError, target_window

    try:
        return target_window(
            days=days,
            start=start.date() if start else None,
            end=end.date() if end else None,
            first_partition=settings.start_date,
            option=option,
            clamp=clamp,
        )
    except WindowError as exc:
        raise click.UsageError(str(exc)) from None


def _window_or_target(days, start, end, settings, *, option: str) -> list[dt.date]:
    """The window of `option` (or --start/--end), else the STX_TARGET_DAYS ending yesterday. The latter is
    configuration (also the sensor's window): clamped to the partition start as the sensor clamps it, while an
    explicit option reaching beyond it is refused."""
    if days is None and start is None:
        return _window(settings.target_days, None, end, settings, option="STX_TARGET_DAYS", clamp=True)
    return _window(days, start, end, settings, option=option)


def _estimate(settings, days: int, stored_rows=None):
    import os

    from stx_pipeline.planning import estimate_fetch

    return estimate_fetch(
        days,
        requests_per_minute=settings.requests_per_minute,
        keyed=bool(os.environ.get("HIRO_API_KEY", "").strip()),
        stored_rows=stored_rows,
    )


def _cannot_plan(console, exc: Exception) -> NoReturn:
    console.print(
        f"[red]Cannot plan: {exc}[/red]\nNothing was launched: a day counts as stored only when DuckDB has it, and "
        "DuckDB cannot be read. Fix STX_DUCKDB_PATH (or stop the process holding the file), then run again."
    )
    sys.exit(1)


@main.command()
@click.option("--days", type=int, help="The last N complete UTC days (ending yesterday).")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), help="First day (inclusive).")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), help="Last day (inclusive); default yesterday.")
@click.option("--force", is_flag=True, help="Request every day of the window, not only missing or failed ones.")
@click.option(
    "--wait", "wait_", is_flag=True, help="Follow the backfill, and days already in progress, until they end."
)
@click.option("--in-process", is_flag=True, help="Run the days here, batch by batch; no webserver or daemon needed.")
@click.option("--yes", "-y", "yes", is_flag=True, help="Do not ask before fetching more than --confirm-above days.")
@click.option(
    "--confirm-above",
    type=click.IntRange(min=0),
    default=None,
    help="Ask (or want --yes) above this many days to fetch [default: STX_CONFIRM_ABOVE_DAYS, else 90].",
)
@click.option("--ui-url", default=None, help="The Dagster webserver [default: STX_UI_URL, else http://127.0.0.1:3000].")
def backfill(
    days: int | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
    force: bool,
    wait_: bool,
    in_process: bool,
    yes: bool,
    confirm_above: int | None,
    ui_url: str | None,
) -> None:
    """Launch a partition backfill of stx_transactions over a window of days."""
    from rich.console import Console

    from stx_pipeline.days import compact_ranges
    from stx_pipeline.operations import backfill as ops
    from stx_pipeline.operations.webserver import DagsterWebserver, WebserverError
    from stx_pipeline.storage import StorageError

    settings = _settings()
    console = Console(stderr=False)
    window = _window(days, start, end, settings)
    threshold = settings.confirm_above_days if confirm_above is None else confirm_above

    if in_process:
        try:
            plan = ops.plan_via_instance(window, settings.storage_backend(), force)
        except StorageError as exc:
            _cannot_plan(console, exc)
        _print_plan(console, plan, compact_ranges, settings, wait_)
        if not plan.requested and not (plan.in_progress and wait_):
            sys.exit(0)
        _confirm(console, plan, settings, yes, threshold)
        outcome = ops.run_in_process(plan.requested, settings, console) if plan.requested else None
        if plan.in_progress and wait_:
            # Days another run (the daemon's, the sensor's) is fetching: wait for them in the instance.
            others = ops.follow(
                ops.instance_statuses(plan.in_progress), [], plan.in_progress, settings.storage_backend(), console
            )
            outcome = others if outcome is None else outcome.merged(others)
        assert outcome is not None
    else:
        web = DagsterWebserver(ui_url)
        try:
            ops.ensure_daemon(web)
            for warning in ops.configuration_drift(web, settings):
                console.print(f"[yellow]Warning:[/yellow] {warning}")
            try:
                plan = ops.plan_via_webserver(web, window, settings.storage_backend(), force)
            except StorageError as exc:
                _cannot_plan(console, exc)
            _print_plan(console, plan, compact_ranges, settings, wait_)
            if not plan.requested and not (plan.in_progress and wait_):
                sys.exit(0)
            _confirm(console, plan, settings, yes, threshold)
            backfill_id = ops.launch(web, plan.requested) if plan.requested else None
            if backfill_id:
                console.print(f"Launched backfill [bold]{backfill_id}[/bold]: {web.url}/runs/b/{backfill_id}")
            if not wait_:
                console.print("Follow it in the UI, with --wait, or with `stx-pipeline status`.")
                sys.exit(0)
            outcome = ops.follow(
                ops.webserver_statuses(web),
                plan.requested,
                plan.in_progress,
                settings.storage_backend(),
                console,
                web=web,
                backfill_id=backfill_id,
            )
        except WebserverError as exc:
            console.print(f"[red]{exc}[/red]")
            sys.exit(1)
    if outcome.failed:
        console.print(f"[red]Failed days ({len(outcome.failed)}):[/red] {', '.join(compact_ranges(outcome.failed))}")
        console.print("Run the same backfill again to retry only those days.")
    elif outcome.followed_to_end:
        console.print(f"[green]All {len(outcome.requested)} days succeeded.[/green]")
    sys.exit(outcome.exit_code)


def _print_plan(console, plan, compact_ranges, settings, wait_: bool) -> None:
    stored = len(plan.stored)
    for run in plan.dead_runs:
        console.print(f"[yellow]Marked failed: {run}; its days not in DuckDB are planned again.[/yellow]")
    console.print(
        f"Window {plan.window[0]} .. {plan.window[-1]} ({len(plan.window)} days): {stored} stored, "
        f"{len(plan.requested)} to fetch"
        + (f" ({', '.join(compact_ranges(plan.requested))})" if plan.requested else "")
        + (
            f", {len(plan.in_progress)} in progress ({', '.join(compact_ranges(plan.in_progress))})"
            if plan.in_progress
            else ""
        )
    )
    if plan.lost:
        console.print(
            f"[yellow]{len(plan.lost)} days are materialized in the Dagster instance but have no rows in DuckDB "
            f"({', '.join(compact_ranges(plan.lost))}): fetched again.[/yellow]"
        )
    if plan.requested:
        console.print(f"Estimate: {_estimate(settings, len(plan.requested), plan.stored_rows).describe()}")
    elif plan.in_progress:
        follow = "following them until they end" if wait_ else "`--wait` follows them to the end"
        console.print(f"Nothing new to launch: every missing day is already being fetched by another run; {follow}.")
    else:
        console.print(
            "Nothing to do: every day of the window is stored in DuckDB and materialized (use --force to fetch again)."
        )


def _confirm(console, plan, settings, yes: bool, threshold: int) -> None:
    """Large work is never started without a word: above the threshold, ask, or want --yes."""
    count = len(plan.requested)
    if count <= threshold or yes:
        return
    estimate = _estimate(settings, count, plan.stored_rows).describe()
    if not sys.stdin.isatty():
        raise click.UsageError(
            f"{count} days to fetch is more than {threshold} ({estimate}); nothing was launched. Add --yes to go "
            "ahead (there is no terminal to ask on), or fetch a smaller window (--days / --start --end)."
        )
    if not click.confirm(f"Fetch {count} days?", default=False):
        console.print("Nothing launched.")
        sys.exit(1)


@main.command(name="plan")
@click.option("--days", type=int, help="The last N complete UTC days [default: STX_TARGET_DAYS, the top-up's window].")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), help="First day (inclusive).")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), help="Last day (inclusive); default yesterday.")
@click.option("--topup", is_flag=True, help="Say it as what the daily_topup sensor is about to fetch (`make up`).")
def plan_command(days: int | None, start: dt.datetime | None, end: dt.datetime | None, topup: bool) -> None:
    """How many days a window lacks and how long fetching them takes at the current budget; launches nothing."""
    from stx_pipeline.days import compact_ranges
    from stx_pipeline.operations.status import read_instance
    from stx_pipeline.planning import plan_days, read_stored_rows
    from stx_pipeline.storage import StorageError

    settings = _settings()
    window = _window_or_target(days, start, end, settings, option="--days")
    try:
        stored = read_stored_rows(settings.storage_backend(), window)
    except StorageError as exc:
        click.echo(f"Cannot plan: {exc}", err=True)
        sys.exit(1)
    view = read_instance(window)
    plan = plan_days(window, view.statuses if view else {}, stored)
    todo = sorted(set(plan.requested) | set(plan.in_progress))
    span = f"the last {len(window)} days ({window[0]} .. {window[-1]})"
    if topup and not settings.daily_topup:
        click.echo("daily_topup is off (STX_DAILY_TOPUP=off): nothing is fetched until you run a backfill.")
    if not todo:
        click.echo(f"All of {span} are stored" + (": daily_topup fetches each new day once final." if topup else "."))
        return
    estimate = _estimate(settings, len(todo), plan.stored_rows).describe()
    who = "daily_topup will fetch" if topup and settings.daily_topup else "A backfill would fetch"
    click.echo(f"{who} {len(todo)} missing days of {span}: {estimate}.")
    click.echo(f"Missing: {', '.join(compact_ranges(todo))}")
    if topup and settings.daily_topup:
        click.echo(
            "It starts now, one run at a time. To fetch less, stop the sensor in the UI (Automation) or set "
            "STX_TARGET_DAYS / STX_DAILY_TOPUP=off in .env and `make down && make up`."
        )


@main.command()
@click.option("--id", "backfill_id", help="The backfill to cancel; default: the latest one.")
@click.option("--ui-url", default=None, help="The Dagster webserver [default: STX_UI_URL, else http://127.0.0.1:3000].")
def cancel(backfill_id: str | None, ui_url: str | None) -> None:
    """Cancel a running backfill (days already written stay; a later backfill fetches the rest)."""
    from stx_pipeline.operations.webserver import DagsterWebserver, WebserverError

    web = DagsterWebserver(ui_url)
    try:
        if backfill_id is None:
            latest = web.latest_backfill()
            if latest is None or latest["status"] not in ("REQUESTED", "CANCELING", "FAILING"):
                click.echo("No running backfill to cancel.")
                return
            backfill_id = str(latest["id"])
        web.cancel_backfill(backfill_id)
    except WebserverError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    click.echo(f"Backfill {backfill_id} is being canceled; `stx-pipeline backfill` later fetches what it left.")


@main.command()
@click.option(
    "--target-days",
    "--days",
    "target_days",
    type=int,
    default=None,
    help="Size of the window ending yesterday [default: STX_TARGET_DAYS, else 180].",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--no-instance", is_flag=True, help="Only read DuckDB; skip the Dagster instance.")
@click.option(
    "--instance",
    "direct_instance",
    is_flag=True,
    help="When no webserver answers, read the Dagster instance directly (imports Dagster, ~2.5 s).",
)
def status(target_days: int | None, as_json: bool, no_instance: bool, direct_instance: bool) -> None:
    """What is stored and what is missing. Exit 0 complete, 2 incomplete or in progress, 1 error."""
    from stx_pipeline.operations.status import build_report, configuration_warnings, render_text

    settings = _settings()  # validates STX_TARGET_DAYS by name (a click envvar error would only name the option)
    # The same window validation as `backfill`.
    window = _window_or_target(target_days, None, None, settings, option="--target-days")
    report = build_report(
        settings.storage_backend(),
        len(window),
        with_instance=not no_instance,
        direct_instance=direct_instance,
        window=window,
    )
    if report.instance_source == "webserver":  # the instance part came from a running code location: its config
        report.warnings = configuration_warnings(settings)
    click.echo(json.dumps(report.as_json(), indent=2) if as_json else render_text(report))
    sys.exit(report.exit_code)


@main.command()
def dashboard() -> None:
    """Rebuild the wallet dashboard now (the same code as the wallet_dashboard asset)."""
    from stx_pipeline.dashboard import DashboardSourceError, build_dashboard_from_path
    from stx_pipeline.storage import StorageError

    settings = _settings()
    try:
        result = build_dashboard_from_path(settings.storage_backend(), settings.public_dir)
    except (DashboardSourceError, StorageError) as exc:
        click.echo(f"Dashboard not built: {exc}", err=True)
        sys.exit(1)
    click.echo(f"Dashboard written: {result.path} ({result.size_bytes:,} bytes)")
    click.echo(
        f"History {result.first_day} .. {result.last_day}: {result.days_covered} days stored, "
        f"{len(result.missing_days)} missing"
    )


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def audit(as_json: bool) -> None:
    """Whole-history checks (a run checks only its days and their reorg reach): tx_ids stored twice anywhere, and
    days whose ingest record disagrees with the rows stored. Read-only. Exit 0 sound, 2 problems found, 1 error."""
    from stx_pipeline.storage import StorageError
    from stx_pipeline.storage.duckdb_store import audit as audit_history

    settings = _settings()
    try:
        with settings.storage_backend().read_connection() as conn:
            found = audit_history(conn)
    except StorageError as exc:
        click.echo(f"Audit not run: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(found, indent=2))
    else:
        click.echo(f"tx_ids stored more than once: {found['duplicate_tx_ids']}")
        mismatched = found["record_mismatches"]
        click.echo(
            "ingest record: "
            + ("none yet (made on the next write)" if not found["record"] else f"{len(mismatched)} days disagree")
        )
        for day, counts in list(mismatched.items())[:20]:
            click.echo(f"  {day}: record {counts['record']}, stored {counts['stored']}")
    sys.exit(2 if found["duplicate_tx_ids"] or found["record_mismatches"] else 0)


@main.command()
@click.option("--to", "target", type=click.Choice(["ducklake", "duckdb"]), required=True, help="Where to copy to.")
@click.option("--overwrite", is_flag=True, help="Replace the target's rows when it already holds some.")
def migrate(target: str, overwrite: bool) -> None:
    """Copy the whole history between STX_DUCKDB_PATH and the DuckLake lake (STX_DUCKLAKE_*), then verify it.

    One transaction on the target; every day's row count and content hash are compared afterwards. Stop the
    pipeline first, then set STX_STORAGE to the target.
    """
    from stx_pipeline.storage import StorageError
    from stx_pipeline.storage.backend import DuckLakeStorage
    from stx_pipeline.storage.migrate import migrate as migrate_history

    settings = _settings()
    if not settings.ducklake_catalog:
        raise click.UsageError("set STX_DUCKLAKE_CATALOG (and STX_DUCKLAKE_DATA_PATH) to the lake to migrate with")
    lake = DuckLakeStorage(settings.ducklake_catalog, settings.ducklake_data_path)
    try:
        result = migrate_history(settings.duckdb_path, lake, target, overwrite=overwrite)
    except StorageError as exc:
        click.echo(f"Not migrated: {exc}", err=True)
        sys.exit(1)
    click.echo(f"Copied {result.rows:,} rows over {result.days} days: {result.source} -> {result.target}")
    if result.replaced_rows:
        click.echo(f"Replaced {result.replaced_rows:,} rows the target held before.")
    if not result.verified:
        days = ", ".join(d.isoformat() for d in result.mismatched_days[:10])
        click.echo(f"VERIFY FAILED: {len(result.mismatched_days)} days differ ({days})", err=True)
        sys.exit(1)
    click.echo(f"Verified: every day's row count and content hash match. Now set STX_STORAGE={target}.")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3999, show_default=True, type=int)
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--txs-per-day", default=5000, show_default=True, type=int)
@click.option("--rpm-limit", type=int, default=None, help="Requests per minute before 429 (default: unlimited).")
@click.option("--latency-ms", type=float, default=0.0, show_default=True)
@click.option("--error-rate", type=float, default=0.0, show_default=True, help="Share of 5xx answers.")
@click.option("--gone", is_flag=True, help="The v1 listing answers 410 Gone.")
@click.option("--hostile-strings", is_flag=True, help="Put HTML/SQL-hostile text into a contract name.")
def simulate(
    host: str,
    port: int,
    seed: int,
    txs_per_day: int,
    rpm_limit: int | None,
    latency_ms: float,
    error_rate: float,
    gone: bool,
    hostile_strings: bool,
) -> None:
    """Serve a synthetic Stacks chain with the Hiro API's shapes, limits and faults."""
    from stx_pipeline.simulator.chain import ChainConfig
    from stx_pipeline.simulator.faults import FaultConfig
    from stx_pipeline.simulator.server import serve

    serve(
        host=host,
        port=port,
        chain_config=ChainConfig(seed=seed, txs_per_day=txs_per_day, hostile_strings=hostile_strings),
        faults=FaultConfig(latency_ms=latency_ms, error_rate=error_rate, gone=gone),
        rpm_limit=rpm_limit,
    )


if __name__ == "__main__":
    main()
