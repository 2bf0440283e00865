"""Typed keys of the application's state."""

from __future__ import annotations

import weakref

from aiohttp import web

from .config import Settings
from .control import Control
from .inflight import InFlight
from .sandbox import Sandbox

SETTINGS = web.AppKey("settings", Settings)
CONTROL = web.AppKey[Control]("control")
STARTED = web.AppKey("started", float)  # time.monotonic() when the service started
SANDBOX = web.AppKey("sandbox", Sandbox)
HELD_MEMORY = web.AppKey[list[bytearray]]("held_memory")  # /diag/alloc keeps its blocks here
WEBSOCKETS = web.AppKey[weakref.WeakSet[web.WebSocketResponse]]("websockets")
IN_FLIGHT = web.AppKey("in_flight", InFlight)
