"""Decode + NMS of YOLOv8/YOLO11 outputs on hand-built tensors (edge.yolo)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.yolo import MAX_CANDIDATES, YoloDecoder, class_rows_for

NC = 3
N = 16


Obj = tuple[float, float, float, float, int, float]


def pred_with(*objects: Obj, nc: int = NC, n: int = N) -> np.ndarray:
    """A ``(4 + nc, n)`` output whose first anchors hold ``(cx, cy, w, h, class, score)``; the rest zero."""
    pred = np.zeros((4 + nc, n), np.float32)
    for j, (cx, cy, w, h, cls, score) in enumerate(objects):
        pred[:4, j] = (cx, cy, w, h)
        pred[4 + cls, j] = score
    return pred


def decode(pred: np.ndarray, width: float = 640, height: float = 640, **kw: object):
    opts = {"confidence": 0.25, "iou": 0.45, "max_det": 300} | kw
    placement = {k: opts.pop(k) for k in ("scale", "pad_x", "pad_y") if k in opts}
    return YoloDecoder(pred.shape[0] - 4, **opts).decode(pred, width=width, height=height, **placement)


def test_empty_output_gives_zero_rows_with_the_right_dtypes():
    dets = decode(np.zeros((4 + NC, N), np.float32))
    assert len(dets) == 0
    assert dets.xyxy.shape == (0, 4)
    assert dets.xyxy.dtype == np.float32
    assert dets.class_id.dtype == np.int32
    assert dets.track_id.dtype == np.int64


def test_centre_size_becomes_corners():
    dets = decode(pred_with((100, 200, 40, 60, 1, 0.9)))
    np.testing.assert_allclose(dets.xyxy, [[80, 170, 120, 230]])
    assert dets.class_id.tolist() == [1]
    np.testing.assert_allclose(dets.confidence, [0.9])
    assert dets.track_id.tolist() == [-1]


@pytest.mark.parametrize(
    ("score", "kept"),
    [
        (0.25, False),  # equal to the threshold: dropped (strictly above, as Ultralytics)
        (float(np.nextafter(np.float32(0.25), np.float32(1))), True),
        (0.2499, False),
        (0.26, True),
        (1.0, True),
    ],
)
def test_threshold_edges(score, kept):
    assert len(decode(pred_with((50, 50, 10, 10, 0, score)), confidence=0.25)) == int(kept)


def test_best_class_wins_per_anchor():
    pred = pred_with((50, 50, 10, 10, 0, 0.4))
    pred[4 + 2, 0] = 0.7
    dets = decode(pred)
    assert dets.class_id.tolist() == [2]
    np.testing.assert_allclose(dets.confidence, [0.7])


@pytest.mark.parametrize(
    ("classes", "want"),
    [
        (None, [(2, 0.7)]),
        ([0], [(0, 0.4)]),  # the best allowed class is used, not dropped because another class is higher
        ([1], []),
        ([0, 2], [(2, 0.7)]),
        ([], []),
    ],
)
def test_class_filter_applies_before_threshold(classes, want):
    pred = pred_with((50, 50, 10, 10, 0, 0.4))
    pred[4 + 2, 0] = 0.7
    dets = decode(pred, classes=classes)
    got = [(int(c), round(float(s), 3)) for c, s in zip(dets.class_id, dets.confidence, strict=True)]
    assert got == want


def test_overlapping_boxes_of_one_class_are_suppressed():
    dets = decode(pred_with((100, 100, 50, 50, 0, 0.9), (102, 101, 50, 50, 0, 0.8)))
    assert len(dets) == 1
    np.testing.assert_allclose(dets.confidence, [0.9])


def test_suppression_is_class_aware():
    dets = decode(pred_with((100, 100, 50, 50, 0, 0.9), (102, 101, 50, 50, 1, 0.8)))
    assert sorted(dets.class_id.tolist()) == [0, 1]


def test_filtered_out_class_does_not_suppress_a_wanted_one():
    dets = decode(pred_with((100, 100, 50, 50, 1, 0.95), (100, 100, 50, 50, 0, 0.5)), classes=[0])
    assert dets.class_id.tolist() == [0]


@pytest.mark.parametrize(
    ("shift", "iou", "n_kept"),
    [
        # two 10x10 boxes shifted by `shift` in x: IoU = (10 - s) / (10 + s)
        (0, 0.45, 1),
        (5, 0.45, 2),  # IoU 1/3 <= 0.45: both kept
        (2, 0.45, 1),  # IoU 2/3 > 0.45: suppressed
        (2, 0.7, 2),  # a higher iou threshold keeps crowded boxes
        (20, 0.0, 2),  # disjoint boxes never suppress each other, even at iou 0
    ],
)
def test_iou_threshold(shift, iou, n_kept):
    dets = decode(pred_with((100, 100, 10, 10, 0, 0.9), (100 + shift, 100, 10, 10, 0, 0.8)), iou=iou)
    assert len(dets) == n_kept


def test_output_is_sorted_by_score_and_cut_at_max_det():
    objects = [(20 + 40 * i, 50, 10, 10, 0, 0.3 + 0.05 * i) for i in range(10)]
    dets = decode(pred_with(*objects), max_det=3)
    np.testing.assert_allclose(dets.confidence, [0.75, 0.7, 0.65], rtol=1e-6)
    assert np.all(np.diff(decode(pred_with(*objects)).confidence) <= 0)


@pytest.mark.parametrize(
    ("box", "want"),
    [
        ((5, 5, 20, 20), (0, 0, 15, 15)),  # top-left corner outside
        ((635, 635, 20, 20), (625, 625, 640, 640)),  # bottom-right corner outside
        ((320, 320, 1000, 1000), (0, 0, 640, 640)),  # larger than the frame
        ((0, 320, 10, 10), (0, 315, 5, 325)),  # centred on the left border
    ],
)
def test_boxes_at_borders_are_clipped_to_the_frame(box, want):
    dets = decode(pred_with((*box, 0, 0.9)))
    np.testing.assert_allclose(dets.xyxy, [want])


def test_letterbox_is_undone_and_boxes_clipped_to_the_original_frame():
    # A 960x540 frame in a 640x640 input: scale 2/3, 140 px of padding above and below.
    pred = pred_with((320, 320, 60, 90, 0, 0.9), (320, 150, 60, 40, 0, 0.8))
    dets = decode(pred, width=960, height=540, scale=2 / 3, pad_x=0, pad_y=140)
    np.testing.assert_allclose(dets.xyxy[0], [435, 202.5, 525, 337.5], atol=1e-3)
    # The second box reaches into the top padding: its top is clipped to the frame's first row.
    np.testing.assert_allclose(dets.xyxy[1], [435, 0, 525, 45], atol=1e-3)


def test_batch_items_are_independent_and_the_scratch_buffer_resizes():
    decoder = YoloDecoder(NC)
    a = decoder.decode(pred_with((50, 50, 10, 10, 0, 0.9)), width=640, height=640)
    b = decoder.decode(pred_with((60, 60, 10, 10, 1, 0.8), n=40), width=640, height=640)
    c = decoder.decode(pred_with((70, 70, 10, 10, 2, 0.7), n=8), width=640, height=640)
    assert (a.class_id.tolist(), b.class_id.tolist(), c.class_id.tolist()) == ([0], [1], [2])


def test_many_candidates_are_bounded():
    n = MAX_CANDIDATES + 100
    pred = np.zeros((5, n), np.float32)
    pred[0] = np.arange(n) * 20.0  # disjoint boxes, so NMS keeps every one it sees
    pred[1] = 10
    pred[2:4] = 10
    pred[4] = np.linspace(0.3, 0.9, n, dtype=np.float32)
    dets = YoloDecoder(1, max_det=1000).decode(pred, width=1e9, height=1e9)
    assert len(dets) == 1000


def reference_decode(pred, conf, iou, max_det):
    """Plain numpy reference: argmax class, threshold, greedy class-aware NMS."""
    scores = pred[4:].max(axis=0)
    classes = pred[4:].argmax(axis=0)
    idx = np.nonzero(scores > np.float32(conf))[0]
    idx = idx[np.argsort(-scores[idx], kind="stable")]
    cx, cy, w, h = pred[:4, idx]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    keep: list[int] = []
    for i in range(len(idx)):
        if len(keep) == max_det:
            break
        ok = True
        for k in keep:
            if classes[idx[k]] != classes[idx[i]]:
                continue
            iw = min(boxes[i, 2], boxes[k, 2]) - max(boxes[i, 0], boxes[k, 0])
            ih = min(boxes[i, 3], boxes[k, 3]) - max(boxes[i, 1], boxes[k, 1])
            if iw <= 0 or ih <= 0:
                continue
            inter = iw * ih
            union = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1]) + (
                boxes[k, 2] - boxes[k, 0]
            ) * (boxes[k, 3] - boxes[k, 1])
            if inter > iou * (union - inter):
                ok = False
                break
        if ok:
            keep.append(i)
    return boxes[keep], scores[idx[keep]], classes[idx[keep]]


@pytest.mark.parametrize("seed", range(5))
def test_matches_a_plain_numpy_reference_on_random_crowds(seed):
    rng = np.random.default_rng(seed)
    nc, n = 5, 400
    pred = np.zeros((4 + nc, n), np.float32)
    pred[0:2] = rng.uniform(50, 590, (2, n))
    pred[2:4] = rng.uniform(10, 80, (2, n))
    pred[4:] = rng.uniform(0, 1, (nc, n)) ** 3
    boxes, scores, classes = reference_decode(pred, 0.3, 0.5, 50)
    dets = YoloDecoder(nc, confidence=0.3, iou=0.5, max_det=50).decode(pred, width=640, height=640)
    np.testing.assert_allclose(dets.xyxy, np.clip(boxes, 0, 640), atol=1e-4)
    np.testing.assert_allclose(dets.confidence, scores)
    np.testing.assert_array_equal(dets.class_id, classes)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"confidence": 1.5}, "confidence"),
        ({"iou": -0.1}, "iou"),
        ({"max_det": 0}, "max_det"),
        ({"classes": [3]}, "out of range"),
    ],
)
def test_bad_settings_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        YoloDecoder(NC, **kwargs)


def test_wrong_output_shape_is_rejected():
    with pytest.raises(ValueError, match=r"expected model output \(4 \+ 3, N\)"):
        YoloDecoder(NC).decode(np.zeros((N, 4 + NC), np.float32), width=10, height=10)


def test_class_rows_are_unique_and_sorted():
    assert class_rows_for(5, [3, 1, 3]).tolist() == [1, 3]
    assert class_rows_for(3, None).tolist() == [0, 1, 2]


def test_batch_decode_equals_decoding_each_image():
    rng = np.random.default_rng(7)
    nc, n, b = 4, 300, 5
    out = np.zeros((b, 4 + nc, n), np.float32)
    out[:, 0:2] = rng.uniform(0, 320, (b, 2, n))
    out[:, 2:4] = rng.uniform(5, 60, (b, 2, n))
    out[:, 4:] = rng.uniform(0, 1, (b, nc, n)) ** 4
    out[2, 4:] = 0  # an image with nothing in it
    params = np.array([[0.5, 0, 40, 640, 480], [1, 0, 0, 320, 320], [1, 0, 0, 320, 320], [2, 10, 0, 150, 160],
                       [0.25, 0, 70, 1280, 720]], np.float64)  # fmt: skip
    decoder = YoloDecoder(nc, confidence=0.3, max_det=20)
    batch = decoder.decode_batch(out, params)
    assert len(batch) == b
    assert len(batch[2]) == 0
    for i in range(b):
        scale, pad_x, pad_y, width, height = params[i]
        one = decoder.decode(out[i], scale=scale, pad_x=pad_x, pad_y=pad_y, width=width, height=height)
        np.testing.assert_array_equal(batch[i].xyxy, one.xyxy)
        np.testing.assert_array_equal(batch[i].confidence, one.confidence)
        np.testing.assert_array_equal(batch[i].class_id, one.class_id)
        assert batch[i].track_id.tolist() == [-1] * len(one)


def test_batch_decode_checks_shapes():
    decoder = YoloDecoder(NC)
    with pytest.raises(ValueError, match="expected params"):
        decoder.decode_batch(np.zeros((2, 4 + NC, N), np.float32), np.zeros((1, 5)))
    with pytest.raises(ValueError, match=r"expected model output \(B, 4 \+ 3, N\)"):
        decoder.decode_batch(np.zeros((2, N, 4 + NC), np.float32), np.zeros((2, 5)))
