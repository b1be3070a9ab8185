"""``edge annotate`` on a real video and model: a playable MP4, same frames, boxes where objects are."""

from __future__ import annotations

import textwrap

import cv2
import numpy as np
import pytest

from edge.detector import Detector
from edge.draw import OVERLAY_COLOR, TRACK_PALETTE, UNTRACKED_COLOR
from edge.tools.annotate import main

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BOX_COLORS = np.array([*TRACK_PALETTE, UNTRACKED_COLOR], np.int16)
# mp4v re-encodes the drawn 2 px edges: colours move by a few tens of levels, more at chroma edges.
COLOR_TOLERANCE = 60


def write_config(tmp_path, model_path, video) -> object:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            model:
              path: {model_path}
            cameras:
              - name: plaza
                source: {video}
                lines:
                  - name: path
                    points: [[100, 300], [860, 300]]
                zones:
                  - name: corner
                    polygon: [[600, 350], [950, 350], [950, 530], [600, 530]]
            """
        )
    )
    return cfg


def decode_all(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    return frames


def box_color_of(pixels: np.ndarray) -> np.ndarray:
    """The track (or untracked) colour closest to the median of the given pixels."""
    median = np.median(pixels.astype(np.int16), axis=0)
    return BOX_COLORS[np.abs(BOX_COLORS - median).max(axis=1).argmin()]


def share_near(pixels: np.ndarray, color: np.ndarray) -> float:
    """Share of pixels within COLOR_TOLERANCE (L-inf) of ``color``."""
    return float((np.abs(pixels.astype(np.int16) - color).max(axis=1) <= COLOR_TOLERANCE).mean())


def edge_pixels(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Pixels on the left and right edges of a box, below the label and above the bottom edge."""
    x1, y1, x2, y2 = np.rint(box).astype(int)
    h, w = image.shape[:2]
    ys = np.arange(min(y1 + 25, y2), y2 - 2)
    cols = [x for x in (x1, x2) if 0 <= x < w]
    ys = ys[(ys >= 0) & (ys < h)]
    return np.concatenate([image[ys, x] for x in cols]) if cols and ys.size else np.zeros((0, 3), np.uint8)


@pytest.fixture(scope="module")
def annotated(tmp_path_factory, yolo11n_320_path, video_dir):
    """The whole pedestrians.mp4 annotated once with the small model (about 20 s on 2 cores)."""
    tmp = tmp_path_factory.mktemp("annotate")
    video = video_dir / "pedestrians.mp4"
    out = tmp / "out.mp4"
    rc = main(
        [
            str(video),
            "--config",
            str(write_config(tmp, yolo11n_320_path, video)),
            "--camera",
            "plaza",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    return video, out


def test_output_is_a_playable_mp4_with_the_same_frame_count_and_rate(annotated):
    video, out = annotated
    src, dst = cv2.VideoCapture(str(video)), cv2.VideoCapture(str(out))
    try:
        assert dst.isOpened()
        assert dst.get(cv2.CAP_PROP_FRAME_COUNT) == src.get(cv2.CAP_PROP_FRAME_COUNT) == 419
        assert dst.get(cv2.CAP_PROP_FPS) == pytest.approx(src.get(cv2.CAP_PROP_FPS), rel=1e-3)
        assert (dst.get(cv2.CAP_PROP_FRAME_WIDTH), dst.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (
            src.get(cv2.CAP_PROP_FRAME_WIDTH),
            src.get(cv2.CAP_PROP_FRAME_HEIGHT),
        )
    finally:
        src.release()
        dst.release()
    assert len(decode_all(out)) == len(decode_all(video)) == 419


@pytest.mark.parametrize("frame_index", [60, 300])
def test_boxes_are_drawn_where_the_detector_finds_objects(annotated, yolo11n_320_path, frame_index):
    video, out = annotated
    src, dst = decode_all(video)[frame_index], decode_all(out)[frame_index]
    dets = Detector(yolo11n_320_path, providers="cpu").infer([src])[0]
    confident = dets[dets.confidence >= 0.5]
    assert len(confident) >= 1, "the scene has people in it at this frame"
    for box in confident.xyxy:
        drawn, before = edge_pixels(dst, box), edge_pixels(src, box)
        assert len(drawn) > 10
        # Both vertical edges of the box carry one track colour, which the raw frame does not have there.
        color = box_color_of(drawn)
        assert share_near(drawn, color) >= 0.8, f"box {box}: edges are not in one box colour"
        assert share_near(before, color) <= 0.3, f"box {box}: the raw frame already has that colour"
    # The header marker is in the overlay colour.
    marker = dst[4:16, 2:8].reshape(-1, 3).astype(int)
    assert np.abs(marker - np.array(OVERLAY_COLOR)).max() <= COLOR_TOLERANCE


def test_max_frames_writes_exactly_that_many(tmp_path, yolo11n_320_path, video_dir):
    video = video_dir / "pedestrians.mp4"
    out = tmp_path / "short.mp4"
    rc = main(
        [
            str(video),
            "--config",
            str(write_config(tmp_path, yolo11n_320_path, video)),
            "--out",
            str(out),
            "--max-frames",
            "25",
            "--quiet",
        ]
    )
    assert rc == 0
    cap = cv2.VideoCapture(str(out))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 25
    cap.release()
    assert len(decode_all(out)) == 25


def test_user_errors_exit_with_a_message(tmp_path, yolo11n_320_path, video_dir, capsys):
    video = video_dir / "pedestrians.mp4"
    cfg = write_config(tmp_path, yolo11n_320_path, video)
    assert main([str(tmp_path / "missing.mp4"), "--config", str(cfg), "--out", str(tmp_path / "o.mp4")]) == 69
    assert "no such file" in capsys.readouterr().err
    assert main([str(video), "--config", str(cfg), "--camera", "nope", "--out", str(tmp_path / "o.mp4")]) != 0
    assert "no camera 'nope'" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("cameras: []\n")
    assert main([str(video), "--config", str(bad), "--out", str(tmp_path / "o.mp4")]) == 78
