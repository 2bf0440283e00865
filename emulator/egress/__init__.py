"""The container's network as the platform gives it, in worker mode: outbound HTTP(S) that the
Worker intercepts (`ctx.container.interceptOutboundHttp` and friends) reaches the Worker's
fetcher, and `enableInternet = false` keeps everything else in.

How: a gateway container of emu's on the instances' networks is their DNS server (Docker's
`dns` option) and their port 80/443; it relays to emu's resolver and listener, naming the
client (resolver.py, listener.py, gateway.py). emu hands each intercepted request to the
instance's Durable Object, whose shim calls the fetcher the library registered (shim.js)."""
