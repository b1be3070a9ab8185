"""The debug HTTP endpoint serves each camera's latest event snapshot at a stable URL."""

from __future__ import annotations

import urllib.error
import urllib.request

import numpy as np

from edge.snapshots import Options, render_snapshot
from edge.web import CameraInfo, WebServer


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - a loopback http URL
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers["Content-Type"], e.read()


def test_event_jpg_is_the_latest_snapshot_and_503_before_any() -> None:
    jpeg = render_snapshot(np.zeros((48, 64, 3), np.uint8), [(1.0, 1.0, 20.0, 20.0)], ["person"], Options())
    latest: dict[str, bytes] = {}
    server = WebServer(
        "127.0.0.1", 0, cameras_info=lambda: [CameraInfo("door", "online", 5.0)], event_snapshot=latest.get
    )
    server.start()
    try:
        assert get(server.url + "/cameras/door/event.jpg")[0] == 503
        latest["door"] = jpeg
        assert get(server.url + "/cameras/door/event.jpg") == (200, "image/jpeg", jpeg)
        assert get(server.url + "/cameras/ghost/event.jpg")[0] == 404
    finally:
        server.stop()


def test_event_jpg_is_404_without_snapshots() -> None:
    server = WebServer("127.0.0.1", 0, cameras_info=lambda: [CameraInfo("door", "online", 5.0)])
    server.start()
    try:
        assert get(server.url + "/cameras/door/event.jpg")[0] == 404
    finally:
        server.stop()
