"""Counting accuracy on MOT17 (36-line grid, 30 and ~5 fps); see edge/benchmarks/counting.py."""

from __future__ import annotations

import sys

from edge.benchmarks.counting import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
