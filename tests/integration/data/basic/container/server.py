import base64
import hashlib
import json
import os
import signal
import socket
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ENV = {k: v for k, v in os.environ.items() if k == "MESSAGE" or k.startswith(("CLOUDFLARE_", "X_"))}
print("env " + json.dumps(ENV, sort_keys=True), flush=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.headers.get("upgrade", "").lower() == "websocket":
            self.echo_websocket()
            return
        if self.path.startswith("/hang"):  # never answers (--request-timeout's test)
            time.sleep(3600)
            return
        body = json.dumps(
            {
                "hostname": socket.gethostname(),
                "path": self.path,
                "env": ENV,
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def echo_websocket(self) -> None:
        """A WebSocket that answers each text message with "<hostname>: <message>"."""
        key = self.headers["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
        self.send_response(101)
        self.send_header("upgrade", "websocket")
        self.send_header("connection", "Upgrade")
        accept = base64.b64encode(hashlib.sha1(key.encode()).digest()).decode()
        self.send_header("sec-websocket-accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True  # the socket is the WebSocket's now
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            if head[0] & 0x0F == 0x8:  # a close frame: answer it, as the protocol asks
                self.wfile.write(bytes([0x88, 0]))
                self.wfile.flush()
                return
            size = head[1] & 0x7F
            if size == 126:
                size = struct.unpack("!H", self.rfile.read(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4)
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(size)))
            reply = f"{socket.gethostname()}: {data.decode()}".encode()
            self.wfile.write(bytes([0x81, len(reply)]) + reply)  # short texts only
            self.wfile.flush()

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    # PID 1 gets no default SIGTERM action: exit on it, as a well-behaved server does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    code = int(os.environ.get("X_EXIT_AT_START", "-1"))
    if code >= 0:
        sys.exit(code)
    ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
