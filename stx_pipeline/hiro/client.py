"""HTTP access to the Hiro Stacks Blockchain API: retries, pacing, error classification.

Knows HTTP and nothing of Dagster or DuckDB. The API key travels only in the `x-api-key` header of the
session; it never enters a URL, a log line, an exception or a statistic.
"""

from __future__ import annotations

import email.utils
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

import requests
import tenacity
from requests.adapters import HTTPAdapter

from stx_pipeline.hiro.errors import (
    EndpointGoneError,
    FetchCancelledError,
    HiroApiError,
    QuotaExhaustedError,
    RetriesExhaustedError,
    TransientHttpError,
)
from stx_pipeline.hiro.pacing import PaceBudget, RequestPacer

DEFAULT_BASE_URL = "https://api.hiro.so"
# Hiro's rate-limit guide (docs.hiro.so, "Rate limiting"): 50 requests/min per IP without a key, 500/min with one.
# Only the pace until the first answer: from then on the limit the API advertises in its headers rules.
DEFAULT_RPM_WITHOUT_KEY = 50
DEFAULT_RPM_WITH_KEY = 500

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504, 522, 525})
MAX_SERVER_WAIT_S = 300.0  # never trust a hint beyond this (a far-future HTTP-date would stall a run)

_HINTS = {
    400: "the request was rejected as malformed: a bug in stx-pipeline or an API change, please report it",
    401: "the API key was refused: check HIRO_API_KEY (or unset it to use the keyless budget)",
    403: "access is forbidden for this key or IP: check HIRO_API_KEY and the key's plan",
    404: "the API does not know this endpoint or object: check STX_API_URL",
    410: "the API retired this endpoint (Gone); set STX_API_STRATEGY=v3 (or auto) to list through /extended/v3",
}


class Logger(Protocol):
    def info(self, msg: str) -> Any: ...
    def warning(self, msg: str) -> Any: ...


@dataclass
class ClientStats:
    """Counters for one client; safe to share across the page threads."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0  # 429s received
    deprecation_notices: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **increments: int) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(self, name, getattr(self, name) + value)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "requests": self.requests,
                "retries": self.retries,
                "rate_limited": self.rate_limited,
                "deprecation_notices": self.deprecation_notices,
            }


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `retry-after` header (delta-seconds or HTTP-date); None when there is no hint.

    `0` (or a date in the past) means "no hint", not "retry now": the caller then backs off exponentially.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(seconds, MAX_SERVER_WAIT_S) if seconds > 0 else None


def _seconds_until_reset(value: str | None) -> float | None:
    """`ratelimit-reset` is a unix time (some deployments send seconds-from-now: accept both)."""
    if not value:
        return None
    try:
        reset = float(value)
    except ValueError:
        return None
    seconds = reset - time.time() if reset > 1_000_000_000 else reset
    return min(seconds, MAX_SERVER_WAIT_S) if seconds > 0 else None


class HiroClient:
    """GETs JSON from the API with bounded retries (tenacity) and even pacing under a rate budget."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        requests_per_minute: float | None = None,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 30.0,
        max_attempts: int = 8,
        max_backoff_s: float = 30.0,
        logger: Logger | None = None,
        pool_size: int = 8,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # requests_per_minute: the operator's own budget (None or 0: none); the pace never exceeds it, nor the
        # limit the server advertises (stx_pipeline.hiro.pacing).
        self.budget = PaceBudget(requests_per_minute, DEFAULT_RPM_WITH_KEY if api_key else DEFAULT_RPM_WITHOUT_KEY)
        self.pacer = RequestPacer(self.budget.rpm)
        self.timeout = (connect_timeout_s, read_timeout_s)
        self.max_attempts = max_attempts
        self.max_backoff_s = max_backoff_s
        self.log: Logger = logger or logging.getLogger("stx_pipeline.hiro")
        self.stats = ClientStats()
        self._quota_exhausted = False
        self._deprecation_logged = False

        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"accept": "application/json", "user-agent": "stx-pipeline"})
        if api_key:
            self.session.headers["x-api-key"] = api_key

    @property
    def requests_per_minute(self) -> float:
        """The current pace in requests per minute; 0 when unpaced."""
        return self.budget.rpm or 0.0

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> HiroClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public -----------------------------------------------------------------------------------

    def get_json(
        self, path: str, params: dict[str, Any] | None = None, *, cancelled: Callable[[], bool] | None = None
    ) -> dict[str, Any]:
        """One endpoint call, retried on transient failures; raises HiroApiError subclasses otherwise.

        `cancelled` (polled before each attempt and during retry waits) gives the call up with
        FetchCancelledError, sending nothing more: the caller no longer needs the answer."""
        endpoint = f"{path}?{urlencode(params)}" if params else path

        def sleep(seconds: float) -> None:
            deadline = time.monotonic() + seconds
            while not (cancelled and cancelled()) and (left := deadline - time.monotonic()) > 0:
                time.sleep(min(left, 0.05))

        retrying = tenacity.Retrying(
            sleep=sleep,
            retry=tenacity.retry_if_exception_type(TransientHttpError),
            wait=self._wait_before_retry,
            stop=tenacity.stop_after_attempt(self.max_attempts),
            before_sleep=self._before_retry_sleep,
            reraise=True,
        )
        try:
            return retrying(self._get_once, path, params, endpoint, cancelled)
        except TransientHttpError as exc:
            raise RetriesExhaustedError(
                f"GET {endpoint} still failing after {self.max_attempts} attempts: {exc}. "
                + (
                    "The API keeps rate limiting: lower the request budget (STX_REQUESTS_PER_MINUTE) "
                    "or set HIRO_API_KEY, then re-run the partition."
                    if exc.status == 429
                    else "The API or the network keeps failing; nothing of this day was written: "
                    "re-run the partition later."
                ),
                status=exc.status,
                endpoint=endpoint,
            ) from exc

    # -- one attempt ------------------------------------------------------------------------------

    def _get_once(
        self, path: str, params: dict[str, Any] | None, endpoint: str, cancelled: Callable[[], bool] | None = None
    ) -> dict[str, Any]:
        if self._quota_exhausted:
            raise QuotaExhaustedError(self._quota_message(endpoint), status=429, endpoint=endpoint)
        if cancelled and cancelled():
            raise FetchCancelledError(f"GET {endpoint} not sent: its day was given up", endpoint=endpoint)
        self.pacer.wait()
        if cancelled and cancelled():  # the wait for a slot can be long (a server hold): look again
            raise FetchCancelledError(f"GET {endpoint} not sent: its day was given up", endpoint=endpoint)
        self.stats.add(requests=1)
        try:
            response = self.session.get(self.base_url + path, params=params, timeout=self.timeout)
            body = response.content  # read here so a truncated body surfaces inside the retry
        except requests.Timeout as exc:
            raise TransientHttpError(f"timeout on GET {endpoint}", endpoint=endpoint) from exc
        except requests.RequestException as exc:
            # ConnectionError, ChunkedEncodingError (truncated body), ...: the message may hold the URL,
            # never the key (headers are not part of requests' exception text).
            raise TransientHttpError(f"{type(exc).__name__} on GET {endpoint}: {exc}", endpoint=endpoint) from exc
        self._observe_headers(response, endpoint)
        status = response.status_code
        if status == 200:
            try:
                return json.loads(body)
            except ValueError as exc:
                raise TransientHttpError(
                    f"unparsable JSON body ({len(body)} bytes) from GET {endpoint}",
                    status=200,
                    endpoint=endpoint,
                ) from exc
        if status in RETRYABLE_STATUSES:
            if status == 429:
                self.stats.add(rate_limited=1)
                if response.headers.get("x-ratelimit-remaining-stacks-month") == "0":
                    self._quota_exhausted = True
                    raise QuotaExhaustedError(self._quota_message(endpoint), status=429, endpoint=endpoint)
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            if retry_after is None and status == 429 and response.headers.get("ratelimit-remaining") == "0":
                retry_after = _seconds_until_reset(response.headers.get("ratelimit-reset"))
            if retry_after:
                self.pacer.hold_for(retry_after)
            raise TransientHttpError(
                f"HTTP {status} from GET {endpoint}",
                status=status,
                endpoint=endpoint,
                retry_after_s=retry_after,
            )
        detail = _error_detail(body)
        hint = _HINTS.get(status, "unexpected answer from the API")
        message = f"HTTP {status} from GET {endpoint}{detail}: {hint}."
        if status == 410:
            raise EndpointGoneError(message, status=status, endpoint=endpoint)
        raise HiroApiError(message, status=status, endpoint=endpoint)

    def _observe_headers(self, response: requests.Response, endpoint: str) -> None:
        headers = response.headers
        if self.budget.observe(headers, response.status_code):
            self.pacer.set_rate(self.budget.rpm)
            self.log.info(self._pace_message())
        if headers.get("x-ratelimit-remaining-stacks-month") == "0" and response.status_code == 200:
            # This answer is still good; the next request would be refused.
            self._quota_exhausted = True
        if headers.get("ratelimit-remaining") == "0" and response.status_code == 200:
            wait = _seconds_until_reset(headers.get("ratelimit-reset"))
            if wait:
                self.pacer.hold_for(wait)
        warning = headers.get("warning")
        if warning and warning.startswith("299") and not self._deprecation_logged:
            self._deprecation_logged = True
            self.stats.add(deprecation_notices=1)
            self.log.warning(f"Deprecation notice from the API on {endpoint.split('?')[0]}: {warning}")

    def _pace_message(self) -> str:
        budget = self.budget
        if budget.advertised:
            limit, window = budget.advertised
            server = f"the API advertises {limit:g} requests per {window:g} s"
        else:
            server = "the API advertises no limit"
        own = f"STX_REQUESTS_PER_MINUTE={budget.configured_rpm:g}" if budget.configured_rpm else "no own budget"
        pace = f"{budget.rpm:g} requests/min" if budget.rpm else "full speed (unpaced)"
        return f"pacing at {pace}: {server}, {own}"

    def _quota_message(self, endpoint: str) -> str:
        return (
            f"monthly request quota exhausted (x-ratelimit-remaining-stacks-month: 0) at GET {endpoint}. "
            "Nothing more can be fetched this month with this key/IP: wait for the quota to reset, "
            "or set HIRO_API_KEY to a key with quota left."
        )

    # -- tenacity hooks ---------------------------------------------------------------------------

    def _wait_before_retry(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientHttpError) and exc.retry_after_s:
            return exc.retry_after_s + 0.05  # the pacer already holds other threads until then
        # No hint: exponential with full jitter, never a hot loop.
        return tenacity.wait_random_exponential(multiplier=0.5, min=0.2, max=self.max_backoff_s)(state)

    def _before_retry_sleep(self, state: tenacity.RetryCallState) -> None:
        self.stats.add(retries=1)
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        self.log.info(f"retry {state.attempt_number}/{self.max_attempts - 1} in {wait:.1f}s after: {exc}")


def _error_detail(body: bytes) -> str:
    """The API's own error message (Hiro bodies: {statusCode, error, message}), shortened."""
    try:
        payload = json.loads(body)
    except ValueError:
        return ""
    if isinstance(payload, dict):
        message = payload.get("message") or payload.get("error")
        if isinstance(message, str) and message:
            return f" ({message[:200]})"
    return ""
