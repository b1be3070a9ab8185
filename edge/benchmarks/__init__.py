"""Benchmarks reachable from the CLI (``edge bench <name>``); each module has ``main(argv) -> int``."""
