"""A container for the retry example: `GET /slow?s=N` answers after N seconds (long enough to
kill the instance in the middle), any other GET at once. SIGTERM ends it cleanly."""

import json
import os
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/slow":
            time.sleep(float(urllib.parse.parse_qs(url.query).get("s", ["2"])[0]))
        body = json.dumps({"path": self.path, "host": os.uname().nodename}).encode()
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
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    print("listening on :8080", flush=True)
    server.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
