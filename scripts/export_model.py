"""Export an Ultralytics YOLOv8 / YOLO11 detect model (``.pt``) to the ONNX form edge runs.

Needs ``ultralytics`` (and its PyTorch), which edge itself does not depend on; install them in a
separate environment if you like, the ONNX file is all edge needs:

    pip install ultralytics
    python scripts/export_model.py yolo11n.pt --imgsz 640 --out models/yolo11n.onnx

The export keeps the raw ``[batch, 4 + classes, anchors]`` output (no NMS inside the graph: edge's
decoder does class-aware NMS), float32 input, a dynamic batch axis (so the detector can batch frames
of several cameras into one run) and the class names in the model's metadata. The result is loaded
once with edge's own detector as a check. See models/README.md.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
from pathlib import Path

EX_DATAERR = 65
EX_UNAVAILABLE = 69


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("weights", help="Ultralytics .pt file or model name, e.g. yolo11n.pt")
    parser.add_argument("--imgsz", type=int, default=640, help="square input size, a multiple of 32")
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write the .onnx (default: beside it)"
    )
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: Ultralytics' choice)")
    parser.add_argument(
        "--fixed-batch", action="store_true", help="batch 1 only (for runtimes that need static shapes)"
    )
    args = parser.parse_args(argv)
    if args.imgsz % 32 or args.imgsz < 32:
        parser.error(f"--imgsz {args.imgsz} is not a positive multiple of 32")
    try:
        # importlib, so that mypy needs no stubs for this optional, untyped dependency.
        ultralytics = importlib.import_module("ultralytics")
    except ImportError:
        print("export_model: needs the 'ultralytics' package: pip install ultralytics", file=sys.stderr)
        return EX_UNAVAILABLE

    model = ultralytics.YOLO(args.weights)
    if getattr(model, "task", "detect") != "detect":
        msg = f"export_model: {args.weights} is a {model.task} model; edge runs detect models"
        print(msg, file=sys.stderr)
        return EX_DATAERR
    exported = Path(
        model.export(
            format="onnx",
            imgsz=args.imgsz,
            dynamic=not args.fixed_batch,
            simplify=True,
            nms=False,
            opset=args.opset,
        )
    )
    if args.out is not None and args.out.resolve() != exported.resolve():
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(exported, args.out)
        exported = args.out

    from edge.detector import Detector
    from edge.errors import ModelError

    try:
        det = Detector(exported, providers="auto", max_batch=1)
    except ModelError as exc:
        print(f"export_model: the exported file does not load in edge: {exc}", file=sys.stderr)
        return EX_DATAERR
    batch = "dynamic" if det.dynamic_batch else "fixed 1"
    size = f"{det.input_size[0]}x{det.input_size[1]}"
    print(f"{exported}: input {size}, batch {batch}, {len(det.class_names)} classes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
