"""Talking to a running Dagster webserver through its public GraphQL API.

Used to launch partition backfills (the daemon then runs them with the asset's backfill policy) and to
read progress. No `import dagster` here: `stx-pipeline status` must answer fast.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import requests

DEFAULT_UI_URL = "http://127.0.0.1:3000"

# The text of dagster_graphql.client.query.LAUNCH_PARTITION_BACKFILL_MUTATION, trimmed to what we read.
LAUNCH_BACKFILL = """
mutation($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on PythonError { message }
    ... on PartitionSetNotFoundError { message }
    ... on PartitionKeysNotFoundError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on UnauthorizedError { message }
    ... on LaunchBackfillSuccess { backfillId launchedRunIds }
  }
}
"""

BACKFILL_STATUS = """
query($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill {
      id
      status
      numPartitions
      assetBackfillData {
        assetBackfillStatuses {
          ... on AssetPartitionsStatusCounts {
            assetKey { path }
            numPartitionsTargeted
            numPartitionsInProgress
            numPartitionsMaterialized
            numPartitionsFailed
          }
        }
      }
    }
    ... on PythonError { message }
    ... on BackfillNotFoundError { message }
  }
}
"""

LATEST_BACKFILL = """
query {
  partitionBackfillsOrError(limit: 1) {
    ... on PartitionBackfills { results { id status numPartitions timestamp } }
  }
}
"""

CANCEL_BACKFILL = """
mutation($backfillId: String!) {
  cancelPartitionBackfill(backfillId: $backfillId) {
    __typename
    ... on CancelBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""

DAEMON_HEALTH = """
query { instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }
"""

PARTITION_STATUSES = """
query($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      assetPartitionStatuses {
        ... on TimePartitionStatuses { ranges { status startKey endKey } }
      }
    }
  }
}
"""

# Backfills still launching runs, with the days they target: their days are in progress before their runs exist.
UNFINISHED_BACKFILLS = """
query {
  partitionBackfillsOrError(status: REQUESTED) {
    ... on PartitionBackfills { results { id partitionNames assetSelection { path } } }
  }
}
"""

# Configured values of the code location's resources: plain values as JSON text, EnvVar-backed ones as the
# variable's name (type ENV_VAR), secrets masked. Enough to compare STX_API_URL / STX_DUCKDB_PATH.
RESOURCE_VALUES = """
query {
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes { allTopLevelResourceDetails { name configuredValues { key value type } } }
    }
    ... on PythonError { message }
  }
}
"""

# Backfill states that will not change any more.
FINAL_STATES = frozenset({"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"})


class WebserverError(Exception):
    """The webserver (or its daemon) is not there or refused the request; the message says what to do."""


def ui_url() -> str:
    return os.environ.get("STX_UI_URL", "").strip().rstrip("/") or DEFAULT_UI_URL


@dataclass(frozen=True)
class BackfillProgress:
    backfill_id: str
    status: str
    targeted: int
    in_progress: int
    materialized: int
    failed: int

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATES


class DagsterWebserver:
    def __init__(self, url: str | None = None, timeout_s: float = 10.0) -> None:
        self.url = (url or ui_url()).rstrip("/")
        self.timeout_s = timeout_s
        self.session = requests.Session()

    def query(self, text: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self.session.post(
                f"{self.url}/graphql",
                json={"query": text, "variables": variables or {}},
                timeout=self.timeout_s,
            )
        except requests.RequestException:
            raise WebserverError(
                f"No Dagster webserver answers at {self.url}. Start one with `make up` "
                "(or run the days in this process with `stx-pipeline backfill --in-process`)."
            ) from None
        if response.status_code != 200:
            raise WebserverError(f"The webserver at {self.url} answered HTTP {response.status_code} to GraphQL")
        payload = response.json()
        if payload.get("errors"):
            raise WebserverError(f"GraphQL error from {self.url}: {payload['errors'][0].get('message')}")
        return payload["data"]

    def is_up(self) -> bool:
        try:
            self.session.get(f"{self.url}/server_info", timeout=min(self.timeout_s, 2.0))
        except requests.RequestException:
            return False
        return True

    def unhealthy_daemons(self) -> list[str]:
        """Required daemons that are not heartbeating (a backfill needs the BACKFILL and QUEUED_RUN ones)."""
        data = self.query(DAEMON_HEALTH)
        statuses = data["instance"]["daemonHealth"]["allDaemonStatuses"]
        return [s["daemonType"] for s in statuses if s["required"] and not s["healthy"]]

    def launch_backfill(self, asset_path: list[str], partition_keys: list[str], title: str | None = None) -> str:
        """One asset partition backfill over these days (any set; the daemon chunks it by the backfill
        policy); returns its id."""
        params: dict[str, Any] = {"assetSelection": [{"path": asset_path}], "partitionNames": partition_keys}
        if title:
            params["title"] = title
        result = self.query(LAUNCH_BACKFILL, {"backfillParams": params})["launchPartitionBackfill"]
        if result["__typename"] != "LaunchBackfillSuccess":
            detail = result.get("message") or result["__typename"]
            raise WebserverError(f"The webserver refused the backfill: {detail}")
        return str(result["backfillId"])

    def backfill_progress(self, backfill_id: str) -> BackfillProgress:
        result = self.query(BACKFILL_STATUS, {"backfillId": backfill_id})["partitionBackfillOrError"]
        if result["__typename"] != "PartitionBackfill":
            raise WebserverError(f"Backfill {backfill_id}: {result.get('message') or result['__typename']}")
        counts = {
            "numPartitionsTargeted": 0,
            "numPartitionsInProgress": 0,
            "numPartitionsMaterialized": 0,
            "numPartitionsFailed": 0,
        }
        for status in (result.get("assetBackfillData") or {}).get("assetBackfillStatuses") or []:
            for key in counts:
                counts[key] += int(status.get(key) or 0)
        return BackfillProgress(
            backfill_id=backfill_id,
            status=result["status"],
            targeted=counts["numPartitionsTargeted"] or int(result.get("numPartitions") or 0),
            in_progress=counts["numPartitionsInProgress"],
            materialized=counts["numPartitionsMaterialized"],
            failed=counts["numPartitionsFailed"],
        )

    def cancel_backfill(self, backfill_id: str) -> None:
        """Stop launching new runs of the backfill and cancel its running ones; finished days stay."""
        result = self.query(CANCEL_BACKFILL, {"backfillId": backfill_id})["cancelPartitionBackfill"]
        if result["__typename"] != "CancelBackfillSuccess":
            raise WebserverError(
                f"Could not cancel backfill {backfill_id}: {result.get('message') or result['__typename']}"
            )

    def latest_backfill(self) -> dict[str, Any] | None:
        data = self.query(LATEST_BACKFILL)["partitionBackfillsOrError"]
        results = data.get("results") if data else None
        return results[0] if results else None

    def pending_backfill_days(self, asset_path: list[str]) -> set[str]:
        """Partition keys of `asset_path` targeted by backfills that are still running (status REQUESTED)."""
        data = self.query(UNFINISHED_BACKFILLS)["partitionBackfillsOrError"]
        keys: set[str] = set()
        for backfill in (data or {}).get("results") or []:
            if any(key.get("path") == asset_path for key in backfill.get("assetSelection") or []):
                keys.update(backfill.get("partitionNames") or [])
        return keys

    def resource_values(self) -> dict[str, dict[str, str]]:
        """{resource: {field: value}} of the plain (type VALUE) configured values of every loaded repository."""
        data = self.query(RESOURCE_VALUES)["repositoriesOrError"]
        if "nodes" not in data:
            raise WebserverError(
                f"The webserver at {self.url} could not list its code locations: {data.get('message')}"
            )
        values: dict[str, dict[str, str]] = {}
        for repo in data["nodes"]:
            for resource in repo.get("allTopLevelResourceDetails") or []:
                for item in resource.get("configuredValues") or []:
                    if item["type"] != "VALUE":
                        continue
                    try:
                        value = json.loads(item["value"])
                    except ValueError:
                        value = item["value"]
                    values.setdefault(resource["name"], {})[item["key"]] = str(value)
        return values

    def partition_ranges(self, asset_path: list[str]) -> list[dict[str, str]]:
        """[{status, startKey, endKey}] for MATERIALIZED / FAILED / MATERIALIZING ranges of a time-partitioned asset."""
        node = self.query(PARTITION_STATUSES, {"assetKey": {"path": asset_path}})["assetNodeOrError"]
        statuses = (node or {}).get("assetPartitionStatuses") or {}
        return list(statuses.get("ranges") or [])
