"""Headless Chromium opens a camera's debug page: the live MJPEG frame shows, with the lines and zones
drawn over it in the overlay colour."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pytest
from helpers.paths import require_tool

from edge.web import OVERLAY_COLOR, CameraInfo, WebServer

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration


def camera_frame() -> bytes:
    """A 640x360 grey ramp with a green block: neither blank nor containing the overlay colour."""
    image = np.zeros((360, 640, 3), np.uint8)
    image[:] = np.linspace(40, 200, 640, dtype=np.uint8)[None, :, None]
    image[120:220, 60:260] = (0, 200, 0)  # BGR green
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def test_debug_page_shows_the_stream_with_geometry_overlay(tmp_path: Path) -> None:
    chromium = require_tool("chromium")
    jpeg = camera_frame()
    geometry = {
        "normalized": False,
        "lines": [{"name": "door", "points": [[100, 300], [540, 300]]}],
        "zones": [{"name": "lobby", "polygon": [[400, 40], [600, 40], [600, 200], [400, 200]]}],
    }
    server = WebServer(
        "127.0.0.1",
        0,
        cameras_info=lambda: [CameraInfo("door", "online", 10.0)],
        jpeg_source=lambda _: bytes(bytearray(jpeg)),  # a new frame every call
        geometry=lambda camera: geometry if camera == "door" else None,
    )
    server.start()
    shot = tmp_path / "page.png"
    try:
        result = subprocess.run(
            [
                chromium,
                "--headless=new",
                "--no-sandbox",  # tests run as root in CI containers
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={tmp_path / 'profile'}",
                "--window-size=800,600",
                f"--screenshot={shot}",
                "--virtual-time-budget=3000",
                f"{server.url}/cameras/door",
            ],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    finally:
        server.stop()
    assert shot.exists(), result.stderr[-2000:]
    image = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    assert image is not None
    b, g, r = (image[..., i].astype(np.int16) for i in range(3))
    assert image.std() > 10.0  # not blank
    # The live frame is there: its green block.
    frame_green = (g > 150) & (r < 80) & (b < 80)
    assert frame_green.sum() > 2000, frame_green.sum()
    # The overlay is there: opaque lines in OVERLAY_COLOR (magenta).
    assert OVERLAY_COLOR == "#ff00ff"
    overlay = (r > 200) & (g < 60) & (b > 200)
    assert overlay.sum() > 300, overlay.sum()
