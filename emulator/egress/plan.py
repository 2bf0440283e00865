"""What one container's outbound traffic goes to the Worker: the hosts the library named with
`interceptOutboundHttp(s)`, or all of it (`interceptAllOutboundHttp`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache


class PlanError(ValueError):
    pass


@cache
def _pattern(glob: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in glob.split("*")))


def host_of(target: str) -> str:
    """ "api.example.com" of "api.example.com:8080"; an IPv6 literal stays whole."""
    name = target.strip().lower().rstrip(".")
    if name.startswith("["):
        return name.partition("]")[0] + "]"
    head, sep, tail = name.rpartition(":")
    return head if sep and tail.isdigit() and ":" not in head else name


def matches(glob: str, name: str) -> bool:
    """The library's glob: `*` stands for any run of characters."""
    return _pattern(host_of(glob)).fullmatch(host_of(name)) is not None


@dataclass(frozen=True)
class Plan:
    hosts: tuple[str, ...] = ()  # interceptOutboundHttp targets (names, globs, host:port)
    https: tuple[str, ...] = ()  # interceptOutboundHttps targets; "*" for all
    all: bool = False  # interceptAllOutboundHttp

    @property
    def empty(self) -> bool:
        return not (self.hosts or self.https or self.all)

    @property
    def tls(self) -> bool:
        """HTTPS is terminated by emu (the container must trust emu's CA)."""
        return bool(self.https)

    def covers(self, name: str) -> bool:
        """Whether a lookup of `name` answers with the gateway: its traffic is the Worker's."""
        if self.all or "*" in self.https:
            return True
        return any(matches(h, name) for h in (*self.hosts, *self.https))


def plan_from(body: object) -> Plan:
    """The shim's `{hosts, https, all}`; PlanError for anything else."""
    if body is None:
        return Plan()
    if not isinstance(body, dict):
        raise PlanError("egress must be an object")

    def names(key: str) -> tuple[str, ...]:
        value = body.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise PlanError(f"egress.{key} must be an array of strings")
        return tuple(value)

    return Plan(hosts=names("hosts"), https=names("https"), all=bool(body.get("all")))
