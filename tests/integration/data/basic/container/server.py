import json
import os
import signal
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ENV = {k: v for k, v in os.environ.items() if k == "MESSAGE" or k.startswith(("CLOUDFLARE_", "X_"))}
print("env " + json.dumps(ENV, sort_keys=True), flush=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps(
            {"hostname": socket.gethostname(), "path": self.path, "env": ENV}
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    # PID 1 gets no default SIGTERM action: exit on it, as a well-behaved server does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    code = int(os.environ.get("X_EXIT_AT_START", "-1"))
    if code >= 0:
        sys.exit(code)
    ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
