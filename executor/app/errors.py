"""Client errors as JSON: handlers raise `BadRequest`, the middleware answers 400."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequest(Exception):
    """The request is malformed; `message` says what is wrong and what is allowed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadRequest as e:
        return json_error(400, e.message)


def int_param(request: web.Request, name: str, *, lo: int, hi: int) -> int:
    """The required integer query parameter `name`, within [lo, hi]."""
    raw = request.query.get(name)
    if raw is None:
        raise BadRequest(f"query parameter {name} is required (an integer from {lo} to {hi})")
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name}={raw!r} is not an integer") from None
    if not lo <= value <= hi:
        raise BadRequest(f"query parameter {name}={value} is out of range ({lo} to {hi})")
    return value
