"""Fault configuration for the simulator: what can go wrong, and how often.

Mutable and JSON round-trippable so tests can change it at runtime (`POST /_sim/faults`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

RETRY_AFTER_MODES = ("seconds", "http-date", "zero", "none")
CORRUPTIONS = ("missing_field", "wrong_type", "unknown_enum")
SERVER_ERROR_CODES = (500, 502, 503, 504, 522, 525)
_RATES = ("latency_spike_rate", "error_rate", "reset_rate", "truncate_rate", "malformed_json_rate")


@dataclass
class FaultConfig:
    latency_ms: float = 0  # added to every API request
    latency_spike_rate: float = 0
    latency_spike_ms: float = 0
    error_rate: float = 0  # random 500/502/503/504/522/525
    reset_rate: float = 0  # close the connection with an RST and no response
    truncate_rate: float = 0  # full Content-Length, then only part of the body
    burst_429_every: int = 0  # every Nth API request starts a burst of 429s ...
    burst_429_length: int = 3  # ... this many requests long
    retry_after_mode: str = "seconds"  # seconds | http-date | zero | none
    gone: bool = False  # /extended/v1/tx answers 410 (the v9 sunset switch)
    # The sunset arriving mid-run: v1 answers 410 from the Nth API request after this config was set.
    gone_after_requests: int | None = None
    no_by_block_time: bool = False  # a pre-v9 server: /extended/v2/blocks/by-block-time/{ts} is an unknown route
    monthly_quota: int | None = None  # API requests allowed this month
    fail_days: list[str] = field(default_factory=list)  # ISO dates whose listings always answer 500
    malformed_json_rate: float = 0  # a 200 whose body is not JSON
    corrupt: str | None = None  # missing_field | wrong_type | unknown_enum: one record of each page
    total_drift: bool = False  # `total` grows by one on each successive listing request
    short_page: bool = False  # pages return one row fewer than promised
    fault_seed: int = 0  # seeds the randomness of the rate-based faults

    def __post_init__(self) -> None:
        # Accept date objects too; the server compares ISO strings.
        self.fail_days = [d.isoformat() if isinstance(d, dt.date) else str(d) for d in self.fail_days]
        self.validate()

    def validate(self) -> None:
        for name in _RATES:
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.retry_after_mode not in RETRY_AFTER_MODES:
            raise ValueError(f"retry_after_mode must be one of {RETRY_AFTER_MODES}")
        if self.corrupt is not None and self.corrupt not in CORRUPTIONS:
            raise ValueError(f"corrupt must be null or one of {CORRUPTIONS}")
        if self.burst_429_every < 0 or self.burst_429_length < 0:
            raise ValueError("burst_429_every and burst_429_length must be >= 0")
        if self.monthly_quota is not None and self.monthly_quota < 0:
            raise ValueError("monthly_quota must be >= 0 or null")
        if self.gone_after_requests is not None and self.gone_after_requests < 0:
            raise ValueError("gone_after_requests must be >= 0 or null")
        if self.latency_ms < 0 or self.latency_spike_ms < 0:
            raise ValueError("latencies must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultConfig:
        """Build from JSON; missing fields take defaults, unknown ones are an error (catches typos)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return cls(**data)
