"""The dashboard's view of a running `emu load`: the generator's progress, posted to the emu it
drives (`POST /_emu/load`), kept here and read by the dashboard (`GET /_emu/load`), which draws
it with Plotly's JavaScript from the `plotly` package (`GET /_emu/load/plotly.js`)."""

from __future__ import annotations

import collections
import functools
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

KEPT_RUNS = 4
KEPT_POINTS = 3600  # an hour at two a second, per run
FIELDS = ("elapsed", "rps", "p50_ms", "p99_ms", "errors", "inflight", "running")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class LoadFeed:
    def __init__(self) -> None:
        self.runs: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()

    def add(self, sample: dict[str, Any]) -> None:
        name = str(sample.get("run") or "load")
        run = self.runs.get(name)
        if run is None:
            run = {"run": name, "done": False, "points": collections.deque(maxlen=KEPT_POINTS)}
            self.runs[name] = run
            while len(self.runs) > KEPT_RUNS:
                self.runs.popitem(last=False)
        if sample.get("done"):
            run["done"] = True
            return
        run["points"].append({k: sample.get(k) for k in FIELDS})
        run["updated"] = time.time()

    def snapshot(self) -> dict[str, Any]:
        return {"runs": [{**r, "points": list(r["points"])} for r in self.runs.values()]}


@functools.cache
def _plotly_js() -> bytes | None:
    try:
        return resources.files("plotly").joinpath("package_data/plotly.min.js").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        return None


def routes(feed: LoadFeed, guard: Callable[[Handler], Handler]) -> list[web.RouteDef]:
    """The routes, each behind `guard` (loopback only)."""

    async def post(request: web.Request) -> web.StreamResponse:
        try:
            sample = await request.json()
        except ValueError:
            return web.json_response({"error": "the body must be JSON"}, status=400)
        if not isinstance(sample, dict):
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        feed.add(sample)
        return web.json_response({"ok": True})

    async def get(request: web.Request) -> web.StreamResponse:
        return web.json_response(feed.snapshot())

    async def plotly(request: web.Request) -> web.StreamResponse:
        body = _plotly_js()
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(body=body, content_type="text/javascript")

    return [
        web.post("/_emu/load", guard(post)),
        web.get("/_emu/load", guard(get)),
        web.get("/_emu/load/plotly.js", guard(plotly)),
    ]
