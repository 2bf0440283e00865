"""A container for emu's smallest example: answers every GET with a greeting and its env.

It handles SIGTERM (an idle instance gets it after sleepAfter): without a handler, Python as
PID 1 ignores SIGTERM and the instance lingers until emu's --stop-grace runs out.
"""

import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(
            {
                "greeting": f"{os.environ.get('GREETING', 'hello from')} {os.uname().nodename}",
                "path": self.path,
                "instance": os.environ.get("CLOUDFLARE_DURABLE_OBJECT_ID", "")[:12],
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        print(f"{self.command} {self.path}", flush=True)


def main() -> None:
    server = ThreadingHTTPServer(("0.0.0.0", 8080), Handler)

    def on_sigterm(signo: int, frame: object) -> None:
        print("SIGTERM: shutting down", flush=True)
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    print("listening on :8080", flush=True)
    server.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
