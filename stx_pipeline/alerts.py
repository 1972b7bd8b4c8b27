"""Alert messages: what failed, which days, the error's first line, the UI link; posted once to a webhook.

No Dagster here: the sensors in stx_pipeline.alert_sensors decide *when* to alert (and deduplicate); this module
builds the text, strips secrets out of it, posts it (one attempt, a short timeout: a chat tool that is down must
not hold a sensor tick or start a storm of retries) and records the last alert and the checks' latest verdicts in a
small JSON file under the Dagster instance's directory, which `stx-pipeline status` reads without importing Dagster.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

AlertFormat = Literal["json", "plain"]
ALERT_FORMATS: tuple[str, ...] = ("json", "plain")
POST_TIMEOUT_S = 10.0
STATE_FILE = Path("stx-pipeline") / "alerts.json"
REDACTED = "[redacted]"

# What a message is about; RECOVERED closes an earlier FAILED/FRESHNESS alert with the same key.
Kind = Literal["run_failed", "check_failed", "freshness_overdue", "recovered", "deprecation_notice", "switched_to_v3"]
_TITLES = {
    "run_failed": "FAILED",
    "check_failed": "CHECK FAILED",
    "freshness_overdue": "OVERDUE",
    "recovered": "RECOVERED",
    "deprecation_notice": "API DEPRECATION NOTICE",
    "switched_to_v3": "SWITCHED TO V3",
}


class Logger(Protocol):
    def info(self, msg: str) -> Any: ...
    def warning(self, msg: str) -> Any: ...


@dataclass(frozen=True)
class Alert:
    kind: Kind
    subject: str  # the asset or check: "stx_transactions", "stx_transactions:rows_match_api_total"
    summary: str  # one sentence: what happened
    days: list[str] = field(default_factory=list)  # ISO days concerned, if any
    error: str = ""  # the error's text; only its first line is sent
    path: str = ""  # the UI page, relative to STX_UI_URL: "/runs/<id>", "/assets/stx_transactions"


def first_line(text: str, limit: int = 300) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def compact_days(days: Iterable[str]) -> str:
    """ISO days as consecutive ranges: 2026-11-20..2026-11-22, 2026-11-25."""
    parsed = sorted({dt.date.fromisoformat(d) for d in days})
    spans: list[str] = []
    start = prev = None
    for day in [*parsed, None]:
        if day is not None and prev is not None and (day - prev).days == 1:
            prev = day
            continue
        if start is not None and prev is not None:
            spans.append(str(start) if start == prev else f"{start}..{prev}")
        start = prev = day
    return ", ".join(spans)


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """Belt and braces: no message may carry the API key or the webhook's own token, whatever an error quoted."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text


def format_message(alert: Alert, ui_url: str) -> str:
    parts = [f"[stx-pipeline] {_TITLES[alert.kind]}: {alert.subject} — {alert.summary}"]
    if alert.days:
        parts.append(f"Days: {compact_days(alert.days)}")
    if alert.error:
        parts.append(f"Error: {first_line(alert.error)}")
    parts.append(f"Open: {ui_url.rstrip('/')}{alert.path or '/'}")
    return "\n".join(parts)


def webhook_body(text: str, fmt: AlertFormat) -> dict[str, Any]:
    """`json`: {"text", "content"} — Slack and Teams incoming webhooks read `text`, Discord reads `content`, each
    ignores the other key. `plain`: the text itself as text/plain, what ntfy (and most generic endpoints) show."""
    if fmt == "plain":
        return {"data": text.encode(), "headers": {"Content-Type": "text/plain; charset=utf-8"}}
    return {"json": {"text": text, "content": text}}


def state_path(instance_dir: str | Path) -> Path:
    return Path(instance_dir) / STATE_FILE


def read_state(instance_dir: str | Path | None) -> dict[str, Any]:
    """The last alert and the checks' latest verdicts as the alert sensor last recorded them; {} when none."""
    if instance_dir is None:
        return {}
    try:
        data = json.loads(state_path(instance_dir).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_state(instance_dir: str | Path, data: dict[str, Any]) -> None:
    path = state_path(instance_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename: `status` never reads half a file.
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        json.dump(data, tmp, indent=1, sort_keys=True)
    os.replace(tmp.name, path)


def record_checks(instance_dir: str | Path, verdicts: dict[str, dict[str, Any]]) -> None:
    """Remember each check's latest verdict ({"passed", "at", "detail"}) for `stx-pipeline status`."""
    if not verdicts:
        return
    data = read_state(instance_dir)
    data.setdefault("checks", {}).update(verdicts)
    _write_state(instance_dir, data)


@dataclass
class AlertSender:
    """Posts alerts to `webhook_url` (None: to the log only) and records the last one under `instance_dir`."""

    webhook_url: str | None
    ui_url: str
    instance_dir: str | Path
    fmt: AlertFormat = "json"
    secrets: tuple[str | None, ...] = ()
    timeout_s: float = POST_TIMEOUT_S

    def send(self, alert: Alert, log: Logger) -> dict[str, Any]:
        text = scrub(format_message(alert, self.ui_url), (*self.secrets, self.webhook_url))
        record: dict[str, Any] = {
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "kind": alert.kind,
            "subject": alert.subject,
            "days": alert.days,
            "message": text,
            "destination": "webhook" if self.webhook_url else "log",
            "delivered": False,
            "error": None,
        }
        if not self.webhook_url:
            log.warning(f"alert (STX_ALERT_WEBHOOK_URL unset, log only):\n{text}")
            record["delivered"] = True
        else:
            import requests  # here, not at the top: `stx-pipeline status` reads alerts without posting any

            try:
                response = requests.post(self.webhook_url, timeout=self.timeout_s, **webhook_body(text, self.fmt))
                response.raise_for_status()
                record["delivered"] = True
                log.info(f"alert posted to the webhook:\n{text}")
            except requests.RequestException as exc:
                # One attempt: the alert stays in the log and in `status`; the next failure posts again.
                status = getattr(exc.response, "status_code", None)
                reason = f"HTTP {status}" if status else type(exc).__name__
                record["error"] = f"the webhook refused or did not answer ({reason})"
                log.warning(f"alert NOT delivered ({record['error']}); check STX_ALERT_WEBHOOK_URL:\n{text}")
        data = read_state(self.instance_dir)
        data["last_alert"] = record
        _write_state(self.instance_dir, data)
        return record


def status_summary(instance_dir: str | Path | None) -> dict[str, Any]:
    """For `stx-pipeline status`: each asset's freshness verdict and the last alert, as the alert sensor last
    recorded them (no Dagster import: status stays fast)."""
    state = read_state(instance_dir)
    freshness = {
        key.split(":", 1)[0]: verdict
        for key, verdict in state.get("checks", {}).items()
        if key.endswith(":freshness_check")
    }
    return {"freshness": freshness, "last_alert": state.get("last_alert")}


def _before(checked_at: Any, written_at: str | None) -> bool:
    try:
        return bool(written_at) and dt.datetime.fromisoformat(str(checked_at)) < dt.datetime.fromisoformat(written_at)
    except ValueError:
        return False


def status_lines(summary: dict[str, Any], last_write: str | None = None) -> list[str]:
    """`last_write`: when the newest stored day was written (ISO, UTC). An OVERDUE verdict checked before it may be
    out of date: Dagster's freshness sensor re-checks after the asset changes, and the alert sensor records that."""
    fresh = summary.get("freshness") or {}
    verdicts = [
        f"{asset} {'fresh' if v.get('passed') else 'OVERDUE'} (checked {v.get('at', '?')})"
        + ("" if v.get("passed") else f": {first_line(str(v.get('detail', '')), 160)}")
        + (
            ""
            if v.get("passed") or not _before(v.get("at"), last_write)
            else f" [checked before the write at {last_write}: re-checked on the sensors' next ticks]"
        )
        for asset, v in sorted(fresh.items())
    ]
    lines = [f"Freshness:           {'; '.join(verdicts) or 'not evaluated yet (freshness_checks_sensor)'}"]
    last = summary.get("last_alert")
    if last:
        where = "the log" if last.get("destination") == "log" else "the webhook"
        outcome = "" if last.get("delivered") else f", NOT delivered: {last.get('error')}"
        headline = first_line(str(last.get("message", "")), 160).removeprefix("[stx-pipeline] ")
        lines.append(f"Last alert:          {last.get('at')} to {where}{outcome}: {headline}")
    else:
        lines.append("Last alert:          none sent")
    return lines
