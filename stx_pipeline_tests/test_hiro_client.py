"""The HTTP client against a scripted server on 127.0.0.1: retries, pacing, errors, secrets."""

from __future__ import annotations

import email.utils
import logging
import time

import pytest

from stx_pipeline.hiro import (
    EndpointGoneError,
    HiroApiError,
    HiroClient,
    QuotaExhaustedError,
    RetriesExhaustedError,
)
from stx_pipeline.hiro.client import parse_retry_after
from stx_pipeline_tests.scripted_server import Answer, ScriptedServer

OK = Answer(200, {"ok": True})
SECRET = "sk-planted-secret-0123456789"


@pytest.fixture
def server():
    srv = ScriptedServer().start()
    yield srv
    srv.stop()


def make_client(server: ScriptedServer, **kwargs) -> HiroClient:
    kwargs.setdefault("requests_per_minute", 0)  # no pacing unless a test asks
    kwargs.setdefault("max_backoff_s", 0.5)
    return HiroClient(server.url, **kwargs)


def test_parse_retry_after_forms():
    now = time.time()
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0") is None  # 0 is "no hint", never "retry now"
    assert parse_retry_after("-5") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    date = email.utils.formatdate(now + 20, usegmt=True)
    assert 18 <= parse_retry_after(date, now=now) <= 21
    assert parse_retry_after(email.utils.formatdate(now - 60, usegmt=True), now=now) is None
    assert parse_retry_after("99999") == 300.0  # capped


def test_429_retry_after_seconds_is_honoured(server):
    server.push(Answer(429, {"error": "Too Many Requests"}, {"retry-after": "1", "ratelimit-remaining": "0"}), OK)
    client = make_client(server)
    started = time.monotonic()
    assert client.get_json("/extended/v1/tx") == {"ok": True}
    assert time.monotonic() - started >= 0.95
    assert client.stats.snapshot() == {
        "requests": 2,
        "retries": 1,
        "rate_limited": 1,
        "deprecation_notices": 0,
    }


def test_429_retry_after_http_date_is_honoured(server):
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    server.push(Answer(429, {}, {"retry-after": when}), OK)
    client = make_client(server)
    started = time.monotonic()
    client.get_json("/x")
    # HTTP-dates have one-second resolution: at least ~1 s of the 2 s hint must have been waited.
    assert time.monotonic() - started >= 1.0
    assert client.stats.rate_limited == 1


def test_429_retry_after_zero_backs_off_instead_of_hot_looping(server):
    server.push(Answer(429, {}, {"retry-after": "0"}), Answer(429, {}, {"retry-after": "0"}), OK)
    client = make_client(server)
    started = time.monotonic()
    client.get_json("/x")
    assert time.monotonic() - started >= 0.4  # two backoffs of at least 0.2 s each
    assert client.stats.retries == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504, 522, 525])
def test_server_errors_are_retried(server, status):
    server.push(Answer(status, {"error": "oops"}), OK)
    client = make_client(server)
    assert client.get_json("/x") == {"ok": True}
    assert client.stats.retries == 1


def test_connection_reset_truncated_and_unparsable_bodies_are_retried(server):
    big = {"results": ["x" * 200] * 20}
    server.push(
        Answer(reset=True),
        Answer(200, big, truncate_to=100),
        Answer(200, b"{not json"),
        Answer(200, big),
    )
    client = make_client(server)
    assert client.get_json("/x") == big
    assert client.stats.retries == 3


@pytest.mark.parametrize(
    ("status", "needle", "error_type"),
    [
        (400, "malformed", HiroApiError),
        (401, "HIRO_API_KEY", HiroApiError),
        (403, "HIRO_API_KEY", HiroApiError),
        (404, "STX_API_URL", HiroApiError),
        (410, "retired", EndpointGoneError),
    ],
)
def test_client_errors_fail_at_once_with_status_endpoint_and_advice(server, status, needle, error_type):
    server.default = Answer(status, {"statusCode": status, "error": "E", "message": "server says no"})
    client = make_client(server, api_key=SECRET)
    with pytest.raises(error_type) as info:
        client.get_json("/extended/v1/tx", {"limit": 50, "offset": 0})
    message = str(info.value)
    assert f"HTTP {status}" in message
    assert "/extended/v1/tx?limit=50&offset=0" in message
    assert "server says no" in message
    assert needle in message
    assert SECRET not in message
    assert info.value.status == status
    assert len(server.seen) == 1  # never retried


def test_api_key_travels_only_in_the_header(server, caplog):
    server.push(Answer(503, {}), OK)
    with caplog.at_level(logging.DEBUG):
        client = make_client(server, api_key=SECRET)
        client.get_json("/x", {"a": 1})
    assert all(seen.headers.get("x-api-key") == SECRET for seen in server.seen)
    assert all(SECRET not in str(seen.query) for seen in server.seen)
    assert SECRET not in caplog.text


def test_gives_up_after_the_retry_budget(server):
    server.default = Answer(503, {})
    client = make_client(server, max_attempts=3)
    with pytest.raises(RetriesExhaustedError) as info:
        client.get_json("/extended/v1/tx", {"offset": 100})
    assert len(server.seen) == 3
    assert "HTTP 503" in str(info.value)
    assert "/extended/v1/tx?offset=100" in str(info.value)
    assert "after 3 attempts" in str(info.value)


def test_monthly_quota_exhausted_stops_at_once(server):
    server.default = Answer(429, {}, {"retry-after": "1", "x-ratelimit-remaining-stacks-month": "0"})
    client = make_client(server)
    with pytest.raises(QuotaExhaustedError, match="monthly request quota"):
        client.get_json("/x")
    assert len(server.seen) == 1


def test_last_request_of_the_quota_is_used_then_the_next_is_refused_locally(server):
    server.push(Answer(200, {"ok": True}, {"x-ratelimit-remaining-stacks-month": "0"}))
    client = make_client(server)
    assert client.get_json("/x") == {"ok": True}
    with pytest.raises(QuotaExhaustedError):
        client.get_json("/x")
    assert len(server.seen) == 1


def test_deprecation_warning_is_logged_once(server):
    warning = {"warning": '299 - "Deprecated: See https://docs.hiro.so for an updated endpoint."'}
    server.default = Answer(200, {"ok": True}, warning)
    messages: list[str] = []

    class Recorder:
        def info(self, msg: str) -> None:
            messages.append(msg)

        def warning(self, msg: str) -> None:
            messages.append(msg)

    client = make_client(server, logger=Recorder())
    for _ in range(3):
        client.get_json("/extended/v1/tx")
    assert sum("Deprecat" in m for m in messages) == 1
    assert client.stats.deprecation_notices == 1


def test_pacing_spreads_requests_under_the_budget(server):
    server.default = OK
    client = make_client(server, requests_per_minute=600)  # one request per 0.1 s
    started = time.monotonic()
    for _ in range(11):
        client.get_json("/x")
    assert time.monotonic() - started >= 0.95  # 10 intervals
    assert client.stats.rate_limited == 0
