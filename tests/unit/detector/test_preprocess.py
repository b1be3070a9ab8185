"""Letterbox into the preallocated batch tensor (edge.preprocess)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.preprocess import PAD_VALUE, Letterbox, Placement, letterbox_geometry

PAD = np.float32(PAD_VALUE / 255.0)


@pytest.mark.parametrize(
    ("frame", "model", "scale", "new", "pad"),
    [
        ((960, 540), (640, 640), 2 / 3, (640, 360), (0, 140)),
        ((540, 960), (640, 640), 2 / 3, (360, 640), (140, 0)),
        ((1920, 1080), (320, 320), 1 / 6, (320, 180), (0, 70)),
        ((640, 640), (640, 640), 1.0, (640, 640), (0, 0)),
        ((320, 240), (640, 640), 2.0, (640, 480), (0, 80)),  # small frames are scaled up
        ((641, 479), (640, 384), 384 / 479, (514, 384), (63, 0)),  # odd padding: left gets the smaller half
    ],
)
def test_geometry(frame, model, scale, new, pad):
    placement, new_w, new_h = letterbox_geometry(*frame, *model)
    assert placement.scale == pytest.approx(scale)
    assert (new_w, new_h) == new
    assert (placement.pad_x, placement.pad_y) == pad
    assert (placement.width, placement.height) == frame


def reference_letterbox(image: np.ndarray, size: int) -> np.ndarray:
    """What Ultralytics feeds the model: resize, pad 114, BGR->RGB, CHW, /255."""
    placement, new_w, new_h = letterbox_geometry(image.shape[1], image.shape[0], size, size)
    canvas = np.full((size, size, 3), PAD_VALUE, np.uint8)
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas[placement.pad_y : placement.pad_y + new_h, placement.pad_x : placement.pad_x + new_w] = resized
    return canvas[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / np.float32(255)


@pytest.fixture
def frames() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [
        rng.integers(0, 256, (540, 960, 3), np.uint8),
        rng.integers(0, 256, (960, 540, 3), np.uint8),
        rng.integers(0, 256, (320, 320, 3), np.uint8),
        rng.integers(0, 256, (200, 300, 3), np.uint8),
    ]


def test_fill_matches_the_reference_letterbox(frames):
    lb = Letterbox(320, 320, max_batch=4)
    tensor, placements = lb.fill(frames)
    assert tensor.shape == (4, 3, 320, 320)
    assert tensor.dtype == np.float32
    assert tensor.flags.c_contiguous
    for i, frame in enumerate(frames):
        np.testing.assert_allclose(tensor[i], reference_letterbox(frame, 320), atol=1e-6)
        assert (placements[i].width, placements[i].height) == (frame.shape[1], frame.shape[0])


def test_channels_are_swapped_to_rgb_and_scaled():
    blue = np.zeros((64, 64, 3), np.uint8)
    blue[..., 0] = 255  # BGR: pure blue
    tensor, _ = Letterbox(64, 64, max_batch=1).fill([blue])
    np.testing.assert_array_equal(tensor[0, 2], 1.0)  # RGB: blue is the last plane
    np.testing.assert_array_equal(tensor[0, :2], 0.0)


def test_the_tensor_is_reused_and_grows_only_to_the_largest_batch(frames):
    lb = Letterbox(320, 320, max_batch=4)
    t1, _ = lb.fill(frames[:2])
    t2, _ = lb.fill(frames[:1])
    assert np.shares_memory(t1, t2)
    assert lb.capacity == 2
    t4, _ = lb.fill(frames)
    assert lb.capacity == 4
    t3, _ = lb.fill(frames[:3])
    assert np.shares_memory(t3, t4)
    with pytest.raises(ValueError, match="max_batch=4"):
        lb.fill(frames + frames[:1])


def test_a_slot_that_changes_geometry_is_repadded(frames):
    lb = Letterbox(320, 320, max_batch=1)
    lb.fill([frames[0]])  # landscape: pads top and bottom
    tensor, _ = lb.fill([frames[1]])  # portrait: pads left and right; no stale landscape pixels
    np.testing.assert_allclose(tensor[0], reference_letterbox(frames[1], 320), atol=1e-6)
    tensor, _ = lb.fill([frames[0]])
    np.testing.assert_allclose(tensor[0], reference_letterbox(frames[0], 320), atol=1e-6)


def test_the_shape_cache_is_bounded():
    lb = Letterbox(64, 64, max_batch=1)
    for w in range(20, 60):
        lb.fill([np.zeros((30, w, 3), np.uint8)])
    assert len(lb._geometry) <= 16
    assert len(lb._resized_parts[0]) <= 16


@pytest.mark.parametrize(
    ("frame", "box"),
    [
        ((960, 540), (100.0, 50.0, 300.0, 500.0)),
        ((540, 960), (0.0, 0.0, 540.0, 960.0)),
        ((1920, 1080), (1000.5, 700.25, 1919.0, 1079.0)),
        ((641, 479), (13.0, 17.0, 600.0, 400.0)),
        ((320, 240), (10.0, 10.0, 20.0, 20.0)),
    ],
)
@pytest.mark.parametrize("size", [320, 640])
def test_box_round_trip_through_input_space_within_one_pixel(frame, box, size):
    placement, _, _ = letterbox_geometry(*frame, size, size)
    xyxy = np.array([box], np.float32)
    back = placement.to_frame(placement.to_input(xyxy))
    assert np.abs(back - xyxy).max() <= 1.0


@pytest.mark.parametrize(("frame", "size"), [((960, 540), 640), ((1920, 1080), 320), ((540, 960), 320)])
def test_a_drawn_rectangle_is_found_where_it_was_drawn(frame, size):
    """Pixels really land where the placement says: draw, letterbox, locate in the tensor, map back."""
    w, h = frame
    image = np.zeros((h, w, 3), np.uint8)
    x1, y1, x2, y2 = w // 4, h // 3, w // 2, (2 * h) // 3
    image[y1:y2, x1:x2] = 255
    tensor, (placement,) = Letterbox(size, size, max_batch=1).fill([image])
    ys, xs = np.nonzero(tensor[0, 0] > 0.5)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    back = placement.to_frame(found)
    tolerance = max(1.0, 1.0 / placement.scale)  # one input pixel is 1/scale frame pixels when shrinking
    assert np.abs(back - np.array([[x1, y1, x2, y2]], np.float32)).max() <= tolerance


def test_placement_to_frame_clips():
    p = Placement(scale=0.5, pad_x=0, pad_y=10, width=100, height=50)
    back = p.to_frame(np.array([[-5, 0, 60, 45]], np.float32))
    np.testing.assert_allclose(back, [[0, 0, 100, 50]])


@pytest.mark.parametrize(("w", "h"), [(100, 320), (320, 0), (16, 16)])
def test_input_size_must_be_a_multiple_of_the_stride(w, h):
    with pytest.raises(ValueError, match="stride"):
        Letterbox(w, h)


@pytest.mark.parametrize(
    "image",
    [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8), np.zeros((10, 10, 3), np.float32)],
)
def test_non_bgr_images_are_rejected(image):
    with pytest.raises(ValueError, match="uint8"):
        Letterbox(64, 64).fill([image])


def test_params_follow_each_slot(frames):
    lb = Letterbox(320, 320, max_batch=4)
    _, placements = lb.fill(frames)
    want = [[p.scale, p.pad_x, p.pad_y, p.width, p.height] for p in placements]
    np.testing.assert_allclose(lb.params(4), want)
    _, placements = lb.fill([frames[3], frames[0]])
    np.testing.assert_allclose(lb.params(2)[0], [*placements[0]])
    np.testing.assert_allclose(lb.params(2)[1], [*placements[1]])


@pytest.mark.parametrize(
    ("frame", "size", "single"),
    [((960, 540), 320, True), ((1920, 1080), 640, True), ((640, 640), 640, True), ((1280, 720), 640, False)],
)
def test_pixel_picking_is_used_only_where_bilinear_degenerates_to_it(frame, size, single):
    """Odd integer downscales (and 1:1) pick pixels in one pass; the result equals cv2.resize anyway."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (frame[1], frame[0], 3), np.uint8)
    lb = Letterbox(size, size, max_batch=1)
    tensor, _ = lb.fill([image])
    geometry = lb._geometry[frame[1], frame[0]]
    assert (geometry.cols is not None) == single
    np.testing.assert_allclose(tensor[0], reference_letterbox(image, size), atol=1e-6)


def test_uint8_tensor_holds_the_same_pixels_as_the_float_one(frames):
    """The uint8 NHWC BGR tensor is the float NCHW RGB tensor before the swap and scaling (what the
    wrapper graph does on the device), pixel for pixel, padding included."""
    lf = Letterbox(320, 320, max_batch=4)
    lu = Letterbox(320, 320, max_batch=4, dtype=np.uint8)
    for _ in range(2):  # the second fill reuses the padding
        tf, pf = lf.fill(frames)
        tu, pu = lu.fill(frames)
        assert tu.shape == (4, 320, 320, 3)
        assert tu.dtype == np.uint8
        assert pf == pu
        assert np.all(tu[0, :70] == PAD_VALUE)  # 960x540 into 320x320: 70 rows of padding on top
        swapped = tu[..., ::-1].transpose(0, 3, 1, 2)
        np.testing.assert_array_equal(swapped[tf == PAD], PAD_VALUE)
        pixels = tf != PAD
        np.testing.assert_array_equal(swapped.astype(np.float32)[pixels] * np.float32(1 / 255), tf[pixels])
        np.testing.assert_array_equal(lu.params(4), lf.params(4))


def test_single_tap_uint8_matches_cv2_resize():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (1080, 1920, 3), np.uint8)  # 1/3 of 1920x1080 into 640: picks pixels
    tensor, (p,) = Letterbox(640, 640, max_batch=1, dtype=np.uint8).fill([frame])
    expected = cv2.resize(frame, (640, 360), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(tensor[0, p.pad_y : p.pad_y + 360], expected)
    assert np.all(tensor[0, : p.pad_y] == PAD_VALUE)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
@pytest.mark.parametrize("parts", [2, 3, 8])
def test_a_parallel_fill_equals_a_serial_fill(frames, dtype, parts):
    from concurrent.futures import ThreadPoolExecutor

    images = frames * 2  # 8 frames, two of each size, so parts share resize sizes
    serial = Letterbox(320, 320, max_batch=8, dtype=dtype)
    parallel = Letterbox(320, 320, max_batch=8, dtype=dtype)
    with ThreadPoolExecutor(4) as pool:
        for _ in range(2):
            a, pa = serial.fill(images)
            b, pb = parallel.fill(images, pool, parts)
            np.testing.assert_array_equal(a, b)
            assert pa == pb


def test_batch_hands_out_padding_slots_that_are_zero_or_older_frames(frames):
    lb = Letterbox(320, 320, max_batch=8)
    lb.fill(frames[:3])
    padded = lb.batch(4)
    assert padded.shape == (4, 3, 320, 320)
    assert not np.any(padded[3])  # never filled: zeros, no NaN garbage
    assert lb.capacity == 4
    with pytest.raises(ValueError, match="max_batch"):
        lb.batch(9)


def test_only_float32_and_uint8_tensors():
    with pytest.raises(ValueError, match="float32 or uint8"):
        Letterbox(320, 320, dtype=np.float16)
