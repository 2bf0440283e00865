"""The garbage collector of an `emu up` process, tuned once it serves (the proxy's per-request
path makes short-lived objects by the thousand a second)."""

from __future__ import annotations

import gc

# Allocations (less deallocations) between two collections of the young generation, against
# Python's 700.
GC_YOUNG = 10_000


def settle_gc() -> None:
    """The garbage collector, once emu serves. What is alive then (modules, config, the app)
    lives as long as the process: out of the collector's sight, so that the full collections
    that the requests' garbage sets off do not walk it each time (13.6 us a request under load,
    before). And the objects of the requests in flight (about 40 each) crossed the default
    young threshold of 700 every few dozen requests; they are freed by their counts, not by
    collections."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
