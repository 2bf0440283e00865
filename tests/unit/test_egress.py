"""Pure parts of worker mode's egress (emulator/egress/): which names a plan covers, and what
the resolver answers."""

from __future__ import annotations

from dnslib import QTYPE, RCODE, DNSRecord

from emulator.egress.plan import Plan, host_of, matches
from emulator.egress.resolver import PASS, Route, answer


def test_globs_and_ports_as_the_library_writes_them() -> None:
    assert host_of("API.Example.test:8080") == "api.example.test"
    assert host_of("[::1]:80") == "[::1]"
    assert matches("*.example.test", "a.b.example.test")
    assert not matches("*.example.test", "example.test.evil")
    assert matches("api.test:80", "api.test")
    plan = Plan(hosts=("api.test", "*.glob.test"))
    assert plan.covers("api.test") and plan.covers("x.glob.test")
    assert not plan.covers("other.test")
    assert Plan(all=True).covers("anything") and Plan(https=("*",)).covers("x")
    assert Plan().empty and not Plan(hosts=("a",)).empty


def _route(plan: Plan, internet: bool = True) -> Route:
    return Route("Box", "a", "ab" * 32, plan, "172.18.0.9", internet)


def test_resolver_answers_covered_names_with_the_gateway() -> None:
    query = DNSRecord.question("api.test", "A").pack()
    reply = DNSRecord.parse(answer(query, _route(Plan(hosts=("api.test",)))))
    assert [str(r.rdata) for r in reply.rr] == ["172.18.0.9"] and reply.rr[0].ttl == 0
    six = DNSRecord.parse(
        answer(DNSRecord.question("api.test", "AAAA").pack(), _route(Plan(all=True)))
    )
    assert six.rr == [] and six.header.rcode == RCODE.NOERROR
    # Not covered: asked upstream, unless the container has no internet.
    other = DNSRecord.question("other.test", "A").pack()
    assert answer(other, _route(Plan(hosts=("api.test",)))) == PASS
    assert answer(other, None) == PASS
    shut = DNSRecord.parse(answer(other, _route(Plan(hosts=("api.test",)), internet=False)))
    assert shut.header.rcode == RCODE.NXDOMAIN and shut.q.qtype == QTYPE.A
    assert answer(b"\x00garbage", None) == b""
