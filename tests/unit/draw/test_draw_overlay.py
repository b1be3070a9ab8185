"""Drawing on synthetic frames: what the annotated video and the debug stream promise to show."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.draw import (
    HEADER_MARKER_WIDTH,
    OVERLAY_COLOR,
    TRACK_PALETTE,
    UNTRACKED_COLOR,
    LineGeometry,
    Scene,
    SceneState,
    TrailBuffer,
    ZoneGeometry,
    render_jpeg,
    track_color,
)
from edge.types import Detections

BG = 40  # a dark grey background no overlay colour equals


def blank(h: int = 240, w: int = 320) -> np.ndarray:
    return np.full((h, w, 3), BG, np.uint8)


def dets(boxes, ids, classes=None, scores=None) -> Detections:
    n = len(boxes)
    return Detections.from_arrays(
        boxes, scores if scores is not None else [0.9] * n, classes if classes is not None else [0] * n, ids
    )


def test_box_edges_have_the_track_colour_and_inside_is_untouched():
    img = blank()
    scene = Scene("cam", class_names=("person",))
    scene.draw(img, dets([[100, 100, 200, 180]], [7]), SceneState(frame_no=1))
    color = np.array(track_color(7), np.uint8)
    # Left, right and bottom edge at mid-height / mid-width (the top edge carries the label).
    assert (img[140, 100] == color).all()
    assert (img[140, 200] == color).all()
    assert (img[180, 150] == color).all()
    assert (img[140, 150] == BG).all()


def test_untracked_detection_is_grey_and_labels_have_the_box_colour():
    img = blank()
    Scene("cam", class_names=("person",)).draw(img, dets([[50, 80, 90, 200]], [-1]), SceneState(frame_no=0))
    assert (img[150, 50] == np.array(UNTRACKED_COLOR, np.uint8)).all()
    # The label box sits on top of the box, filled with the box colour.
    label = img[60:80, 50:90].reshape(-1, 3)
    assert (label == np.array(UNTRACKED_COLOR, np.uint8)).all(axis=1).sum() > 50


def test_track_colours_are_stable_and_far_from_the_overlay_colour():
    assert track_color(3) == track_color(3) == track_color(3 + len(TRACK_PALETTE))
    assert track_color(-1) == UNTRACKED_COLOR
    overlay = np.array(OVERLAY_COLOR)
    for c in (*TRACK_PALETTE, UNTRACKED_COLOR):
        assert np.abs(np.array(c) - overlay).max() >= 120, c


@pytest.mark.parametrize(
    ("start", "end", "in_x", "out_x"),
    [
        # Moving down the screen (y down), the right-hand side is towards smaller x.
        ((160, 20), (160, 220), 140, 180),
        ((160, 220), (160, 20), 180, 140),
    ],
)
def test_line_is_drawn_in_overlay_colour_with_arrow_on_the_in_side(start, end, in_x, out_x):
    img = blank()
    scene = Scene("cam", lines=[LineGeometry("door", start, end)])
    scene.draw(img, Detections.empty(), SceneState(frame_no=0, line_counts={"door": (3, 4)}))
    overlay = np.array(OVERLAY_COLOR, np.uint8)
    assert (img[60, 160] == overlay).all()
    assert (img[200, 160] == overlay).all()
    # The arrow leaves the middle (y=120) horizontally; row 121 is below the label box.
    assert (img[121, in_x] == overlay).all()
    assert not (img[121, out_x] == overlay).all()


def test_zone_is_translucent_inside_and_untouched_outside():
    img = blank()
    alpha = 0.25
    scene = Scene(
        "cam", zones=[ZoneGeometry("z", [(100, 100), (200, 100), (200, 200), (100, 200)])], zone_alpha=alpha
    )
    scene.draw(img, Detections.empty(), SceneState(frame_no=0, zone_occupancy={"z": 2}))
    expected = np.rint(BG * (1 - alpha) + np.array(OVERLAY_COLOR) * alpha)
    assert np.abs(img[150, 150].astype(int) - expected).max() <= 1
    assert (img[150, 250] == BG).all()
    assert (img[220, 150] == BG).all()
    # Outline in full overlay colour.
    assert (img[150, 200] == np.array(OVERLAY_COLOR, np.uint8)).all()


def test_zone_partly_outside_the_frame_is_clipped():
    img = blank()
    scene = Scene("cam", zones=[ZoneGeometry("z", [(-50, -50), (100, -50), (100, 100), (-50, 100)])])
    scene.draw(img, Detections.empty(), SceneState(frame_no=0))
    assert img[90, 50].tolist() != [BG, BG, BG]
    assert (img[150, 150] == BG).all()


def test_header_has_a_solid_overlay_marker():
    img = blank()
    Scene("front door").draw(img, Detections.empty(), SceneState(frame_no=42, fps=12.5))
    marker = img[2:20, 0:HEADER_MARKER_WIDTH].reshape(-1, 3)
    assert (marker == np.array(OVERLAY_COLOR, np.uint8)).all()


def test_trails_follow_anchor_points_in_track_colour():
    img = blank()
    trails = TrailBuffer(max_tracks=4, length=8)
    for x in (50, 100, 150):
        trails.add(dets([[x - 10, 100, x + 10, 200]], [5]))
    scene = Scene("cam")
    scene.draw_trails(img, trails)
    # bottom_center anchors at y=200 from x=50 to 150.
    assert (img[200, 75] == np.array(track_color(5), np.uint8)).all()
    assert (img[200, 125] == np.array(track_color(5), np.uint8)).all()
    assert (img[200, 20] == BG).all()


def test_render_jpeg_leaves_the_frame_alone_and_decodes_to_an_annotated_image():
    img = blank(360, 640)
    before = img.copy()
    scene = Scene("cam", class_names=("person",), lines=[LineGeometry("l", (0, 300), (640, 300))])
    data = render_jpeg(
        img, dets([[100, 100, 300, 250]], [1]), SceneState(frame_no=3, fps=9.0), None, quality=80, scene=scene
    )
    assert (img == before).all()
    assert data[:2] == b"\xff\xd8"
    out = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert out.shape == img.shape
    # The solid header marker survives JPEG within a small tolerance.
    marker = out[4:16, 2 : HEADER_MARKER_WIDTH - 2].reshape(-1, 3).astype(int)
    assert np.abs(marker - np.array(OVERLAY_COLOR)).max() <= 40


def test_scene_adapts_to_a_new_frame_size():
    scene = Scene("cam", zones=[ZoneGeometry("z", [(10, 10), (300, 10), (300, 300)])])
    small, big = blank(100, 100), blank(400, 400)
    scene.draw(small, Detections.empty(), SceneState(frame_no=0))
    scene.draw(big, Detections.empty(), SceneState(frame_no=1))
    assert big[250, 290].tolist() != [BG, BG, BG]


def test_invalid_geometry_is_rejected():
    with pytest.raises(ValueError, match="at least 3 points"):
        Scene("cam", zones=[ZoneGeometry("z", [(0, 0), (1, 1)])])
    with pytest.raises(ValueError, match="zone_alpha"):
        Scene("cam", zone_alpha=1.5)
