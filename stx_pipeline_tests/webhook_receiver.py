"""A chat webhook stand-in on 127.0.0.1: records every POST (path, content type, body) and answers 200 (or a set
status), so tests read exactly what an operator's chat tool would have received."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookReceiver:
    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.posts: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                receiver.posts.append({"path": self.path, "type": self.headers.get("Content-Type"), "body": body})
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/B000/planted-webhook-token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def texts(self) -> list[str]:
        """Each message's text: the `text` of a JSON body (which must equal its `content`), or a plain body."""
        out = []
        for post in self.posts:
            if post["type"] and post["type"].startswith("application/json"):
                body = json.loads(post["body"])
                assert body["text"] == body["content"], body
                out.append(body["text"])
            else:
                out.append(post["body"])
        return out

    def wait_for(self, needle: str, timeout_s: float = 120.0) -> list[str]:
        """The messages containing `needle`, once there is at least one."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = [t for t in self.texts() if needle in t]
            if found:
                return found
            time.sleep(0.5)
        raise AssertionError(f"no webhook message containing {needle!r} within {timeout_s:.0f} s; got {self.texts()}")
