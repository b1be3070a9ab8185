"""The whole daemon on N live RTSP streams vs its limit; the same as ``edge bench pipeline``
(see edge/benchmarks/pipeline.py).

Example (the table in docs/benchmarks.md):
    .venv/bin/python scripts/bench_pipeline.py --streams 1 --seconds 120
"""

from __future__ import annotations

from edge.benchmarks.pipeline import main

if __name__ == "__main__":
    raise SystemExit(main())
