"""Shared server state: fault decisions, rate limiting and statistics, behind one lock.

Every handler thread asks the Controller what to do with a request, so fault randomness comes
from one seeded RNG and is reproducible for a given request order.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stx_pipeline.simulator.faults import SERVER_ERROR_CODES, FaultConfig
from stx_pipeline.simulator.ratelimit import (
    MonthlyQuota,
    SlidingWindow,
    retry_after_value,
    seconds_to_next_month,
)

BURST_RETRY_SECONDS = 1  # small, so tests that honour retry-after stay fast


@dataclass
class Admission:
    """Outcome of the gateway checks: headers for every response, and an error to send instead."""

    headers: dict[str, str] = field(default_factory=dict)
    error_status: int | None = None
    error_body: dict[str, Any] | None = None
    sequence: int = 0  # 1-based number of this API request since the fault config was set


class Controller:
    def __init__(
        self,
        faults: FaultConfig | None,
        rpm_limit: int | None,
        clock: Callable[[], float],
        required_api_key: str | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._required_key_digest = _key_digest(required_api_key) if required_api_key else None
        self._window = SlidingWindow(rpm_limit)
        self._salt = os.urandom(16)  # distinct keys are counted by salted digest, never stored
        self._keys_seen: set[bytes] = set()
        self._requests = 0
        self._admin_requests = 0
        self._connections = 0
        self._with_key = 0
        self._by_status: Counter[int] = Counter()
        self._faults_injected: Counter[str] = Counter()
        self._set_faults(faults or FaultConfig())

    # --- faults --------------------------------------------------------------------------------------

    @property
    def faults(self) -> FaultConfig:
        """The live config: `sim.faults.error_rate = 1` takes effect on the next request. Assigning a
        whole new FaultConfig also restarts the fault RNG, bursts, drift and quota counters."""
        with self._lock:
            return self._faults

    @faults.setter
    def faults(self, value: FaultConfig) -> None:
        value.validate()
        with self._lock:
            self._set_faults(value)

    def _set_faults(self, value: FaultConfig) -> None:
        # A new configuration restarts its own sequences, so a test sees the same faults each run.
        self._faults = value
        self._rng = random.Random(value.fault_seed)
        self._quota = MonthlyQuota()
        self._burst_counter = 0
        self._burst_left = 0
        self._drift = 0
        self._sequence = 0

    # --- gateway -----------------------------------------------------------------------------------

    def admit(self, api_key: str | None) -> Admission:
        """Auth, monthly quota, per-minute window and 429 bursts, in that order."""
        now = self._clock()
        with self._lock:
            self._requests += 1
            if api_key is not None:
                self._with_key += 1
                self._keys_seen.add(hashlib.sha256(self._salt + api_key.encode()).digest())
            faults = self._faults
            self._sequence += 1
            admission = Admission(sequence=self._sequence)
            headers = admission.headers
            headers["x-ratelimit-cost-stacks"] = "1"
            quota_left: int | None = None
            if faults.monthly_quota is not None:
                quota_left = self._quota.remaining(faults.monthly_quota, now)
                headers["x-ratelimit-limit-stacks-month"] = str(faults.monthly_quota)
                headers["x-ratelimit-remaining-stacks-month"] = str(quota_left)

            if self._required_key_digest is not None and (
                api_key is None or not hmac.compare_digest(_key_digest(api_key), self._required_key_digest)
            ):
                return self._reject(admission, 401, "Unauthorized", "Invalid or missing API key")

            if quota_left is not None and quota_left <= 0:
                self._exhausted_window_headers(headers, now)
                self._faults_injected["quota_429"] += 1
                return self._too_many(admission, seconds_to_next_month(now), now, "Monthly quota exceeded")

            state = self._window.hit(now)
            if state.limit is not None:  # Hiro's gateway headers (docs.hiro.so "Response headers"), when limited
                headers["ratelimit-limit"] = str(state.limit)
                headers["ratelimit-remaining"] = str(state.remaining)
                headers["ratelimit-reset"] = str(state.reset)
                headers["x-ratelimit-limit-stacks-minute"] = str(state.limit)
                headers["x-ratelimit-remaining-stacks-minute"] = str(state.remaining)
            if not state.allowed:
                self._faults_injected["rate_limit_429"] += 1
                return self._too_many(admission, state.retry_after, now, "Rate limit exceeded")

            if quota_left is not None:
                self._quota.consume()
                headers["x-ratelimit-remaining-stacks-month"] = str(quota_left - 1)

            if faults.burst_429_every > 0:
                self._burst_counter += 1
                if self._burst_left > 0:
                    self._burst_left -= 1
                    return self._burst(admission, now)
                if self._burst_counter % faults.burst_429_every == 0 and faults.burst_429_length > 0:
                    self._burst_left = faults.burst_429_length - 1
                    return self._burst(admission, now)
            return admission

    def _exhausted_window_headers(self, headers: dict[str, str], now: float) -> None:
        if self._window.rpm_limit is not None:
            limit = str(self._window.rpm_limit)
            headers["ratelimit-limit"] = headers["x-ratelimit-limit-stacks-minute"] = limit
        headers["ratelimit-remaining"] = headers["x-ratelimit-remaining-stacks-minute"] = "0"
        headers["ratelimit-reset"] = str(int(now) + 60)

    def _burst(self, admission: Admission, now: float) -> Admission:
        self._faults_injected["burst_429"] += 1
        admission.headers["ratelimit-remaining"] = "0"
        admission.headers["x-ratelimit-remaining-stacks-minute"] = "0"
        # A burst is a short spike, not a spent minute: its window reopens as soon as the hint says.
        admission.headers["ratelimit-reset"] = str(int(now) + BURST_RETRY_SECONDS)
        return self._too_many(admission, BURST_RETRY_SECONDS, now, "Rate limit exceeded")

    def _too_many(self, admission: Admission, seconds: int, now: float, message: str) -> Admission:
        value = retry_after_value(self._faults.retry_after_mode, seconds, now)
        if value is not None:
            admission.headers["retry-after"] = value
        admission.headers["ratelimit-remaining"] = "0"
        return self._reject(admission, 429, "Too Many Requests", message)

    @staticmethod
    def _reject(admission: Admission, status: int, error: str, message: str) -> Admission:
        admission.error_status = status
        admission.error_body = {"statusCode": status, "error": error, "message": message}
        return admission

    # --- per-request fault rolls -------------------------------------------------------------------

    def latency_seconds(self) -> float:
        with self._lock:
            faults = self._faults
            delay = faults.latency_ms
            if faults.latency_spike_rate and self._rng.random() < faults.latency_spike_rate:
                self._faults_injected["latency_spike"] += 1
                delay += faults.latency_spike_ms
            return delay / 1000

    def transport_fault(self) -> tuple[str, int] | None:
        """One of ("reset"|"truncate"|"error"|"malformed_json", status) or None, from one draw."""
        with self._lock:
            faults = self._faults
            roll = self._rng.random()
            for kind, rate in (
                ("reset", faults.reset_rate),
                ("truncate", faults.truncate_rate),
                ("error", faults.error_rate),
                ("malformed_json", faults.malformed_json_rate),
            ):
                if roll < rate:
                    self._faults_injected[kind] += 1
                    status = self._rng.choice(SERVER_ERROR_CODES) if kind == "error" else 200
                    return kind, status
                roll -= rate
            return None

    def is_gone(self, admission: Admission) -> bool:
        """Whether v1 answers 410 for this request (switched on, or the mid-run sunset has come)."""
        faults = self._faults
        after = faults.gone_after_requests
        return faults.gone or (after is not None and admission.sequence > after)

    def next_drift(self) -> int:
        """How much to add to `total` for this listing page (0 on the first, then 1, 2, ...)."""
        with self._lock:
            if not self._faults.total_drift:
                return 0
            drift = self._drift
            self._drift += 1
            if drift:
                self._faults_injected["total_drift"] += 1
            return drift

    # --- statistics ----------------------------------------------------------------------------------

    def record_status(self, status: int) -> None:
        with self._lock:
            self._by_status[status] += 1

    def record_fault(self, kind: str) -> None:
        with self._lock:
            self._faults_injected[kind] += 1

    def record_connection(self) -> None:
        with self._lock:
            self._connections += 1

    def record_admin(self) -> None:
        with self._lock:
            self._admin_requests += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self._requests,
                "admin_requests": self._admin_requests,
                "connections": self._connections,  # TCP connections accepted: shows keep-alive reuse
                "by_status": {str(code): n for code, n in sorted(self._by_status.items())},
                "sent_429": self._by_status.get(429, 0),
                "faults": dict(sorted(self._faults_injected.items())),
                "requests_with_api_key": self._with_key,
                "api_keys_seen": len(self._keys_seen),
            }


def _key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()
