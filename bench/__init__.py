"""Benchmarks of emu: proxy overhead and cold starts (proxy.py), a long load run (load.py).

Scripts, not tests: run them as `python -m bench.proxy` and `python -m bench.load`."""
