"""ggon's benchmarks, run as `scripts/bench [MODE] [OPTIONS]`.

`python3 -m ggonbench --help` (with bench/ on PYTHONPATH) lists the modes,
options and environment variables; bench/README.md describes the layout.
"""
