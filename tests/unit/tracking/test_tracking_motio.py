"""The MOTChallenge readers: det.txt rows to per-frame xyxy arrays, seqinfo.ini fields."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.tracking.motio import read_mot_detections, read_mot_detections_by_frame, read_seqinfo


def test_det_txt_is_grouped_by_frame_in_file_order(tmp_path: Path) -> None:
    det = tmp_path / "det.txt"
    det.write_text("3,-1,10,20,30,40,0.9\n1,-1,1,2,3,4,0.5\n3,-1,0,0,5,5,1\n1,-1,7,8,1,1,0.25\n")
    dets = read_mot_detections(det)
    assert dets.last_frame == 3
    xyxy, scores = dets.frame(1)
    np.testing.assert_allclose(xyxy, [[1, 2, 4, 6], [7, 8, 8, 9]])
    np.testing.assert_allclose(scores, [0.5, 0.25])
    assert xyxy.dtype == np.float32
    assert scores.dtype == np.float32
    assert dets.frame(2)[0].shape == (0, 4)  # a frame without detections
    assert dets.frame(99)[0].shape == (0, 4)
    np.testing.assert_allclose(dets.frame(3)[0], [[10, 20, 40, 60], [0, 0, 5, 5]])
    by_frame = read_mot_detections_by_frame(det, min_score=0.3)
    assert sorted(by_frame) == [1, 3]
    assert by_frame[1][0].shape == (1, 4)


def test_det_txt_with_too_few_columns_is_rejected(tmp_path: Path) -> None:
    det = tmp_path / "det.txt"
    det.write_text("1,-1,1,2,3\n")
    with pytest.raises(ValueError, match="at least 7"):
        read_mot_detections(det)


def test_empty_det_txt_has_no_frames(tmp_path: Path) -> None:
    det = tmp_path / "det.txt"
    det.write_text("")
    dets = read_mot_detections(det)
    assert dets.last_frame == 0
    assert dets.frame(1)[0].shape == (0, 4)


def test_seqinfo(tmp_path: Path) -> None:
    (tmp_path / "seqinfo.ini").write_text(
        "[Sequence]\nname=MOT17-05-FRCNN\nimDir=img1\nframeRate=14\nseqLength=837\n"
        "imWidth=640\nimHeight=480\nimExt=.jpg\n"
    )
    info = read_seqinfo(tmp_path)
    assert (info.name, info.frame_rate, info.length, info.width, info.height) == (
        "MOT17-05-FRCNN",
        14.0,
        837,
        640,
        480,
    )


def test_real_mot17_detections(mot17_dir: Path) -> None:
    dets = read_mot_detections(mot17_dir / "MOT17-02" / "det.txt")
    assert len(dets.frames) == 8186
    assert dets.last_frame == read_seqinfo(mot17_dir / "MOT17-02").length == 600
