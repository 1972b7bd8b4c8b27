"""Hiro Stacks Blockchain API client: HTTP, paging, retries, pacing, record -> row. No Dagster here."""

from stx_pipeline.hiro.client import HiroClient
from stx_pipeline.hiro.errors import (
    EndpointGoneError,
    HiroApiError,
    IncompleteDayError,
    QuotaExhaustedError,
    RecordError,
    RetriesExhaustedError,
)
from stx_pipeline.hiro.records import records_to_table
from stx_pipeline.hiro.strategy import STRATEGIES, DayFetcher
from stx_pipeline.hiro.transactions import DayFetch, fetch_day

__all__ = [
    "STRATEGIES",
    "DayFetch",
    "DayFetcher",
    "EndpointGoneError",
    "HiroApiError",
    "HiroClient",
    "IncompleteDayError",
    "QuotaExhaustedError",
    "RecordError",
    "RetriesExhaustedError",
    "fetch_day",
    "records_to_table",
]
