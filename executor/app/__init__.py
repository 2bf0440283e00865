"""The executor service: supervisor (PID 1), worker processes, and the aiohttp app they serve."""
