"""The client under test: a GET that tries again when the instance died under the request.

On the platform (and in emu) a container that goes away mid-request answers
`500 {"error": "Container suddenly disconnected, try again"}`; the next request starts a fresh
container. Anything else is the server's answer and is returned as it is."""

from __future__ import annotations

import requests

DISCONNECTED = "Container suddenly disconnected, try again"


def get_with_retry(
    url: str, *, attempts: int = 3, timeout: float = 30.0, **kwargs: object
) -> requests.Response:
    for attempt in range(1, attempts + 1):
        resp = requests.get(url, timeout=timeout, **kwargs)  # type: ignore[arg-type]
        died = resp.status_code == 500 and DISCONNECTED in resp.text
        if not died or attempt == attempts:
            return resp
    raise AssertionError("unreachable")
