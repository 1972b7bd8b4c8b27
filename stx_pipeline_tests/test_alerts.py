"""Alerts: the message (days, first error line, UI link, no secret), the webhook post over real HTTP, and the alert
sensor's deduplication and recovery evaluated against a real temporary Dagster instance with real runs."""

from __future__ import annotations

import datetime as dt
import json
import socket

import dagster as dg
import pytest

from stx_pipeline.alert_sensors import AlertConfig, build_alert_sensor, build_freshness_checks, deadline_cron
from stx_pipeline.alerts import Alert, AlertSender, format_message, read_state, scrub
from stx_pipeline.definitions import defs
from stx_pipeline.devtools.resources import pipeline_resources
from stx_pipeline.settings import Settings, SettingsError
from stx_pipeline.simulator import FaultConfig
from stx_pipeline_tests.conftest import dagster_instance
from stx_pipeline_tests.webhook_receiver import WebhookReceiver

UI = "http://dagster.example.test:3000"
KEY = "sk-planted-0123456789abcdef"
stx_transactions = defs().get_assets_def("stx_transactions")


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str) -> None:
        self.lines.append(msg)

    def warning(self, msg: str) -> None:
        self.lines.append(msg)


def test_message_names_what_which_days_first_error_line_and_link():
    alert = Alert(
        "run_failed",
        "stx_transactions",
        "run 1a2b3c4d failed",
        days=["2026-11-20", "2026-11-21", "2026-11-22", "2026-11-25"],
        error="HiroApiError: 500 from /extended/v1/tx for partition 2026-11-20\nTraceback ...\n  line 2",
        path="/runs/1a2b3c4d-full",
    )
    assert format_message(alert, UI + "/") == (
        "[stx-pipeline] FAILED: stx_transactions — run 1a2b3c4d failed\n"
        "Days: 2026-11-20..2026-11-22, 2026-11-25\n"
        "Error: HiroApiError: 500 from /extended/v1/tx for partition 2026-11-20\n"
        f"Open: {UI}/runs/1a2b3c4d-full"
    )
    assert scrub(f"x-api-key: {KEY} refused", [KEY, None, ""]) == "x-api-key: [redacted] refused"


@pytest.mark.parametrize("fmt", ["json", "plain"])
def test_sender_posts_once_scrubs_secrets_and_records_the_last_alert(tmp_path, fmt):
    with WebhookReceiver() as hook:
        sender = AlertSender(hook.url, UI, tmp_path, fmt=fmt, secrets=(KEY,))
        alert = Alert("run_failed", "stx_transactions", "failed", days=["2026-11-20"], error=f"401 with key {KEY}")
        record = sender.send(alert, Log())
    assert len(hook.posts) == 1
    assert hook.posts[0]["type"].startswith("application/json" if fmt == "json" else "text/plain")
    (text,) = hook.texts()
    assert "Days: 2026-11-20" in text and "Error: 401 with key [redacted]" in text and KEY not in text
    assert record["delivered"] is True
    assert read_state(tmp_path)["last_alert"]["message"] == text


def test_an_unreachable_webhook_is_reported_not_raised_and_never_quoted(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hook/secret-token-in-url"
    log = Log()
    record = AlertSender(url, UI, tmp_path, timeout_s=2).send(Alert("recovered", "x", "ok"), log)
    assert record["delivered"] is False and "ConnectionError" in record["error"]
    assert not any("secret-token-in-url" in line for line in log.lines)
    assert "NOT delivered" in log.lines[-1]


def test_no_webhook_means_the_log_only(tmp_path):
    log = Log()
    record = AlertSender(None, UI, tmp_path).send(Alert("check_failed", "stx_transactions", "check x failed"), log)
    assert record["destination"] == "log" and "CHECK FAILED: stx_transactions" in log.lines[0]


def test_deadline_settings(monkeypatch):
    monkeypatch.setenv("STX_TOPUP_DELAY_HOURS", "2.5")
    assert Settings.from_env().freshness_deadline == 4.5 and deadline_cron(4.5) == "30 4 * * *"
    monkeypatch.setenv("STX_FRESHNESS_DEADLINE_HOURS", "23")
    with pytest.raises(SettingsError, match="STX_FRESHNESS_DEADLINE_HOURS=23 must be at most 22"):
        Settings.from_env()
    monkeypatch.setenv("STX_FRESHNESS_DEADLINE_HOURS", "0")
    monkeypatch.setenv("STX_ALERT_FORMAT", "xml")
    with pytest.raises(SettingsError, match="STX_ALERT_FORMAT='xml' must be json or plain"):
        Settings.from_env()


def _tick(sensor, instance, cursor, hook_url):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "alerts": AlertConfig(webhook_url=hook_url, ui_url=UI),
            "hiro": pipeline_resources("http://127.0.0.1:9", instance.root_directory, api_key=KEY)["hiro"],
        },
    )
    sensor(context)
    return context.cursor


@pytest.mark.slow  # a long in-process scenario (several seconds): make test
def test_sensor_one_message_per_failure_then_one_recovery(tmp_path, simulator, db_path):
    sensor = build_alert_sensor(30)
    day = dt.date(2025, 3, 2)
    resources = pipeline_resources(simulator.url, db_path, max_attempts=2, max_backoff_s=0.1, api_key=KEY)

    def run():
        return dg.materialize(
            [stx_transactions],
            resources=resources,
            partition_key=day.isoformat(),
            instance=instance,
            raise_on_error=False,
        )

    with dagster_instance(tmp_path / "dagster") as instance, WebhookReceiver() as hook:
        cursor = _tick(sensor, instance, None, hook.url)  # the first tick only marks where to start
        simulator.faults = FaultConfig(fail_days=[day.isoformat()])
        assert not run().success
        cursor = _tick(sensor, instance, cursor, hook.url)
        cursor = _tick(sensor, instance, cursor, hook.url)  # a second tick sends nothing more
        assert not run().success  # the same day failing again before it recovers: announced already
        cursor = _tick(sensor, instance, cursor, hook.url)
        (failed,) = hook.texts()
        assert failed.startswith("[stx-pipeline] FAILED: stx_transactions — run ")
        assert f"Days: {day}" in failed and "Error: " in failed and f"Open: {UI}/runs/" in failed
        assert str(day) in failed.split("Error: ")[1]  # the error's first line names the partition

        simulator.faults = FaultConfig()
        assert run().success
        cursor = _tick(sensor, instance, cursor, hook.url)
        cursor = _tick(sensor, instance, cursor, hook.url)
        assert run().success  # a second run: the API's deprecation notice is not announced again
        cursor = _tick(sensor, instance, cursor, hook.url)
        texts = hook.texts()
        assert len(texts) == 3, texts
        # The simulator sends the real API's `Warning: 299` on v1 answers (API_STRATEGIES.md): announced once.
        assert texts[1].startswith("[stx-pipeline] API DEPRECATION NOTICE: stx_transactions — run ")
        assert texts[2].startswith("[stx-pipeline] RECOVERED: stx_transactions — materialized after the failure")
        assert f"Days: {day}" in texts[2] and f"Open: {UI}/assets/stx_transactions" in texts[2]
        assert not any(KEY in t for t in hook.texts())
        assert json.loads(cursor)["open"] == {}
        assert read_state(instance.root_directory)["last_alert"]["kind"] == "recovered"


@pytest.mark.slow  # a long in-process scenario (several seconds): make test
def test_sensor_freshness_overdue_then_recovered_and_switch_notice(tmp_path, simulator, db_path, monkeypatch):
    """Deadline 00:00 UTC: yesterday's partition is due now. The check fails before it is stored and passes
    after; a run meeting 410 on v1 announces its switch to v3 once."""
    monkeypatch.setenv("STX_FRESHNESS_DEADLINE_HOURS", "0")
    freshness = build_freshness_checks(Settings.from_env())
    sensor = build_alert_sensor(30)
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    resources = pipeline_resources(simulator.url, db_path, max_attempts=2, max_backoff_s=0.1)
    check = dg.AssetSelection.checks_for_assets(stx_transactions) - dg.AssetSelection.checks(
        dg.AssetCheckKey(stx_transactions.key, "rows_match_api_total"),
        dg.AssetCheckKey(stx_transactions.key, "tx_id_unique"),
    )

    def run_check():
        return dg.materialize([stx_transactions, freshness[0]], selection=check, resources=resources, instance=instance)

    with dagster_instance(tmp_path / "dagster") as instance, WebhookReceiver() as hook:
        cursor = _tick(sensor, instance, None, hook.url)
        run_check()
        cursor = _tick(sensor, instance, cursor, hook.url)
        run_check()  # still overdue: no second message
        cursor = _tick(sensor, instance, cursor, hook.url)
        (overdue,) = hook.texts()
        assert overdue.startswith("[stx-pipeline] OVERDUE: stx_transactions — freshness check freshness_check failed")
        expected = yesterday.isoformat()
        assert (
            f"Days: {expected}\nError: The asset has never been observed/materialized. We currently expect "
            f"partition {expected} to have arrived. (deadline {dt.datetime.now(dt.UTC).date()} 00:00 UTC)" in overdue
        )
        assert f"Open: {UI}/assets/stx_transactions?view=checks" in overdue

        simulator.faults = FaultConfig(gone=True)
        assert dg.materialize(
            [stx_transactions], resources=resources, partition_key=yesterday.isoformat(), instance=instance
        ).success
        run_check()
        cursor = _tick(sensor, instance, cursor, hook.url)
        texts = hook.texts()
        # The 410 answer carries the API's deprecation `Warning: 299` too: its first notice is announced as well.
        assert [t.split(" — ")[0] for t in texts] == [
            "[stx-pipeline] OVERDUE: stx_transactions",
            "[stx-pipeline] SWITCHED TO V3: stx_transactions",
            "[stx-pipeline] API DEPRECATION NOTICE: stx_transactions",
            "[stx-pipeline] RECOVERED: stx_transactions",
        ], texts
        assert "410 Gone on /extended/v1/tx" in texts[1] and f"Open: {UI}/runs/" in texts[1]
        assert "check freshness_check passes again" in texts[3]
        checks = read_state(instance.root_directory)["checks"]
        assert checks["stx_transactions:freshness_check"]["passed"] is True


def test_status_shows_freshness_and_the_last_alert(tmp_path, monkeypatch):
    from stx_pipeline.alerts import record_checks
    from stx_pipeline.operations.status import build_report, render_text

    with socket.socket() as sock:  # no webserver there: status falls back to the (absent) instance quickly
        sock.bind(("127.0.0.1", 0))
        monkeypatch.setenv("STX_UI_URL", f"http://127.0.0.1:{sock.getsockname()[1]}")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert "Last alert:          none sent" in render_text(build_report(tmp_path / "none.duckdb", 3))
    record_checks(
        tmp_path,
        {
            "stx_transactions:freshness_check": {"passed": False, "at": "2026-12-01T04:00:05+00:00", "detail": "late"},
            "wallet_dashboard:freshness_check": {"passed": True, "at": "2026-12-01T05:00:05+00:00", "detail": "ok"},
            "stx_transactions:tx_id_unique": {"passed": True, "at": "2026-12-01T03:00:00+00:00", "detail": "ok"},
        },
    )
    AlertSender(None, UI, tmp_path).send(Alert("freshness_overdue", "stx_transactions", "late"), Log())
    report = build_report(tmp_path / "none.duckdb", 3)
    text = render_text(report)
    assert (
        "Freshness:           stx_transactions OVERDUE (checked 2026-12-01T04:00:05+00:00): late; "
        "wallet_dashboard fresh (checked 2026-12-01T05:00:05+00:00)"
    ) in text
    assert "to the log: OVERDUE: stx_transactions — late" in text
    assert report.as_json()["alerts"]["last_alert"]["kind"] == "freshness_overdue"


def test_an_overdue_verdict_checked_before_the_last_write_is_marked_as_such():
    from stx_pipeline.alerts import status_lines

    summary = {
        "freshness": {
            "stx_transactions": {"passed": False, "at": "2026-12-01T17:18:38+00:00", "detail": "late"},
            "wallet_dashboard": {"passed": False, "at": "2026-12-01T17:20:00+00:00", "detail": "never"},
        }
    }
    line = status_lines(summary, "2026-12-01T17:19:00+00:00")[0]
    # Checked 22 s before the newest day was written: flagged. Checked after it: a real verdict, not flagged.
    assert "stx_transactions OVERDUE (checked 2026-12-01T17:18:38+00:00): late [checked before the write at " in line
    assert "wallet_dashboard OVERDUE (checked 2026-12-01T17:20:00+00:00): never" in line
    assert line.count("[checked before the write") == 1
    assert "[checked before" not in status_lines(summary, None)[0]


def test_first_tick_announces_a_check_failing_now_but_replays_no_old_run_failure(tmp_path, simulator, db_path):
    sensor = build_alert_sensor(30)
    settings = Settings.model_validate({"freshness_deadline_hours": 0})
    freshness = build_freshness_checks(settings)
    resources = pipeline_resources(simulator.url, db_path, max_attempts=1, max_backoff_s=0.1)
    simulator.faults = FaultConfig(fail_days=["2025-03-02"])
    with dagster_instance(tmp_path / "dagster") as instance, WebhookReceiver() as hook:
        old = dg.materialize(
            [stx_transactions], resources=resources, partition_key="2025-03-02", instance=instance, raise_on_error=False
        )
        assert not old.success
        dg.materialize(
            [stx_transactions, freshness[0]],
            selection=dg.AssetSelection.checks(*freshness[0].check_keys),
            resources=resources,
            instance=instance,
        )
        cursor = _tick(sensor, instance, None, hook.url)
        cursor = _tick(sensor, instance, cursor, hook.url)
    assert [t.split(" — ")[0] for t in hook.texts()] == ["[stx-pipeline] OVERDUE: stx_transactions"]
