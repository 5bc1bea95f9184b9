"""A stand-in for Postmark's email API on localhost, for tests: `POST /email` answers as Postmark does (a MessageID
per message) and keeps what it took. Tests point anymail's Postmark backend at it with ANYMAIL's
POSTMARK_API_URL; nothing here leaves the machine."""

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakePostmark:
    def __init__(self):
        self.sent: list[dict] = []  # the JSON bodies posted to /email, each with its "MessageID" added
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def start(self) -> "FakePostmark":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if self.path.rstrip("/") != "/email" or not self.headers.get("X-Postmark-Server-Token"):
                    return self._answer(422, {"ErrorCode": 10, "Message": "Bad or missing Server API token."})
                message_id = str(uuid.uuid4())
                with fake.lock:
                    fake.sent.append({**body, "MessageID": message_id})
                to = body.get("To", "")
                return self._answer(
                    200,
                    {"To": to, "SubmittedAt": "2026-12-06T10:00:00Z", "MessageID": message_id, "ErrorCode": 0,
                     "Message": "OK"},
                )  # fmt: skip

            def _answer(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
