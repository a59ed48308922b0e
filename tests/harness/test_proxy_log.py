"""The proxy's log stays readable: repeated failures are counted, not repeated."""

from __future__ import annotations


def test_the_proxy_reports_an_unreachable_upstream_once_every_few_seconds():
    from harness.proxy.link import _Throttle
    throttle = _Throttle(every=5.0)
    seen = [throttle.note("client_to_n1", t) for t in (0.0, 0.1, 0.2, 4.9, 5.0, 5.1)]
    assert seen == [1, 0, 0, 0, 4, 0]         # the first, then the four since, at 5 s
    assert throttle.note("client_to_n2", 5.2) == 1     # each proxy on its own
