"""Alerts end to end: `dagster dev` (a real daemon ticking the sensors), the simulator over HTTP, and a webhook
receiver on 127.0.0.1 standing in for the chat tool."""

from __future__ import annotations

import time

import pytest

from stx_pipeline.devtools.dagster_env import cli, dagster_dev, pipeline_env
from stx_pipeline.operations.window import last_complete_day
from stx_pipeline.simulator import FaultConfig
from stx_pipeline_tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.slow

KEY = "sk-planted-e2e-5f4e3d2c1b0a"
UI_LINK = "http://dagster.stx.test:3000"  # STX_UI_URL as an operator sets it: the link each message carries


def test_failure_freshness_recovery_and_switch_reach_the_webhook_once_each(tmp_path, simulator):
    yesterday = last_complete_day()
    simulator.faults = FaultConfig(fail_days=[yesterday.isoformat()])
    with WebhookReceiver() as hook:
        env = pipeline_env(
            tmp_path,
            simulator.url,
            HIRO_API_KEY=KEY,
            STX_ALERT_WEBHOOK_URL=hook.url,
            STX_UI_URL=UI_LINK,
            STX_ALERT_INTERVAL_S="5",
            # The top-up asks for yesterday at once, and yesterday is due at 00:00 UTC: overdue now.
            STX_DAILY_TOPUP="on",
            STX_TOPUP_DELAY_HOURS="0",
            STX_TARGET_DAYS="2",
            STX_FRESHNESS_DEADLINE_HOURS="0",
            STX_FRESHNESS_SENSOR="on",
        )
        with dagster_dev(tmp_path, env) as ui:
            # 1. A missed deadline: the freshness sensor's check fails, one OVERDUE message naming the day.
            (overdue,) = hook.wait_for("OVERDUE: stx_transactions", timeout_s=240)
            assert f"Days: {yesterday}" in overdue and f"partition {yesterday}" in overdue
            assert f"Open: {UI_LINK}/assets/stx_transactions?view=checks" in overdue

            # 2. The top-up's run for yesterday fails (the API answers 500 for that day): one message, the day,
            # the error's first line, the run's page.
            (failed,) = hook.wait_for("FAILED: stx_transactions", timeout_s=240)
            assert f"Days: {yesterday}" in failed
            assert "Error: 1 of 1 days failed; nothing of those days was written" in failed
            assert f"Open: {UI_LINK}/runs/" in failed

            # 3. Once the API answers again, a backfill stores the day: a recovery message for it.
            simulator.faults = FaultConfig()
            env["STX_UI_URL"] = ui  # the CLI talks to this webserver
            backfill = cli(["backfill", "--days", "2", "--wait"], env)
            assert backfill.returncode == 0, backfill.stdout + backfill.stderr
            (recovered,) = hook.wait_for("RECOVERED: stx_transactions — materialized", timeout_s=120)
            assert f"Days: {yesterday}" in recovered
            # The run that stored yesterday evaluated the freshness check too: it passes again.
            hook.wait_for("RECOVERED: stx_transactions — check freshness_check passes again", timeout_s=120)

            # 4. v1 retired mid-history: a run meeting 410 switches to v3 and says so, once.
            simulator.faults = FaultConfig(gone=True)
            older = yesterday.fromordinal(yesterday.toordinal() - 3)
            switched_run = cli(["backfill", "--start", str(older), "--end", str(older), "--wait"], env)
            assert switched_run.returncode == 0, switched_run.stdout + switched_run.stderr
            (switched,) = hook.wait_for("SWITCHED TO V3: stx_transactions", timeout_s=120)
            assert "410 Gone on /extended/v1/tx" in switched and f"Open: {UI_LINK}/runs/" in switched

            time.sleep(15)  # a few more ticks of both sensors: nothing is announced twice
            texts = hook.texts()
            status = cli(["status", "--target-days", "2"], env)

    assert sum("FAILED: stx_transactions" in t for t in texts) == 1, texts
    assert sum("OVERDUE: stx_transactions" in t for t in texts) == 1, texts
    assert sum("SWITCHED TO V3" in t for t in texts) == 1, texts
    assert sum("API DEPRECATION NOTICE" in t for t in texts) <= 1, texts
    raw = "\n".join(post["body"] for post in hook.posts)
    assert KEY not in raw and "planted-webhook-token" not in raw
    assert "Freshness:           stx_transactions" in status.stdout, status.stdout + status.stderr
    assert "Last alert:          " in status.stdout and "to the webhook: " in status.stdout
    assert KEY not in status.stdout
