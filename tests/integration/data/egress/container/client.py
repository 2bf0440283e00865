"""On 8080: GET /out?client=py|raw|node&url=URL makes that request from inside the container and
answers {"status": ..., "body": ...} or {"error": ...}."""

import http.client
import json
import os
import socket
import ssl
import subprocess
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CA = "/etc/cloudflare/certs/cloudflare-containers-ca.crt"
NODE = """
const say = (o) => console.log(JSON.stringify(o));
fetch(process.argv[1])
  .then(async (r) => say({status: r.status, body: await r.text()}))
  .catch((e) => say({error: String(e.cause ?? e)}));
"""


def with_python(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=CA)
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, parts.port or 443, timeout=10, context=context
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=10)
    conn.request("GET", parts.path or "/")
    response = conn.getresponse()
    return {"status": response.status, "body": response.read().decode()}


def with_socket(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=5) as sock:
        request = f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        sock.sendall(f"{request}Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return {"status": int(head.split()[1]), "body": body.decode(errors="replace")}


def with_node(url: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NODE_EXTRA_CA_CERTS"] = CA
    done = subprocess.run(
        ["node", "-e", NODE, url], capture_output=True, text=True, timeout=20, env=env
    )
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


CLIENTS = {"py": with_python, "raw": with_socket, "node": with_node}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as workerd's connections to the container expect
    disable_nagle_algorithm = True  # headers and body go in two writes

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        if not urlsplit(self.path).path.endswith("/out"):
            result: dict[str, Any] = {"ok": True}
        else:
            try:
                result = CLIENTS[query["client"][0]](query["url"][0])
            except Exception as exc:  # what the client met: refused, unreachable, unresolved
                result = {"error": f"{type(exc).__name__}: {exc}"}
        body = json.dumps(result).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
