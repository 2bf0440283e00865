"""Benchmarks of emu: proxy overhead and cold starts (proxy.py), a long load run (load.py).

Scripts, not tests: run them as `python bench/proxy.py` and `python bench/load.py`."""
