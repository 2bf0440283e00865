"""Answers GET with its hostname; a POST's body (an id) is remembered and echoed, GET .../seen
lists the ids this instance saw, GET .../status/204 answers that status, and GET .../connection
says how many requests its connection has carried. PROTOCOL=HTTP/1.0 closes each connection (as
http.server does by default, with no Connection header); HTTP/1.1 keeps it alive. CLOSE_DELAY
holds each connection open that long after its answer: the late close of a container
descheduled between its write and its close."""

import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SEEN: list[str] = []
LOCK = threading.Lock()
CLOSE_DELAY = float(os.environ.get("CLOSE_DELAY", "0"))


class Handler(BaseHTTPRequestHandler):
    protocol_version = os.environ.get("PROTOCOL", "HTTP/1.0")

    served = 0  # requests on this handler's connection

    def do_GET(self) -> None:
        if "/status/" in self.path:  # /status/204, /status/304: a status and no body
            self.send_response(int(self.path.rsplit("/", 1)[1]))
            self.end_headers()
            return
        if self.path.endswith("/connection"):  # the how-manieth request on its connection
            self.answer(str(self.served + 1).encode())
            return
        if self.path.split("?")[0].endswith("/seen") or "/seen/" in self.path:
            with LOCK:
                self.answer(json.dumps(SEEN).encode())
            return
        self.answer(socket.gethostname().encode())

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
        with LOCK:
            SEEN.append(body)
        self.answer(body.encode())

    def answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.served += 1

    def log_message(self, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    request_queue_size = 128  # 50 clients' connections at once, not http.server's 5

    def shutdown_request(self, request: Any) -> None:
        if CLOSE_DELAY > 0:
            time.sleep(CLOSE_DELAY)  # the answer is out; the FIN comes late
        super().shutdown_request(request)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    Server(("0.0.0.0", 8080), Handler).serve_forever()
