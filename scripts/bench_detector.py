"""Detector stage vs bare ONNX Runtime; the same as ``edge bench detector`` (see edge/benchmarks/detector.py).

Example (the table in docs/benchmarks.md):
    .venv/bin/python scripts/bench_detector.py --model ../shared/models/yolov8n.onnx \
        ../shared/models/yolo11n_320.onnx --batch 1 4 --frames 32 --runs 5
"""

from __future__ import annotations

from edge.benchmarks.detector import main

if __name__ == "__main__":
    raise SystemExit(main())
