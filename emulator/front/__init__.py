"""The front: the aiohttp app that routes each request to an instance, the proxy, the
client-connection limits and the request records."""
