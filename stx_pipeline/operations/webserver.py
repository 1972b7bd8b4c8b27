"""Talking to a running Dagster webserver through its public GraphQL API.

Used to launch partition backfills (the daemon then runs them with the asset's backfill policy) and to
read progress. No `import dagster` here: `stx-pipeline status` must answer fast.

A team server's UI sits behind an authenticating proxy (deploy/caddy, docs/DEPLOY.md): the credentials come from the
environment only (STX_UI_USER + STX_UI_PASSWORD, or STX_UI_TOKEN), never from a command-line option (visible in
`ps`), and no message here ever repeats a password or token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase, HTTPBasicAuth

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


class WebserverAuthError(WebserverError):
    """The proxy in front of the webserver wants other credentials (401/403, a redirect to a login page)."""


HOW_TO_LOG_IN = (
    "set STX_UI_USER and STX_UI_PASSWORD (basic auth at the proxy), or STX_UI_TOKEN (a bearer token), in the "
    "environment or the project's .env; never on the command line"
)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class BearerAuth(AuthBase):
    """`Authorization: Bearer <token>`: what an OIDC front such as oauth2-proxy accepts from scripts."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


@dataclass(frozen=True)
class Login:
    """Credentials for the UI's proxy and how to name them in messages (the user, never the secret)."""

    auth: AuthBase
    described: str


def ui_login(url: str) -> Login | None:
    """The UI credentials from the environment (the settings' ui_user / ui_password / ui_token), or None.

    Refuses half a login and credentials over plain http:// to another machine (basic auth is only encoded)."""
    from stx_pipeline.settings import ServiceSettings

    settings = ServiceSettings.from_env()
    user, password, token = settings.ui_user, settings.ui_password, settings.ui_token
    if (user is None) != (password is None):
        raise WebserverAuthError("STX_UI_USER and STX_UI_PASSWORD go together: set both, or neither")
    if token is not None and user is not None:
        raise WebserverAuthError("Set STX_UI_TOKEN or STX_UI_USER / STX_UI_PASSWORD, not both")
    if user is None and token is None:
        return None
    parts = urlsplit(url)
    if parts.scheme != "https" and parts.hostname not in LOOPBACK_HOSTS:
        raise WebserverAuthError(
            f"STX_UI_URL={url} is plain http to another machine: the UI credentials would cross the network "
            "readable. Use the proxy's https:// address."
        )
    if token is not None:
        return Login(BearerAuth(token.get_secret_value()), "STX_UI_TOKEN")
    assert password is not None
    return Login(HTTPBasicAuth(user, password.get_secret_value()), f"STX_UI_USER={user!r}")


def ui_url() -> str:
    """STX_UI_URL (the settings' ui_url), else the default."""
    from stx_pipeline.settings import ServiceSettings

    return ServiceSettings.from_env().ui_url


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
        if urlsplit(self.url).password is not None:
            raise WebserverAuthError(f"The UI URL must not hold credentials: {HOW_TO_LOG_IN}")
        self.timeout_s = timeout_s
        self.session = requests.Session()
        self.login: Login | None = None
        self._login_read = False

    def _authorize(self) -> None:
        """Read the credentials at the first request, so a bad pair is reported like any refusal."""
        if not self._login_read:
            self.login = ui_login(self.url)
            self.session.auth = self.login.auth if self.login else None
            self._login_read = True

    def query(self, text: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        self._authorize()
        try:
            response = self.session.post(
                f"{self.url}/graphql",
                json={"query": text, "variables": variables or {}},
                timeout=self.timeout_s,
                allow_redirects=False,  # a proxy's redirect to a login page is no GraphQL answer
            )
        except requests.RequestException:
            raise WebserverError(
                f"No Dagster webserver answers at {self.url}. Start one with `make up` "
                "(or run the days in this process with `stx-pipeline backfill --in-process`)."
            ) from None
        if response.status_code in (401, 403) or response.is_redirect:
            raise WebserverAuthError(self._refusal(response))
        if response.status_code != 200:
            raise WebserverError(f"The webserver at {self.url} answered HTTP {response.status_code} to GraphQL")
        try:
            payload = response.json()
        except ValueError:
            raise WebserverError(
                f"{self.url}/graphql answered HTTP 200 with no GraphQL JSON: is STX_UI_URL the Dagster UI?"
            ) from None
        if payload.get("errors"):
            raise WebserverError(f"GraphQL error from {self.url}: {payload['errors'][0].get('message')}")
        return payload["data"]

    def _refusal(self, response: requests.Response) -> str:
        """What was refused and what to set; names the user or the variable, never the secret."""
        status = response.status_code
        if response.is_redirect:
            target = response.headers.get("location", "")
            ours, theirs = urlsplit(self.url), urlsplit(target)
            if ours.scheme == "http" and theirs.scheme == "https" and theirs.hostname == ours.hostname:
                return f"{self.url} redirects to https (HTTP {status}): set STX_UI_URL to the https:// address"
            return (
                f"{self.url}/graphql redirects to {target or 'another page'} (HTTP {status}), a login page for "
                f"people: scripts log in with a token; {HOW_TO_LOG_IN}"
            )
        if self.login is None:
            return f"The UI at {self.url} asks for a login (HTTP {status}): {HOW_TO_LOG_IN}."
        if status == 401:
            return (
                f"The UI at {self.url} refused the login of {self.login.described} (HTTP 401): check "
                "STX_UI_PASSWORD / STX_UI_TOKEN against the account the proxy knows (docs/DEPLOY.md)."
            )
        return (
            f"The UI at {self.url} knows {self.login.described} but forbids it (HTTP 403): ask the operator for "
            "access, or set another account in STX_UI_USER / STX_UI_PASSWORD (or STX_UI_TOKEN)."
        )

    def is_up(self) -> bool:
        self._authorize()
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
