"""Do ONNX Runtime and OpenVINO give the same zone visits and line counts? (issue 17's end-to-end check)

Runs ``edge replay --video`` on each of the four shared videos, once per backend, with the lines and zones
of tests/data/openvino/replay.yaml and a fixed run id, then compares:

- the count table ``edge replay`` prints (line counts per direction and class, zone visits);
- the events, by what they mean: type, frame, track id, class, line or zone, direction, counts.
  Confidence and box of an event are left out: they are detector outputs, compared by
  ``edge bench detector --agreement``.

Usage (from the repository root)::

    .venv/bin/python scripts/replay_backends.py [--max-frames N] [--precision f32|bf16]

Prints one JSON line per video and exits 1 if any differs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "tests" / "data" / "openvino" / "replay.yaml"
MEANING = ("type", "frame", "track_id", "class_name", "line", "zone", "direction", "counts", "event")


def shared_dir() -> Path:
    return Path(os.environ.get("EDGE_SHARED_DIR", REPO.parent / "shared"))


def replay(video: Path, backend: str, precision: str, out: Path, max_frames: int | None) -> str:
    """The count table ``edge replay`` prints; events go to ``out``."""
    env = dict(
        os.environ,
        EDGE_MODEL__BACKEND=backend,
        EDGE_MODEL__PRECISION=precision if backend == "openvino" else "auto",
        EDGE_MODELS=os.environ.get("EDGE_MODELS_DIR", str(shared_dir() / "models")),
    )
    cmd = [
        sys.executable, "-m", "edge", "replay", "--video", str(video), "--config", str(CONFIG),
        "--camera", video.stem, "--run-id", "compare", "--quiet", "--events-out", str(out),
    ]  # fmt: skip
    if max_frames is not None:
        cmd += ["--max-frames", str(max_frames)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"edge replay failed on {video.name} with {backend}:\n{proc.stderr}")
    return proc.stdout


def meanings(path: Path) -> list[dict[str, object]]:
    events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [{k: e[k] for k in MEANING if k in e} for e in events]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-frames", type=int, default=None, help="frames per video (default: all)")
    parser.add_argument("--precision", default="f32", help="OpenVINO precision (default f32)")
    parser.add_argument("--video", nargs="*", default=None, help="video names (default: all four)")
    args = parser.parse_args(argv)
    videos = sorted((shared_dir() / "data" / "video").glob("*.mp4"))
    if args.video:
        videos = [v for v in videos if v.stem in args.video or v.name in args.video]
    failed = False
    with tempfile.TemporaryDirectory(prefix="edge-replay-backends-") as tmp:
        for video in videos:
            got = {}
            for backend in ("onnxruntime", "openvino"):
                out = Path(tmp) / f"{video.stem}-{backend}.jsonl"
                table = replay(video, backend, args.precision, out, args.max_frames)
                got[backend] = (table, meanings(out))
            (t_ort, e_ort), (t_ov, e_ov) = got["onnxruntime"], got["openvino"]
            differ = [i for i, (a, b) in enumerate(zip(e_ort, e_ov, strict=False)) if a != b]
            same = t_ort == t_ov and e_ort == e_ov
            failed |= not same
            print(json.dumps({
                "video": video.name,
                "precision": args.precision,
                "frames": args.max_frames or "all",
                "events_onnxruntime": len(e_ort),
                "events_openvino": len(e_ov),
                "count_tables_equal": t_ort == t_ov,
                "events_equal": e_ort == e_ov,
                "first_difference": differ[0] if differ else None,
                "count_table": t_ort.strip().splitlines(),
                "count_table_openvino": None if t_ort == t_ov else t_ov.strip().splitlines(),
            }), flush=True)  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
