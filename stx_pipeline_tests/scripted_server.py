"""A real HTTP server on 127.0.0.1 that answers from a script, for exact client behaviour tests.

Each queued answer is used once, in order; when the queue is empty the default answer repeats.
Every request (GET or POST; path, query, headers) is recorded.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Answer:
    status: int = 200
    body: Any = None  # dict/list -> JSON; bytes -> raw
    headers: dict[str, str] = field(default_factory=dict)
    truncate_to: int | None = None  # send only this many body bytes, then close
    reset: bool = False  # close the connection without answering

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body if self.body is not None else {}).encode()


@dataclass
class Seen:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class ScriptedServer:
    def __init__(self) -> None:
        self.queue: list[Answer] = []
        self.default = Answer(404, {"statusCode": 404, "error": "Not Found", "message": "no script"})
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                # GraphQL clients post; the body is read (keep-alive) and answered from the same script.
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self.do_GET()

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                with server._lock:
                    server.seen.append(Seen(parts.path, parse_qs(parts.query), dict(self.headers.items())))
                    answer = server.queue.pop(0) if server.queue else server.default
                if answer.reset:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.close()
                    self.close_connection = True
                    return
                body = answer.payload()
                self.send_response(answer.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if answer.truncate_to is not None:
                    self.wfile.write(body[: answer.truncate_to])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def push(self, *answers: Answer) -> None:
        with self._lock:
            self.queue.extend(answers)
