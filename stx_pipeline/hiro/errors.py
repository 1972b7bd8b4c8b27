"""Errors of the Hiro client. Each message names what failed and what to do; none carries the API key."""

from __future__ import annotations


class HiroApiError(Exception):
    """The API answered something the pipeline cannot use (after retries, where retrying makes sense)."""

    def __init__(self, message: str, *, status: int | None = None, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.endpoint = endpoint


class TransientHttpError(HiroApiError):
    """A failure worth retrying: 429, 5xx, connection errors, timeouts, truncated or unparsable bodies."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        endpoint: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, status=status, endpoint=endpoint)
        # The server's hint in seconds; None when it gave none (or said 0: "no hint", not "retry now").
        self.retry_after_s = retry_after_s


class RetriesExhaustedError(HiroApiError):
    """A transient failure that did not clear within the retry budget."""


class EndpointGoneError(HiroApiError):
    """HTTP 410: the API retired the endpoint."""


class QuotaExhaustedError(HiroApiError):
    """The monthly request quota of the key (or IP) is used up."""


class RecordError(HiroApiError):
    """A transaction record is missing a required field or has a wrong type."""


class IncompleteDayError(HiroApiError):
    """The pages of a day do not add up to the API's own `total` (short page, changing total, duplicates)."""


class FetchCancelledError(HiroApiError):
    """A request not sent because its day was given up: another page of it failed, or the run stopped."""
