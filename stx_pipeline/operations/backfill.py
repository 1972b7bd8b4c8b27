"""`stx-pipeline backfill`: launch a Dagster partition backfill, follow it, or run it in this process."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from stx_pipeline.days import ASSET_PATH, chunk_runs, compact_ranges, contiguous_runs, days_between, range_tags
from stx_pipeline.operations.webserver import DagsterWebserver, WebserverError
from stx_pipeline.operations.window import expand_status_ranges
from stx_pipeline.planning import (
    FAILED,
    IN_PROGRESS,
    MATERIALIZED,
    DayPlan,
    normalise,
    plan_days,
    read_stored_rows,
    with_pending,
)
from stx_pipeline.settings import Settings, dagster_home
from stx_pipeline.storage import StorageError
from stx_pipeline.storage.backend import Storage

REQUIRED_DAEMONS = {"BACKFILL", "QUEUED_RUN_COORDINATOR"}


@dataclass
class Outcome:
    """What a backfill ended with; `exit_code` 0 only when every requested day succeeded."""

    requested: list[dt.date]
    failed: list[dt.date] = field(default_factory=list)
    backfill_id: str | None = None
    followed_to_end: bool = True

    def merged(self, other: Outcome) -> Outcome:
        return Outcome(
            requested=sorted(set(self.requested) | set(other.requested)),
            failed=sorted(set(self.failed) | set(other.failed)),
            backfill_id=self.backfill_id or other.backfill_id,
            followed_to_end=self.followed_to_end and other.followed_to_end,
        )

    @property
    def exit_code(self) -> int:
        if not self.followed_to_end:
            return 2
        return 1 if self.failed else 0


def resolve_dagster_home() -> Path:
    """DAGSTER_HOME, or the current directory when it holds the project's dagster.yaml."""
    home = dagster_home()
    if home is not None:
        return home
    raise SystemExit(
        "DAGSTER_HOME is not set and there is no dagster.yaml here: run from the project root "
        "(make sets DAGSTER_HOME to it) or export DAGSTER_HOME=/path/to/stx-pipeline"
    )


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn(
            "{task.completed:.0f}/{task.total:.0f} days  failed {task.fields[failed]}  rows {task.fields[rows]:,}"
        ),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def _rate(rows: int, started: float) -> str:
    elapsed = time.monotonic() - started
    return f"{rows / elapsed:,.0f} rows/s" if elapsed > 0 and rows else ""


# -- through the webserver and daemon ------------------------------------------------------------


def plan_via_webserver(web: DagsterWebserver, window: list[dt.date], db_path: Storage | str, force: bool) -> DayPlan:
    """Raises StorageError when DuckDB cannot be read: the plan must not trust the instance alone."""
    stored = read_stored_rows(db_path, window)
    pending = _days(web.pending_backfill_days(ASSET_PATH))
    statuses = with_pending(expand_status_ranges(web.partition_ranges(ASSET_PATH)), pending)
    return plan_days(window, statuses, stored, force=force, pending=pending)


def _days(keys: set[str]) -> set[dt.date]:
    return {dt.date.fromisoformat(k) for k in keys}


def ensure_daemon(web: DagsterWebserver) -> None:
    unhealthy = set(web.unhealthy_daemons()) & REQUIRED_DAEMONS
    if unhealthy:
        raise WebserverError(
            f"The webserver at {web.url} is up but its daemon is not running ({', '.join(sorted(unhealthy))} "
            "not heartbeating): nothing would execute the backfill. Start both with `make up`."
        )


def configuration_drift(web: DagsterWebserver, settings: Settings) -> list[str]:
    """Where this shell's configuration differs from the running code location's, which daemon runs use.

    The code location's resources show their configured values through GraphQL (`allTopLevelResourceDetails`):
    plain values as they are, EnvVar-backed ones only by the variable's name (HIRO_API_KEY is never compared).
    """
    try:
        running = web.resource_values()
    except WebserverError:
        return []  # an older webserver or a load error: nothing to compare, not worth failing the backfill
    warnings = []
    their_url = running.get("hiro", {}).get("base_url")
    if their_url is not None and their_url.rstrip("/") != settings.api_url:
        warnings.append(
            f"this shell has STX_API_URL={settings.api_url} but the running code location uses {their_url}: "
            "daemon runs fetch from the latter. Restart with `make down && make up` (or reload the code location "
            "in the UI) after changing it, or use --in-process to run here with this shell's value."
        )
    their_db = running.get("storage", {}).get("duckdb_path")
    if their_db is not None and Path(their_db).resolve() != Path(settings.duckdb_path).resolve():
        warnings.append(
            f"this shell has STX_DUCKDB_PATH={settings.duckdb_path} but the running code location writes to "
            f"{their_db}: this command reads the former. Make them the same (the .env file is read by both)."
        )
    return warnings


def launch(web: DagsterWebserver, days: list[dt.date]) -> str:
    keys = [d.isoformat() for d in days]
    title = f"stx-pipeline backfill {compact_ranges(days)[0]}" + (" ..." if len(contiguous_runs(days)) > 1 else "")
    return web.launch_backfill(ASSET_PATH, keys, title=title)


StatusReader = Callable[[], Mapping[dt.date, str | None]]


def follow(
    read_statuses: StatusReader,
    requested: list[dt.date],
    in_progress: list[dt.date],
    db_path: Storage | str,
    console: Console,
    *,
    web: DagsterWebserver | None = None,
    backfill_id: str | None = None,
    poll_s: float = 2.0,
) -> Outcome:
    """Poll until the launched backfill ends and no day that was already in progress still is.

    Requested days are counted from the backfill's own progress (a day being fetched again is MATERIALIZED in
    the instance from before); days already in progress in other runs (the sensor's, another backfill's) from
    the partition statuses. Ctrl+C stops following, never the runs.
    """
    days = sorted(set(requested) | set(in_progress))
    outcome = Outcome(requested=days, backfill_id=backfill_id)
    started = time.monotonic()
    statuses: Mapping[dt.date, str | None] = {}
    with _progress(console) as bar:
        task = bar.add_task("backfill", total=len(days), failed=0, rows=0, rate="")
        try:
            while True:
                progress = web.backfill_progress(backfill_id) if web is not None and backfill_id else None
                statuses = read_statuses()
                others = {d: normalise(statuses.get(d)) for d in in_progress}
                still_running = [d for d, s in others.items() if s == IN_PROGRESS]
                try:
                    rows = sum(read_stored_rows(db_path, days, timeout_s=5.0).values())
                except StorageError:
                    rows = 0  # progress only; the final verdict comes from the instance
                bar.update(
                    task,
                    completed=(progress.materialized if progress else 0)
                    + sum(1 for s in others.values() if s == MATERIALIZED),
                    failed=(progress.failed if progress else 0) + sum(1 for s in others.values() if s == FAILED),
                    rows=rows,
                    rate=_rate(rows, started),
                    description=f"backfill {progress.status.lower()}" if progress else "in progress elsewhere",
                )
                if (progress is None or progress.finished) and not still_running:
                    break
                time.sleep(poll_s)
        except KeyboardInterrupt:
            outcome.followed_to_end = False
            where = f"{web.url}/runs/b/{backfill_id}" if web is not None and backfill_id else "the runs"
            console.print(f"Stopped following. The days go on being fetched: {where}")
            return outcome
    statuses = read_statuses()
    outcome.failed = [d for d in days if normalise(statuses.get(d)) != MATERIALIZED]
    return outcome


def webserver_statuses(web: DagsterWebserver) -> StatusReader:
    return lambda: with_pending(
        expand_status_ranges(web.partition_ranges(ASSET_PATH)), _days(web.pending_backfill_days(ASSET_PATH))
    )


# -- in this process -----------------------------------------------------------------------------


def instance_statuses(days: list[dt.date]) -> StatusReader:
    import dagster as dg

    from stx_pipeline.partitions import day_statuses, pending_backfill_days

    def read() -> Mapping[dt.date, str | None]:
        with dg.DagsterInstance.get() as instance:
            key = dg.AssetKey(ASSET_PATH)
            return with_pending(day_statuses(instance, key, days), pending_backfill_days(instance, key))

    return read


def plan_via_instance(window: list[dt.date], db_path: Storage | str, force: bool) -> DayPlan:
    """Raises StorageError when DuckDB cannot be read: the plan must not trust the instance alone."""
    import dagster as dg

    from stx_pipeline.partitions import day_statuses, pending_backfill_days
    from stx_pipeline.run_launcher import fail_dead_runs

    resolve_dagster_home()
    stored = read_stored_rows(db_path, window)
    with dg.DagsterInstance.get() as instance:
        dead = fail_dead_runs(instance)  # no daemon here to notice a killed in-process backfill
        pending = pending_backfill_days(instance, dg.AssetKey(ASSET_PATH))
        statuses = with_pending(day_statuses(instance, dg.AssetKey(ASSET_PATH), window), pending)
    return dataclasses.replace(plan_days(window, statuses, stored, force=force, pending=pending), dead_runs=dead)


@contextmanager
def shared_listing(defs: Any, batches: list[tuple[dt.date, dt.date]], settings: Settings) -> Iterator[Any]:
    """The one listing the in-process runs of `batches` share (hiro/backfill_listing.py), listing the first day
    from now on while Dagster sets up the first run — once the history is known writable: with an unusable
    STX_DUCKDB_PATH the runs fail before their first request, as they always did, and nothing is listed ahead."""
    from stx_pipeline.hiro.backfill_listing import backfill_listing
    from stx_pipeline.ingest import check_writable

    plan = [day for first, last in batches for day in days_between(first, last)]
    with backfill_listing(plan) as listing:
        try:
            check_writable(settings.storage_backend())
        except StorageError:
            pass  # the first run reports it
        else:
            hiro = defs.resources["hiro"].process_config_and_initialize()  # the runs' own resource, EnvVars read
            listing.start(hiro.client, hiro.day_fetcher)
        yield listing


def run_in_process(
    days: list[dt.date],
    settings: Settings,
    console: Console,
    on_batch: Callable[[dt.date, dt.date, bool], None] | None = None,
) -> Outcome:
    """Materialize the days batch by batch in this process, recorded in the instance at DAGSTER_HOME: the code
    location's own definitions (assets, resources) built from `settings`, as the daemon's runs would use them."""
    import dagster as dg

    from stx_pipeline.assets.transactions import ASSET_KEY
    from stx_pipeline.definitions import build_definitions
    from stx_pipeline.partitions import day_statuses

    resolve_dagster_home()
    instance = dg.DagsterInstance.get()
    defs = build_definitions(settings)
    job = defs.resolve_implicit_global_asset_job_def()
    outcome = Outcome(requested=days)
    batches = chunk_runs(days, settings.days_per_run)
    started = time.monotonic()
    rows = 0
    done = 0
    # The runs share one client and one listing of every day: run k+1's first day is listed while run k ends.
    with _progress(console) as bar, shared_listing(defs, batches, settings):
        task = bar.add_task("in-process", total=len(days), failed=0, rows=0, rate="")
        for first, last in batches:
            n = (last - first).days + 1
            result = job.execute_in_process(
                instance=instance,
                asset_selection=[ASSET_KEY],
                tags={**range_tags(first, last), "stx-pipeline/launched-by": "cli-in-process"},
                raise_on_error=False,
            )
            if result.success:
                done += n
                # A range run emits one materialization per day, each with the run's whole metadata.
                events = result.get_asset_materialization_events()
                count = events[0].materialization.metadata.get("dagster/row_count") if events else None
                rows += int(count.value) if count is not None else 0  # type: ignore[arg-type]
            else:
                # A bad day fails alone: the days the run did write are recorded as materialized.
                batch = days_between(first, last)
                statuses = day_statuses(instance, ASSET_KEY, batch, settings.start_date)
                written = {d for d, status in statuses.items() if status == "MATERIALIZED"}
                outcome.failed.extend(d for d in batch if d not in written)
                done += len(written)
                for event in result.all_events:
                    if event.is_failure and event.event_specific_data is not None:
                        error = getattr(event.event_specific_data, "error", None)
                        if error is not None:
                            console.print(f"[red]{first}..{last} failed:[/red] {error.message.strip()}")
                            break
            if on_batch:
                on_batch(first, last, result.success)
            bar.update(task, completed=done, failed=len(outcome.failed), rows=rows, rate=_rate(rows, started))
    return outcome
