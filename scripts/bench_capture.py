#!/usr/bin/env python3
"""Capture decode throughput vs ``ffmpeg -benchmark`` (thin wrapper; see edge/benchmarks/capture.py)."""

from __future__ import annotations

import sys

from edge.benchmarks.capture import main

if __name__ == "__main__":
    sys.exit(main())
