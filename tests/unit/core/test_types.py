"""The Detections / Frame contract: shapes and dtypes are checked, selection keeps rows aligned."""

from __future__ import annotations

import numpy as np
import pytest

from edge.types import ANCHORS, Detections, Frame, anchor_points


def _dets(n: int = 3) -> Detections:
    return Detections.from_arrays(
        xyxy=np.arange(n * 4, dtype=np.float64).reshape(n, 4),
        confidence=np.linspace(0.1, 0.9, n),
        class_id=np.arange(n),
        track_id=np.arange(n) + 10,
    )


def test_empty() -> None:
    d = Detections.empty()
    assert len(d) == 0
    assert d.xyxy.shape == (0, 4)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("xyxy", np.zeros((2, 3), np.float32), r"xyxy: expected shape \(N, 4\), got \(2, 3\)"),
        ("xyxy", np.zeros((2, 4), np.float64), "xyxy: expected dtype float32, got float64"),
        ("confidence", np.zeros(3, np.float32), r"confidence: expected shape \(2,\), got \(3,\)"),
        ("class_id", np.zeros(2, np.int64), "class_id: expected dtype int32, got int64"),
        ("track_id", np.zeros(2, np.int32), "track_id: expected dtype int64, got int32"),
    ],
)
def test_construction_checks_say_expected_and_got(field: str, value: np.ndarray, message: str) -> None:
    cols = {
        "xyxy": np.zeros((2, 4), np.float32),
        "confidence": np.zeros(2, np.float32),
        "class_id": np.zeros(2, np.int32),
        "track_id": np.zeros(2, np.int64),
    }
    cols[field] = value
    with pytest.raises(ValueError, match=message):
        Detections(**cols)


def test_not_an_array_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"expected numpy\.ndarray, got list"):
        Detections([[0, 0, 1, 1]], np.zeros(1, np.float32), np.zeros(1, np.int32), np.zeros(1, np.int64))  # type: ignore[arg-type]


def test_mask_and_index_selection_keep_rows_aligned() -> None:
    d = _dets(4)
    sel = d[np.array([True, False, True, False])]
    assert sel.track_id.tolist() == [10, 12]
    assert sel.xyxy[1].tolist() == [8, 9, 10, 11]
    picked = d[np.array([3, 0])]
    assert picked.class_id.tolist() == [3, 0]
    assert len(d[np.array([], dtype=np.int64)]) == 0
    assert len(d[1:3]) == 2
    with pytest.raises(ValueError, match="mask"):
        d[np.array([True, False])]


def test_anchor_points() -> None:
    xyxy = np.array([[0, 0, 10, 20]], np.float32)
    expected = {
        "bottom_center": [5, 20],
        "center": [5, 10],
        "top_center": [5, 0],
        "bottom_left": [0, 20],
        "bottom_right": [10, 20],
    }
    assert set(expected) == set(ANCHORS)
    for anchor, point in expected.items():
        assert anchor_points(xyxy, anchor).tolist() == [point]
    with pytest.raises(ValueError, match="unknown anchor"):
        anchor_points(xyxy, "feet")


def test_frame_checks_image() -> None:
    f = Frame(np.zeros((4, 6, 3), np.uint8), "cam", 1, 0.0, 0.0)
    assert (f.width, f.height) == (6, 4)
    with pytest.raises(ValueError, match="uint8"):
        Frame(np.zeros((4, 6, 3), np.float32), "cam", 1, 0.0, 0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        Frame(np.zeros((4, 6), np.uint8), "cam", 1, 0.0, 0.0)
