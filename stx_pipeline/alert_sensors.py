"""Freshness checks and the alert sensor: tell someone when the history stops being complete.

- `stx_transactions` freshness: yesterday's partition materialized by STX_FRESHNESS_DEADLINE_HOURS (UTC; default
  STX_TOPUP_DELAY_HOURS + 2), Dagster's `build_time_partition_freshness_checks`.
- `wallet_dashboard` freshness: rebuilt since the newest day closed (midnight UTC), checked an hour after that
  deadline, Dagster's `build_last_update_freshness_checks`.
- `freshness_checks_sensor` (Dagster's `build_sensor_for_freshness_checks`, running by default) evaluates both.
- `stx_alerts` reads the instance's event log from its cursor on: failed runs of the two assets, failed and
  passing asset checks (the freshness checks included), and the run metadata `deprecation_notices` /
  `switched_to_v3`. It posts one message per new failure through stx_pipeline.alerts and one recovery message
  when the same day materializes or the same check passes again; the cursor remembers what is open, so a failure
  is announced once, not once per tick.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import warnings
from collections.abc import Sequence
from typing import Any

import dagster as dg
from dagster._core.events import DagsterEventType  # no public alias; RunStatusChangeRecordsFilter takes it
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from stx_pipeline.alerts import Alert, AlertSender, record_checks
from stx_pipeline.assets.dashboard import ASSET_KEY as DASHBOARD_KEY
from stx_pipeline.assets.dashboard import CHECK_PAGE_TOTALS
from stx_pipeline.assets.transactions import ASSET_KEY as TRANSACTIONS_KEY
from stx_pipeline.assets.transactions import CHECK_ROWS_MATCH_TOTAL, CHECK_TX_ID_UNIQUE
from stx_pipeline.days import RANGE_END_TAG, RANGE_START_TAG, days_between
from stx_pipeline.resources import HiroApiResource
from stx_pipeline.settings import Settings, dagster_home

WATCHED = (TRANSACTIONS_KEY, DASHBOARD_KEY)
FRESHNESS_CHECK = "freshness_check"  # the name Dagster's freshness check factories give their checks
WATCHED_CHECKS = (
    dg.AssetCheckKey(TRANSACTIONS_KEY, CHECK_ROWS_MATCH_TOTAL),
    dg.AssetCheckKey(TRANSACTIONS_KEY, CHECK_TX_ID_UNIQUE),
    dg.AssetCheckKey(TRANSACTIONS_KEY, FRESHNESS_CHECK),
    dg.AssetCheckKey(DASHBOARD_KEY, CHECK_PAGE_TOTALS),
    dg.AssetCheckKey(DASHBOARD_KEY, FRESHNESS_CHECK),
)
_COMPLETED = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
_BATCH = 500  # event records read per type per tick; the cursor continues from there on the next tick
_REMEMBERED_RUNS = 200  # runs whose notices were sent, kept in the cursor to announce each run once


def deadline_cron(hours: float) -> str:
    whole = int(hours)
    return f"{round((hours - whole) * 60)} {whole} * * *"


# Dagster 1.11+ marks these factories superseded by FreshnessPolicy, which its daemon evaluates without a sensor
# but which checks "updated within N hours", not "this partition by this deadline"; the partition-aware checks
# say what this pipeline promises. The warning is silenced here, once, rather than printed at every load.
_SUPERSEDED = {"action": "ignore", "category": dg.SupersessionWarning}


def build_freshness_checks(settings: Settings) -> list[dg.AssetChecksDefinition]:
    deadline = settings.freshness_deadline
    with warnings.catch_warnings():
        warnings.simplefilter(**_SUPERSEDED)
        return _freshness_checks(deadline)


def _freshness_checks(deadline: float) -> list[dg.AssetChecksDefinition]:
    return [
        *dg.build_time_partition_freshness_checks(
            assets=[TRANSACTIONS_KEY], deadline_cron=deadline_cron(deadline), timezone="UTC"
        ),
        # An hour later than the days: the dashboard rebuilds after them (wallet_dashboard_automation).
        *dg.build_last_update_freshness_checks(
            assets=[DASHBOARD_KEY],
            deadline_cron=deadline_cron(deadline + 1),
            lower_bound_delta=dt.timedelta(hours=deadline + 1),  # i.e. rebuilt since midnight UTC
            timezone="UTC",
        ),
    ]


def build_freshness_sensor(
    checks: Sequence[dg.AssetChecksDefinition], interval_s: int, *, running: bool = True
) -> dg.SensorDefinition:
    with warnings.catch_warnings():
        warnings.simplefilter(**_SUPERSEDED)
        return dg.build_sensor_for_freshness_checks(
            freshness_checks=checks,
            minimum_interval_seconds=interval_s,
            default_status=dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED,
        )


class AlertConfig(dg.ConfigurableResource):
    """Where alerts go (STX_ALERT_WEBHOOK_URL: unset = the log only), their format, the UI link's base."""

    webhook_url: str | None = None
    fmt: str = "json"
    ui_url: str = "http://127.0.0.1:3000"


def alert_config_from_env(settings: Settings) -> AlertConfig:
    url = settings.alert_webhook_url
    # An EnvVar, not the value: the resource's config (shown in the UI) must not reveal the webhook's token.
    webhook = dg.EnvVar("STX_ALERT_WEBHOOK_URL") if url and url.get_secret_value() else None
    return AlertConfig(webhook_url=webhook, fmt=settings.alert_format, ui_url=settings.ui_url)


def _run_days(run: dg.DagsterRun) -> list[str]:
    tags = run.tags
    if RANGE_START_TAG in tags and RANGE_END_TAG in tags:
        first, last = dt.date.fromisoformat(tags[RANGE_START_TAG]), dt.date.fromisoformat(tags[RANGE_END_TAG])
        return [d.isoformat() for d in days_between(first, last)]
    return [tags["dagster/partition"]] if "dagster/partition" in tags else []


def _watched_asset(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dg.AssetKey | None:
    """The watched asset the run was to materialize: its asset selection (runs the daemon or UI launch), else its
    planned materializations (a job run, or `materialize()` in-process, leaves the selection empty)."""
    selection = set(run.asset_selection or ())
    if not selection:
        planned = instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
        selection = {record.dagster_event.asset_key for record in planned if record.dagster_event}
    return next((key for key in WATCHED if key in selection), None)


def _failure_detail(instance: dg.DagsterInstance, run: dg.DagsterRun, fallback: str) -> tuple[str, list[str]]:
    """The failed step's error and the days it names (`failed_days` of a partial success), else all run days."""
    for record in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE):
        data = record.dagster_event.step_failure_data if record.dagster_event else None
        if data is None:
            continue
        error = data.user_failure_data.description if data.user_failure_data else None
        error = error or (data.error.message if data.error else "") or fallback
        failed = data.user_failure_data.metadata.get("failed_days") if data.user_failure_data else None
        days = sorted(failed.value) if failed is not None and isinstance(failed.value, dict) else _run_days(run)
        return error, days
    return fallback, _run_days(run)


def _run_failures(instance: dg.DagsterInstance, after: int) -> Sequence[Any]:
    records_filter = dg.RunStatusChangeRecordsFilter(DagsterEventType.RUN_FAILURE, after_storage_id=after)
    return instance.fetch_run_status_changes(records_filter, limit=_BATCH, ascending=True).records


def _materializations(instance: dg.DagsterInstance, after: int) -> Sequence[Any]:
    records: list[Any] = []
    for key in WATCHED:
        records_filter = dg.AssetRecordsFilter(asset_key=key, after_storage_id=after)
        records += instance.fetch_materializations(records_filter, limit=_BATCH, ascending=True).records
    return sorted(records, key=lambda record: record.storage_id)


def _check_executions(instance: dg.DagsterInstance, seen: dict[str, int]) -> list[tuple[int, Any]]:
    """Completed executions of the watched checks newer than the last one seen per check, oldest first.
    (The event log's generic record query refuses cursors on the default run-sharded SQLite storage; the check
    execution table works on every storage.)"""
    found: list[tuple[int, Any]] = []
    for key in WATCHED_CHECKS:
        history = instance.event_log_storage.get_asset_check_execution_history(key, limit=50, status=_COMPLETED)
        newest_seen = seen.get(key.to_user_string(), 0)
        for record in history:
            if record.id > newest_seen and record.event is not None and record.event.dagster_event is not None:
                found.append((record.id, record))
        if history:
            seen[key.to_user_string()] = max(newest_seen, max(record.id for record in history))
    return sorted(found, key=lambda item: item[1].event.timestamp)


class _Tick:
    """One evaluation: the state from the cursor, the alerts to send, the state to keep."""

    def __init__(self, context: dg.SensorEvaluationContext) -> None:
        self.context = context
        self.instance = context.instance
        state = json.loads(context.cursor) if context.cursor else {}
        self.after: int | None = state.get("after")
        self.checks_seen: dict[str, int] = state.get("checks_seen", {})
        self.deprecation_sent: bool = state.get("deprecation_sent", False)
        self.open: dict[str, dict[str, Any]] = state.get("open", {})
        self.notified_runs: list[str] = state.get("notified_runs", [])
        self.alerts: list[Alert] = []
        self.verdicts: dict[str, dict[str, Any]] = {}

    def cursor(self, after: int) -> str:
        return json.dumps(
            {
                "after": after,
                "checks_seen": self.checks_seen,
                "deprecation_sent": self.deprecation_sent,
                "open": self.open,
                "notified_runs": self.notified_runs[-_REMEMBERED_RUNS:],
            }
        )

    def run_failures(self, records: Sequence[Any]) -> None:
        for record in records:
            run = self.instance.get_run_by_id(record.run_id) if record.run_id else None
            asset = _watched_asset(self.instance, run) if run else None
            if run is None or asset is None:
                continue
            error, days = _failure_detail(self.instance, run, record.event_log_entry.message or "the run failed")
            keys = {f"{asset.to_user_string()}@{day}": day for day in days} or {f"{asset.to_user_string()}@run": ""}
            new = {key: day for key, day in keys.items() if key not in self.open}
            if not new:  # the same days failed again before recovering: announced already
                continue
            for key in new:
                self.open[key] = {"run_id": run.run_id, "kind": "run_failed"}
            self.alerts.append(
                Alert(
                    "run_failed",
                    asset.to_user_string(),
                    f"run {run.run_id[:8]} failed",
                    days=[day for day in new.values() if day],
                    error=error,
                    path=f"/runs/{run.run_id}",
                )
            )

    def check_evaluations(self, executions: Sequence[tuple[int, Any]]) -> None:
        for _, record in executions:
            evaluation = record.event.dagster_event.event_specific_data
            if not isinstance(evaluation, dg.AssetCheckEvaluation):
                continue
            asset = evaluation.asset_key.to_user_string()
            key = f"{asset}:{evaluation.check_name}"
            freshness = "freshness" in evaluation.check_name
            at = dt.datetime.fromtimestamp(record.event.timestamp, dt.UTC).isoformat(timespec="seconds")
            detail = _check_detail(evaluation)
            self.verdicts[key] = {"passed": evaluation.passed, "at": at, "detail": detail}
            path = f"/assets/{asset}?view=checks"
            if not evaluation.passed and key not in self.open:
                self.open[key] = {"run_id": record.run_id, "kind": "check"}
                kind = "freshness_overdue" if freshness else "check_failed"
                summary = f"{'freshness check' if freshness else 'check'} {evaluation.check_name} failed"
                days = re.findall(r"partition (\d{4}-\d\d-\d\d)", evaluation.description or "")
                self.alerts.append(Alert(kind, asset, summary, days=days, error=detail, path=path))
            elif evaluation.passed and key in self.open:
                del self.open[key]
                self.alerts.append(Alert("recovered", asset, f"check {evaluation.check_name} passes again", path=path))

    def materializations(self, records: Sequence[Any]) -> None:
        recovered: dict[str, list[str]] = {}
        for record in records:
            materialization = record.asset_materialization
            if materialization is None or materialization.asset_key not in WATCHED:
                continue
            asset = materialization.asset_key.to_user_string()
            for key in (f"{asset}@{materialization.partition}", f"{asset}@run"):
                if key in self.open and self.open[key].get("kind") == "run_failed":
                    del self.open[key]
                    recovered.setdefault(asset, []).append(materialization.partition or "")
            self._notices(record, materialization)
        for asset, days in recovered.items():
            days = [d for d in days if d]
            self.alerts.append(
                Alert("recovered", asset, "materialized after the failure", days=days, path=f"/assets/{asset}")
            )

    def _notices(self, record: Any, materialization: dg.AssetMaterialization) -> None:
        """The API's first deprecation notice, and a run's switch to v3 once per run (a run of several days records
        one materialization per day, each with the run's metadata)."""
        run_id = record.run_id
        if run_id in self.notified_runs:
            return
        meta = materialization.metadata
        notices = meta.get("deprecation_notices")
        switched = meta.get("switched_to_v3")
        found = False
        path = f"/runs/{run_id}"
        asset = materialization.asset_key.to_user_string()
        if switched is not None and switched.value is True:
            found = True
            self.alerts.append(
                Alert(
                    "switched_to_v3",
                    asset,
                    f"run {run_id[:8]} met 410 Gone on /extended/v1/tx and listed the rest of its days through "
                    "/extended/v3/transactions; set STX_API_STRATEGY=v3 to skip v1",
                    path=path,
                )
            )
        # The API's notice is the same for every run until the endpoint retires: announced once per sensor cursor.
        if notices is not None and isinstance(notices.value, int) and notices.value > 0 and not self.deprecation_sent:
            self.deprecation_sent = True
            found = True
            self.alerts.append(
                Alert(
                    "deprecation_notice",
                    asset,
                    f"run {run_id[:8]} received a `Warning: 299` deprecation notice from the API (see its log)",
                    path=path,
                )
            )
        if found:
            self.notified_runs.append(run_id)


def _utc(timestamp: Any) -> str:
    return dt.datetime.fromtimestamp(float(timestamp), dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _check_detail(evaluation: Any) -> str:
    """A readable first line from the check's metadata (overdue by, mismatched days, duplicates)."""
    meta = {key: getattr(value, "value", value) for key, value in evaluation.metadata.items()}
    if evaluation.passed:
        return evaluation.description or "passed"
    if evaluation.description:  # Dagster's freshness checks say which partition they expected
        deadline = meta.get("dagster/latest_cron_tick_timestamp")
        when = f" (deadline {_utc(deadline)})" if deadline else ""
        return f"{evaluation.description}{when}"
    if "dagster/overdue_seconds" in meta:
        hours = float(meta["dagster/overdue_seconds"]) / 3600
        deadline = meta.get("dagster/overdue_deadline_timestamp")
        when = _utc(deadline) if deadline else "?"
        return f"overdue by {hours:.1f} h (deadline {when})"
    shown = {k: v for k, v in meta.items() if not k.startswith("dagster/")}
    return json.dumps(shown, default=str)[:300] if shown else "failed"


def build_alert_sensor(interval_s: int) -> dg.SensorDefinition:
    @dg.sensor(
        name="stx_alerts",
        minimum_interval_seconds=interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Posts one message to STX_ALERT_WEBHOOK_URL (unset: the log) per failed run, failed check or "
        "overdue freshness check of stx_transactions and wallet_dashboard, per API deprecation notice or switch "
        "to v3, and one when the same day or check recovers.",
    )
    def stx_alerts(context: dg.SensorEvaluationContext, alerts: AlertConfig, hiro: HiroApiResource) -> dg.SkipReason:
        tick = _Tick(context)
        if tick.after is None:
            # First tick: start from now. Past failures were visible in the UI already; a new deployment must not
            # replay its whole history into the chat. But a check failing right now is a current failure, not
            # history: each check's latest verdict is taken, and a failing one announced.
            tick.after = context.instance.event_log_storage.get_maximum_record_id() or 0
            latest: dict[str, tuple[int, Any]] = {}
            for record_id, record in _check_executions(context.instance, tick.checks_seen):
                evaluation = record.event.dagster_event.event_specific_data
                latest[f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"] = (record_id, record)
            tick.check_evaluations(list(latest.values()))
        failures = _run_failures(context.instance, tick.after)
        materializations = _materializations(context.instance, tick.after)
        tick.run_failures(failures)
        tick.materializations(materializations)
        tick.check_evaluations(_check_executions(context.instance, tick.checks_seen))
        # A batch cut at _BATCH records resumes from its last one next tick; otherwise from the newest seen.
        full = [batch[-1].storage_id for batch in (failures, materializations) if len(batch) >= _BATCH]
        seen = [record.storage_id for record in (*failures, *materializations)]
        newest = min(full) if full else max([tick.after, *seen])
        # Where `stx-pipeline status` looks, without Dagster: DAGSTER_HOME (the instance's own directory otherwise).
        home = dagster_home() or context.instance.root_directory
        sender = AlertSender(
            webhook_url=alerts.webhook_url,
            ui_url=alerts.ui_url,
            instance_dir=home,
            fmt="plain" if alerts.fmt == "plain" else "json",
            secrets=(hiro.api_key,),
        )
        for alert in tick.alerts:
            sender.send(alert, context.log)
        record_checks(home, tick.verdicts)
        context.update_cursor(tick.cursor(newest))
        if tick.alerts:
            return dg.SkipReason(f"Sent {len(tick.alerts)} alert(s); watching events after #{newest}.")
        return dg.SkipReason(f"Nothing to alert; watching events after #{newest}.")

    return stx_alerts
