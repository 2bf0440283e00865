"""Run (stdlib only) in the network namespace of a container with `enableInternet = false`, with
NET_ADMIN: removes its default route, so that nothing off its own subnet is reachable. Docker
gives a container on an `internal` network a default route to the host, through which the
host's addresses on other bridges answer.

Usage: python seal.py
"""

from __future__ import annotations

import errno
import socket
import struct

RTM_DELROUTE = 25
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
RT_TABLE_MAIN, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 0, 1
MAX_ROUTES = 16


def delete_default_route() -> bool:
    """Removes one default route; False when there was none."""
    # As `ip route del default` words it (this kernel finds no match for RT_SCOPE_NOWHERE).
    fields = (socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, 0, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
    rtmsg = struct.pack("=BBBBBBBBI", *fields)
    header = struct.pack("=IHHII", 16 + len(rtmsg), RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as nl:
        nl.send(header + rtmsg)
        reply = nl.recv(65536)
    kind = struct.unpack_from("=H", reply, 4)[0]
    code = -struct.unpack_from("=i", reply, 16)[0] if kind == NLMSG_ERROR else 0
    if code not in (0, errno.ESRCH):  # ESRCH: there was none
        raise OSError(code, f"removing the default route: {errno.errorcode.get(code, code)}")
    return code == 0


def default_routes() -> int:
    with open("/proc/net/route") as table:
        return sum(1 for line in list(table)[1:] if line.split()[1] == "00000000")


if __name__ == "__main__":
    removed = 0
    while removed < MAX_ROUTES and delete_default_route():  # every one, should there be several
        removed += 1
    left = default_routes()
    if left:
        raise SystemExit(f"a default route is left after removing {removed}")
    print(f"sealed: {removed} default route(s) removed", flush=True)
