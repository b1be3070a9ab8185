"""Tracker benchmark on MOT17 (accuracy via TrackEval, speed vs peers); see edge/benchmarks/tracker.py."""

from __future__ import annotations

import sys

from edge.benchmarks.tracker import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
