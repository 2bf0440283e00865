"""Errors a client of the front can get, with the platform's texts where the platform has one."""

from __future__ import annotations

from typing import Any

# The texts of @cloudflare/containers, so that code matching on them behaves the same.
NO_INSTANCE = (
    "There is no Container instance available at this time. This is likely because you have "
    "reached your max concurrent instance count (set in wrangler config) or are you currently "
    "provisioning the Container. If you are deploying your Container for the first time, check "
    "your dashboard to see provisioning status, this may take a few minutes."
)
START_FAILED = "Failed to start container: "
DISCONNECTED = "Container suddenly disconnected, try again"
PROXY_ERROR = "Error proxying request to container: "
NO_PORT = "No port configured for this container"
EXITED_BEFORE_HEALTHY = (
    "Container exited before we could determine the container health, exit code: "
)


class EmuHTTPError(Exception):
    """An error answered to the client as JSON: {"error": ..., plus details}."""

    # The platform library answers this error as text/plain, with `error` as the whole body;
    # emu does the same unless the client asks for JSON (see `PlatformError`).
    plain = False

    def __init__(self, status: int, error: str, **details: Any) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "status": self.status, **self.details}


class PlatformError(EmuHTTPError):
    """An error whose text is the library's own: answered as that text alone, as text/plain, so
    code comparing `await res.text()` with it matches; the details go only to clients that send
    `Accept: application/json` (and to /_emu/events)."""

    plain = True


class NoCapacity(PlatformError):
    def __init__(self, **details: Any) -> None:
        super().__init__(503, NO_INSTANCE, **details)


class StartFailed(PlatformError):
    def __init__(self, reason: str, **details: Any) -> None:
        super().__init__(500, START_FAILED + reason, reason=reason, **details)


class EngineUnavailable(EmuHTTPError):
    def __init__(self, reason: str) -> None:
        super().__init__(
            503,
            "The Docker engine is not reachable; emu will serve again when it is back",
            reason=reason,
        )
