"""Where workerd's time goes in worker mode: a V8 CPU profile under wrk load, split by source.

    python -m bench.profile_worker [--duration 10] [--connections 16] [--interval-us 200]

The project of bench/worker.py (Worker -> Durable Object -> @cloudflare/containers -> emu's shim
-> nginx:1.22), `emu up --inspector-port N`; wrk runs on `/` while a profile is taken over the
inspector's DevTools protocol (`Profiler.start` / `Profiler.stop`). Each sample's function is
put in a group by its source: the bundle's esbuild module comments (`// node_modules/...`) name
the file of every line, so the user's code, the library (@cloudflare/containers), emu's shim
(shim.js) and emu's generated entry come apart; functions without a script are V8's built-ins
(`fetch`, `pipeTo`, ...), "(garbage collector)", "(program)" (V8 busy outside JavaScript) and
"(idle)" (the isolate not entered: workerd's native code, its I/O, or no work).

Each group's time per request is its samples x the sampling interval / the requests wrk got
while the profile ran; workerd's CPU per request from /proc over the same window is printed
beside it (the thread is close to a whole core under this load, so the two are comparable).
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import functools
import json
import re
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import click

from bench.harness import (
    BenchError,
    answers_200,
    busy_cpu,
    docker_client,
    machine,
    main_body,
    out_option,
    require_image,
    require_wrk,
    run_wrk,
    runtime_pids,
    temp_dir,
)
from bench.worker import COLD_TIMEOUT, NGINX, cpu_s, write_project
from emulator.testing import EmuProcess, wait_for

MODULE_COMMENT = re.compile(r"^// (\S+)$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def group_of_file(path: str) -> str:
    if "@cloudflare/containers" in path:
        return "library (@cloudflare/containers)"
    if path.endswith("shim.js"):
        return "emu's shim (shim.js)"
    if "entry.mjs" in path or "emu-worker" in path:
        return "emu's generated entry"
    if path.startswith("src/") or "/src/" in path:
        return "user code (src/index.ts)"
    return f"other module ({path})"


class SourceMap:
    """A script's lines to the module they came from, by esbuild's `// path` comments."""

    def __init__(self, source: str, url: str) -> None:
        self.url = url
        self.source = source
        self.starts: list[int] = []
        self.files: list[str] = []
        for number, line in enumerate(source.splitlines()):
            found = MODULE_COMMENT.match(line)
            if found and ("/" in found[1] or "." in found[1]):
                self.starts.append(number)
                self.files.append(found[1])

    def file_at(self, line: int) -> tuple[str, int]:
        """The module of a script line (0-based), and the line's number in it (1-based)."""
        at = bisect.bisect_right(self.starts, line) - 1
        if at < 0:
            return Path(self.url).name or self.url, line + 1
        return self.files[at], line - self.starts[at]


def group_of(
    frame: dict[str, Any], maps: dict[str, SourceMap], parent_js: bool = True
) -> tuple[str, str]:
    """(group, function label) of a profile node's call frame."""
    name = frame.get("functionName") or "(anonymous)"
    url = frame.get("url") or ""
    script = str(frame.get("scriptId", "0"))
    if name in ("(idle)", "(program)", "(garbage collector)", "(root)"):
        return name, name
    if script == "0" and not url and not frame.get("functionName") and not parent_js:
        # V8 runs it for workerd's C++ with no JavaScript frame around it: promise reactions,
        # stream and socket callbacks, the API's own work.
        return "workerd's native callbacks (no JS frame)", name
    if script in maps:
        path, line = maps[script].file_at(int(frame.get("lineNumber", 0)))
        return group_of_file(path), f"{name} ({Path(path).name}:{line})"
    if url:
        return group_of_file(url), f"{name} ({Path(url).name}:{frame.get('lineNumber', 0) + 1})"
    return "V8 built-ins and workerd's APIs", name


class Inspector:
    """One DevTools websocket session."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self.next_id += 1
        mine = self.next_id
        await self.ws.send_str(json.dumps({"id": mine, "method": method, "params": params or {}}))
        while True:
            msg = await asyncio.wait_for(self.ws.receive(), 60)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise BenchError(f"the inspector closed during {method}")
            data = json.loads(msg.data)
            if data.get("id") == mine:
                if "error" in data:
                    raise BenchError(f"inspector {method}: {data['error']}")
                return data.get("result", {})


async def take_profile(
    inspector_url: str, worker_url: str, wrk: str, args: dict[str, Any], pids: list[int]
) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        base = inspector_url.replace("ws://", "http://").rstrip("/")
        async with http.get(base.split("/core:")[0] + "/json") as reply:
            targets = await reply.json(content_type=None)
        target = next(
            (t for t in targets if "bench-worker" in t.get("webSocketDebuggerUrl", "")),
            targets[0] if targets else None,
        )
        if target is None:
            raise BenchError(f"no inspector target at {base}/json")
        async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            ins = Inspector(ws)
            await ins.call("Profiler.enable")
            await ins.call("Profiler.setSamplingInterval", {"interval": args["interval_us"]})
            shape = {"connections": args["connections"], "threads": args["threads"]}
            load = asyncio.create_task(
                asyncio.to_thread(
                    run_wrk, wrk, worker_url + "/", duration=args["duration"] + 3, **shape
                )
            )
            await asyncio.sleep(1.5)
            cpu_before, began = cpu_s(pids), time.monotonic()
            await ins.call("Profiler.start")
            await asyncio.sleep(args["duration"])
            stopped = await ins.call("Profiler.stop")
            cpu_after, ended = cpu_s(pids), time.monotonic()
            result = await load
            profile = stopped["profile"]
            scripts = {
                str(n["callFrame"]["scriptId"])
                for n in profile["nodes"]
                if n["callFrame"].get("url") and n["callFrame"].get("scriptId") not in (None, "0")
            }
            await ins.call("Debugger.enable")
            maps: dict[str, SourceMap] = {}
            for script in scripts:
                source = await ins.call("Debugger.getScriptSource", {"scriptId": script})
                url = next(
                    n["callFrame"]["url"]
                    for n in profile["nodes"]
                    if str(n["callFrame"]["scriptId"]) == script
                )
                maps[script] = SourceMap(source.get("scriptSource", ""), url)
            await ins.call("Debugger.disable")
            await ins.call("Profiler.disable")
    seconds = ended - began
    # wrk's rate over its whole run, times the profiled window: the requests the profile saw.
    requests = result.rps * seconds
    return {
        "profile": profile,
        "maps": maps,
        "seconds": seconds,
        "requests": requests,
        "rps": round(result.rps),
        "workerd_cpu_us": (cpu_after - cpu_before) * 1e6 / max(requests, 1),
        "workerd_cores": (cpu_after - cpu_before) / seconds,
    }


def split(taken: dict[str, Any]) -> dict[str, Any]:
    profile, maps = taken["profile"], taken["maps"]
    nodes = {n["id"]: n for n in profile["nodes"]}
    parent = {child: n["id"] for n in profile["nodes"] for child in n.get("children", [])}
    # a node whose parent is the root was entered from workerd's C++, not from JavaScript
    root = next(
        (n["id"] for n in profile["nodes"] if n["callFrame"]["functionName"] == "(root)"), -1
    )
    samples: list[int] = profile.get("samples") or []
    counts = collections.Counter(samples)
    if not counts:  # an old protocol: hitCount per node
        counts = collections.Counter({n["id"]: n.get("hitCount", 0) for n in profile["nodes"]})
    total = sum(counts.values()) or 1
    interval_us = (profile["endTime"] - profile["startTime"]) / total
    per_request = interval_us / max(taken["requests"], 1)
    groups: collections.Counter[str] = collections.Counter()
    functions: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for node_id, n in counts.items():
        group, label = group_of(nodes[node_id]["callFrame"], maps, parent.get(node_id) != root)
        groups[group] += n
        functions[group][label] += n
    return {
        "samples": total,
        "interval_us": round(interval_us, 1),
        "requests": round(taken["requests"]),
        "rps": taken["rps"],
        "workerd_cpu_us_per_request": round(taken["workerd_cpu_us"], 1),
        "workerd_cores": round(taken["workerd_cores"], 2),
        "groups": {
            g: {
                "percent": round(100 * n / total, 1),
                "us_per_request": round(n * per_request, 1),
                "top": [
                    {"function": f, "percent": round(100 * c / total, 2)}
                    for f, c in functions[g].most_common(8)
                ],
            }
            for g, n in groups.most_common()
        },
    }


def run(args: dict[str, Any]) -> dict[str, Any]:
    wrk = require_wrk()
    client = docker_client()
    try:
        require_image(client, NGINX)
    finally:
        client.close()
    results: dict[str, Any] = {
        "machine": {**machine(), "busy_cpu_before": busy_cpu()},
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in args.items()},
    }
    port = free_port()
    with temp_dir("emu-bench-profile-") as root:
        config = write_project(root, max_instances=2)
        with EmuProcess(config, "--no-logs", "--inspector-port", str(port), worker=True) as emu:
            wait_for(functools.partial(answers_200, emu.url + "/"), COLD_TIMEOUT, "the container")
            run_wrk(wrk, emu.url + "/", duration=2, connections=args["connections"], threads=2)
            found = re.search(r"inspector: (ws://\S+)", emu.output)
            inspector = found[1] if found else f"ws://127.0.0.1:{port}"
            pids = [p for p in runtime_pids(emu.pid) if _name(p) == "workerd"]
            taken = asyncio.run(take_profile(inspector, emu.url, wrk, args, pids))
    if args["profile_out"] is not None:  # for Chrome DevTools' Performance panel
        args["profile_out"].write_text(json.dumps(taken["profile"]))
    results.update(split(taken))
    results["machine"]["busy_cpu_after"] = busy_cpu()
    return results


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def table(r: dict[str, Any]) -> str:
    lines = [
        f"workerd's profile: {r['samples']} samples of {r['interval_us']} us over "
        f"{r['requests']} requests ({r['rps']} req/s); workerd from /proc: "
        f"{r['workerd_cpu_us_per_request']} us of CPU per request, {r['workerd_cores']} cores",
        f"machine busy before / after: {r['machine']['busy_cpu_before']} / "
        f"{r['machine']['busy_cpu_after']}",
        "",
        f"{'':44} {'share':>7} {'us/request':>10}",
    ]
    for group, g in r["groups"].items():
        lines.append(f"{group[:44]:44} {g['percent']:>6.1f}% {g['us_per_request']:>10.1f}")
        for top in g["top"][:5]:
            lines.append(f"    {top['function'][:60]:60} {top['percent']:>6.2f}%")
    return "\n".join(lines)


@click.command()
@click.option("--duration", default=10.0, show_default=True, help="Seconds of profile.")
@click.option("--connections", default=16, show_default=True)
@click.option("--threads", default=2, show_default=True, help="wrk threads.")
@click.option("--interval-us", default=200, show_default=True, help="V8's sampling interval.")
@click.option(
    "--profile-out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path(__file__).resolve().parent / "worker.cpuprofile",
    show_default="bench/worker.cpuprofile",
    help="Where to write the raw profile (Chrome DevTools opens it).",
)
@out_option("profile-results.json")
def main(**args: Any) -> None:
    """Profile workerd under load in worker mode; split its time by source."""
    main_body(run, table, args)


if __name__ == "__main__":
    main()
