"""A real HTTP server that answers like Hiro's Stacks API, with injectable faults.

Stdlib only (`http.server`), HTTP/1.1 keep-alive with exact Content-Length so `requests.Session`
connection pooling behaves as against the real API.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from stx_pipeline.simulator.blocks import BlockIndex, DatabaseError, NotFound
from stx_pipeline.simulator.chain import (
    BLOCKS_PER_TENURE,
    ChainConfig,
    SyntheticChain,
    Tx,
    day_bounds,
    utc_day,
)
from stx_pipeline.simulator.control import Admission, Controller
from stx_pipeline.simulator.faults import FaultConfig
from stx_pipeline.simulator.listing import BadRequest, Lister, ListQuery, parse_list_query

SERVER_VERSION = "stacks-blockchain-api v9.0.2 (simulator)"
# The real texts: /extended/v1/tx is `deprecated: true` with no message of its own (routes/v1/tx.ts:70), so the
# plugin's default applies (src/api/init.ts:188-191); Warning and 410 are built in src/api/deprecation-plugin.ts:24-45.
DEPRECATED_MESSAGE = "See https://docs.hiro.so/stacks/api for more information"
DEPRECATION_WARNING = f'299 - "Deprecated: {DEPRECATED_MESSAGE}"'
GONE_MESSAGE = f"This endpoint has been disabled. {DEPRECATED_MESSAGE}"
_DAY_PATH = re.compile(r"^/_sim/day/(\d{4}-\d{2}-\d{2})$")
_BURN_BLOCK = re.compile(r"^/extended/v2/burn-blocks/([^/]+)$")
_BURN_BLOCK_BLOCKS = re.compile(r"^/extended/v2/burn-blocks/([^/]+)/blocks$")
_BLOCK = re.compile(r"^/extended/v2/blocks/(\d+)$")
_BY_BLOCK_TIME = re.compile(r"^/extended/v2/blocks/by-block-time/(\d+)$")
_IDLE_TIMEOUT_S = 30  # idle keep-alive connections are dropped, as a CDN would


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for clients' idle pooled connections
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sim: SimulatorServer) -> None:
        self.sim = sim
        self._open: set[socket.socket] = set()
        self._resets: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._open.add(request)
        self.sim.controller.record_connection()
        super().process_request(request, client_address)

    def mark_reset(self, request: socket.socket) -> None:
        with self._conn_lock:
            self._resets.add(request)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._open.discard(request)
            reset = request in self._resets
            self._resets.discard(request)
        if reset:
            # SO_LINGER(on, 0) + close sends an RST instead of a FIN: the client sees
            # "connection reset by peer", like a load balancer dropping the connection.
            request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            request.close()
            return
        super().shutdown_request(request)

    def close_all_connections(self) -> None:
        with self._conn_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):  # already closed by the client
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = _IDLE_TIMEOUT_S
    server: _HTTPServer
    _is_api = True

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; with Nagle on, the body waits for the
        # client's delayed ACK (~40 ms per request on loopback).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def version_string(self) -> str:
        return "stx-pipeline-simulator"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: never print requests (their headers may carry an API key)."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        sim = self.server.sim
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        body = self._read_body()
        self._is_api = not path.startswith("/_sim/")
        try:
            if not self._is_api:
                sim.controller.record_admin()
                self._admin(method, path, body)
            else:
                self._api(method, path, parse_qs(url.query, keep_blank_values=True))
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away; nothing left to answer

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    # --- API -----------------------------------------------------------------------------------

    def _api(self, method: str, path: str, params: dict[str, list[str]]) -> None:
        sim = self.server.sim
        admission = sim.controller.admit(self.headers.get("x-api-key"))
        if admission.error_status is not None:
            self._send_json(admission.error_status, admission.error_body, admission.headers)
            return
        headers = admission.headers
        if method != "GET":
            self._send_error(405, "Method Not Allowed", f"Route {method}:{path} not found", headers)
        elif path == "/extended/v1/tx":
            self._list(params, admission)
        elif path == "/extended/v3/transactions":
            self._list_v3(params, admission)
        elif path.startswith("/extended/v2/"):
            self._blocks_v2(path, params, admission)
        elif path in ("/extended", "/extended/v1/status"):
            self._answer(200, sim.status(), headers)
        else:
            self._send_error(404, "Not Found", f"Route GET:{path} not found", headers)

    def _list(self, params: dict[str, list[str]], admission: Admission) -> None:
        sim = self.server.sim
        headers = admission.headers
        faults = sim.controller.faults
        # The onSend hook adds the Warning to every answer of the route, the 410 included (deprecation-plugin.ts:36-47).
        headers["Warning"] = DEPRECATION_WARNING
        if sim.controller.is_gone(admission):
            sim.controller.record_fault("gone")
            # Sent from an onRequest hook: {error, message}, no statusCode (deprecation-plugin.ts:28-31).
            self._send_json(410, {"error": "Gone", "message": GONE_MESSAGE}, headers)
            return
        try:
            query = parse_list_query(params)
            if faults.fail_days and _overlaps(sim.lister.days(query), faults.fail_days):
                sim.controller.record_fault("fail_day")
                self._send_error(500, "Internal Server Error", "simulated failure for this day", headers)
                return
            total, page = sim.lister.page(query)
        except BadRequest as exc:
            self._send_error(400, "Bad Request", str(exc), headers)
            return
        page = self._apply_data_faults(faults, query, page)
        total += sim.controller.next_drift()
        body = {"limit": query.limit, "offset": query.offset, "total": total, "results": page}
        self._answer(200, body, headers)

    def _list_v3(self, params: dict[str, list[str]], admission: Admission) -> None:
        """`/extended/v3/transactions`: the cursor listing that replaces v1 (no deprecation header)."""
        sim = self.server.sim
        headers = admission.headers
        faults = sim.controller.faults
        try:
            page = sim.blocks.v3_page(params)
        except BadRequest as exc:
            self._send_error(400, "Bad Request", str(exc), headers)
            return
        except DatabaseError as exc:
            # A postgres error reaches fastify's default error handler (src/api/init.ts setErrorHandler): 500 with
            # the error's message and SQLSTATE code.
            body = {"statusCode": 500, "code": exc.code, "error": "Internal Server Error", "message": str(exc)}
            self._send_json(500, body, headers)
            return
        rows = page.rows
        if faults.fail_days and _overlaps([utc_day(r["bitcoin_block"]["time"]) for r in rows], faults.fail_days):
            sim.controller.record_fault("fail_day")
            self._send_error(500, "Internal Server Error", "simulated failure for this day", headers)
            return
        if faults.short_page and rows:
            sim.controller.record_fault("short_page")
            rows = rows[:-1]
        if faults.corrupt and rows:
            sim.controller.record_fault("corrupt")
            rows = list(rows)
            victim = len(rows) // 2
            rows[victim] = _corrupt_summary(rows[victim], faults.corrupt)
        body = {
            "limit": page.limit,
            "total": page.total,
            "cursor": {"next": page.next, "previous": page.previous, "current": page.current},
            "results": rows,
        }
        self._answer(200, body, headers)

    def _blocks_v2(self, path: str, params: dict[str, list[str]], admission: Admission) -> None:
        """The v2 block and burn-block endpoints used to find a day's height range."""
        sim = self.server.sim
        blocks = sim.blocks
        headers = admission.headers
        try:
            if path == "/extended/v2/burn-blocks":
                body = blocks.burn_blocks(params)
            elif match := _BURN_BLOCK_BLOCKS.match(path):
                body = blocks.burn_block_blocks(blocks.burn_height(match.group(1)), params)
            elif match := _BURN_BLOCK.match(path):
                body = blocks.burn_block(blocks.burn_height(match.group(1)))
            elif path == "/extended/v2/blocks":
                body = blocks.blocks(params)
            elif (match := _BY_BLOCK_TIME.match(path)) and not sim.controller.faults.no_by_block_time:
                body = blocks.block_by_time(int(match.group(1)))
            elif match := _BLOCK.match(path):
                body = blocks.block(int(match.group(1)))
            else:
                self._send_error(404, "Not Found", f"Route GET:{path} not found", headers)
                return
        except BadRequest as exc:
            self._send_error(400, "Bad Request", str(exc), headers)
            return
        except NotFound as exc:
            self._send_error(404, "Not Found", str(exc), headers)
            return
        self._answer(200, body, headers)

    def _apply_data_faults(self, faults: FaultConfig, query: ListQuery, page: list[Tx]) -> list[Tx]:
        controller = self.server.sim.controller
        if faults.short_page and page:
            controller.record_fault("short_page")
            page = page[:-1]
        if faults.corrupt and page:
            controller.record_fault("corrupt")
            page = list(page)
            victim = len(page) // 2  # deterministic: same page, same record
            page[victim] = _corrupt(page[victim], faults.corrupt)
        return page

    def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        """Send a normal answer, unless latency and transport faults say otherwise."""
        controller = self.server.sim.controller
        delay = controller.latency_seconds()
        if delay:
            time.sleep(delay)
        fault = controller.transport_fault()
        if fault is None:
            self._send_json(status, body, headers)
            return
        kind, code = fault
        if kind == "reset":
            self.server.mark_reset(self.connection)
            self.close_connection = True
        elif kind == "truncate":
            payload = _encode(body)
            self._send_raw(status, payload, headers, cut=max(1, len(payload) // 2))
        elif kind == "error":
            self._send_error(code, _reason(code), "simulated upstream failure", headers)
        else:
            self._send_raw(200, b'{"limit": 50, "offset": 0, "total": <html>oops</html>', headers)

    # --- admin (never rate limited or faulted) ---------------------------------------------------

    def _admin(self, method: str, path: str, body: bytes) -> None:
        sim = self.server.sim
        if path == "/_sim/faults" and method == "GET":
            self._send_json(200, sim.faults.to_dict(), {})
        elif path == "/_sim/faults" and method == "POST":
            try:
                sim.faults = FaultConfig.from_dict(json.loads(body or b"{}"))
            except (ValueError, TypeError) as exc:
                self._send_error(400, "Bad Request", f"invalid fault config: {exc}", {})
                return
            self._send_json(200, sim.faults.to_dict(), {})
        elif path == "/_sim/stats" and method == "GET":
            self._send_json(200, sim.stats(), {})
        elif (match := _DAY_PATH.match(path)) and method == "GET":
            try:
                day = dt.date.fromisoformat(match.group(1))
            except ValueError:
                self._send_error(400, "Bad Request", "invalid date", {})
                return
            start, end = day_bounds(day)
            self._send_json(
                200,
                {
                    "day": day.isoformat(),
                    "start_time": start,
                    "end_time": end,
                    "total": sim.chain.day_total(day),
                    "tx_ids_sha256": sim.chain.day_digest(day),
                },
                {},
            )
        else:
            self._send_error(404, "Not Found", f"Route {method}:{path} not found", {})

    # --- wire ------------------------------------------------------------------------------------

    def _send_error(self, status: int, error: str, message: str, headers: dict[str, str]) -> None:
        self._send_json(status, {"statusCode": status, "error": error, "message": message}, headers)

    def _send_json(self, status: int, body: Any, headers: dict[str, str]) -> None:
        self._send_raw(status, _encode(body), headers)

    def _send_raw(self, status: int, payload: bytes, headers: dict[str, str], cut: int | None = None) -> None:
        if self._is_api:  # admin traffic stays out of the API statistics
            self.server.sim.controller.record_status(status)
        self.send_response(status, _reason(status))
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if cut is None:
            self.wfile.write(payload)
        else:
            # Promised the full length, deliver part of it, hang up: an IncompleteRead for the client.
            self.wfile.write(payload[:cut])
            self.close_connection = True
        self.wfile.flush()


def _encode(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _reason(status: int) -> str:
    custom = {522: "Connection Timed Out", 525: "SSL Handshake Failed"}
    try:
        return custom.get(status) or HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _overlaps(days: list[dt.date], fail_days: list[str]) -> bool:
    return bool({d.isoformat() for d in days} & set(fail_days))


def _corrupt(tx: Tx, kind: str) -> Tx:
    bad = dict(tx)
    if kind == "missing_field":
        bad.pop("sender_address", None)
    elif kind == "wrong_type":
        bad["block_height"] = str(bad["block_height"])
    else:  # unknown_enum: valid input the pipeline must store as-is
        bad["tx_status"] = "future_status"
        bad["tx_type"] = "future_type"
    return bad


def _corrupt_summary(row: dict[str, Any], kind: str) -> dict[str, Any]:
    bad = dict(row)
    if kind == "missing_field":
        bad["sender"] = {k: v for k, v in row["sender"].items() if k != "address"}
    elif kind == "wrong_type":
        bad["block"] = {**row["block"], "height": str(row["block"]["height"])}
    else:  # unknown_enum: valid input the pipeline must store as-is
        bad["status"] = "future_status"
        bad["type"] = "future_type"
    return bad


class SimulatorServer:
    """Hiro API simulator on a background thread.

    >>> with SimulatorServer(SyntheticChain(ChainConfig())) as sim:
    ...     requests.get(f"{sim.url}/extended/v1/tx", params={"limit": 1})
    """

    def __init__(
        self,
        chain: SyntheticChain,
        faults: FaultConfig | None = None,
        rpm_limit: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        required_api_key: str | None = None,
        clock: Callable[[], float] = time.time,
        hide_future: bool = True,
    ) -> None:
        self.chain = chain
        self.host = host
        self._requested_port = port
        self.clock = clock
        self.controller = Controller(faults, rpm_limit, clock, required_api_key)
        self.lister = Lister(chain, clock, hide_future=hide_future)
        self.blocks = BlockIndex(chain, clock)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def faults(self) -> FaultConfig:
        return self.controller.faults

    @faults.setter
    def faults(self, value: FaultConfig) -> None:
        self.controller.faults = value

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("simulator not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> SimulatorServer:
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"hiro-simulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_all_connections()  # pooled keep-alive clients must not reach a stopped server
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        return self.controller.stats()

    def status(self) -> dict[str, Any]:
        """`GET /extended`: server info and the chain tip at the server clock."""
        tenure = self.blocks.tip_tenure()
        height = max(0, (tenure + 1) * BLOCKS_PER_TENURE)
        return {
            "server_version": SERVER_VERSION,
            "status": "ready",
            "chain_tip": {
                "block_height": height,
                "block_hash": self.chain.block_hash(height),
                "burn_block_height": self.chain.burn_height(max(tenure, 0)),
            },
        }


def serve(
    host: str = "127.0.0.1",
    port: int = 3999,
    chain_config: ChainConfig | None = None,
    faults: FaultConfig | None = None,
    rpm_limit: int | None = None,
    required_api_key: str | None = None,
) -> None:
    """Run the simulator in the foreground until interrupted (the `stx-pipeline simulate` command).

    host/port: where to listen (port 0 picks a free port); chain_config: the synthetic chain
    (default ChainConfig()); faults: initial FaultConfig (change it later with POST /_sim/faults);
    rpm_limit: requests per minute before 429 (None = unlimited); required_api_key: if set, API
    requests without this x-api-key get 401.
    """
    chain = SyntheticChain(chain_config or ChainConfig())
    sim = SimulatorServer(chain, faults, rpm_limit, host=host, port=port, required_api_key=required_api_key)
    sim.start()
    print(f"Hiro API simulator listening on {sim.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
