"""edge.web over real HTTP on an ephemeral port: /metrics, /healthz and the debug view routes."""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from edge.metrics import Metrics
from edge.web import MJPEG_BOUNDARY, OVERLAY_COLOR, CameraInfo, Health, WebServer, health_from_cameras

pytestmark = pytest.mark.timing  # wall-clock bounds: run alone (see pyproject.toml)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


def _jpeg() -> bytes:
    image = np.zeros((48, 64, 3), np.uint8)
    image[10:30, 10:40] = (0, 255, 0)
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


JPEG = _jpeg()
CAMERAS = [CameraInfo("door", "online", 12.5), CameraInfo("road <1>", "offline", 0.0)]


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - local test server
    try:
        with urllib.request.urlopen(request, timeout=5) as r:  # noqa: S310
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, dict(e.headers), e.read()


@pytest.fixture
def make_server() -> Iterator[Callable[..., WebServer]]:
    servers: list[WebServer] = []

    def make(**kwargs: Any) -> WebServer:
        server = WebServer("127.0.0.1", 0, **kwargs)
        server.start()
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.stop()


def read_mjpeg_frames(url: str, want: int, within_s: float) -> tuple[list[bytes], float]:
    """Read up to ``want`` JPEG parts from an MJPEG stream; return them and the seconds it took."""
    host_port = url.removeprefix("http://").split("/", 1)[0]
    conn = http.client.HTTPConnection(host_port, timeout=within_s)
    frames: list[bytes] = []
    start = time.monotonic()
    try:
        conn.request("GET", "/" + url.split("/", 3)[3])
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("Content-Type") == f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}"
        while len(frames) < want and time.monotonic() - start < within_s:
            try:
                line = resp.readline()
            except TimeoutError:
                break
            if not line:
                break
            if line.strip() != f"--{MJPEG_BOUNDARY}".encode():
                continue
            headers = {}
            while (h := resp.readline().strip()) != b"":
                k, _, v = h.decode().partition(":")
                headers[k.lower()] = v.strip()
            assert headers["content-type"] == "image/jpeg"
            frames.append(resp.read(int(headers["content-length"])))
        resp.close()
    finally:
        conn.close()
    return frames, time.monotonic() - start


def test_metrics_render_the_injected_registry(make_server: Callable[..., WebServer]) -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.frames_processed.labels(camera="door").inc(7)
    server = make_server(registry=metrics.registry)
    status, headers, body = get(server.url + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'edge_frames_processed_total{camera="door"} 7.0' in body.decode()
    status, headers, body = get(server.url + "/metrics", {"Accept": "application/openmetrics-text"})
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.decode().endswith("# EOF\n")


def test_metrics_without_registry_is_404(make_server: Callable[..., WebServer]) -> None:
    assert get(make_server().url + "/metrics")[0] == 404


@pytest.mark.parametrize(
    ("cameras", "ok", "reason"),
    [
        ([CameraInfo("a", "online", 10.0)], True, ""),
        ([CameraInfo("a", "online", 10.0), CameraInfo("b", "offline", 0.0)], False, "camera b is offline"),
        ([CameraInfo("a", "online", 10.0), CameraInfo("b", "offline", 0.0, enabled=False)], True, ""),
        ([CameraInfo("a", "online", 0.0)], False, "camera a is online but no frames are processed"),
        ([CameraInfo("a", "stalled", 0.0)], False, "camera a is stalled"),
        ([], False, "no enabled camera"),
        ([CameraInfo("a", "online", 5.0, enabled=False)], False, "no enabled camera"),
    ],
)
def test_health_from_cameras(cameras: list[CameraInfo], ok: bool, reason: str) -> None:
    verdict = health_from_cameras(cameras)
    assert verdict.ok is ok
    assert verdict.reason == reason


def test_healthz_200_and_503_with_json_reason(make_server: Callable[..., WebServer]) -> None:
    cameras = [CameraInfo("door", "online", 10.0)]
    server = make_server(cameras_info=lambda: cameras)
    status, headers, body = get(server.url + "/healthz")
    assert (status, headers["Content-Type"]) == (200, "application/json")
    assert json.loads(body) == {"status": "ok", "cameras": {"door": "online"}}
    cameras[0] = CameraInfo("door", "offline", 0.0)
    status, _, body = get(server.url + "/healthz")
    assert status == 503
    assert json.loads(body) == {
        "status": "unhealthy",
        "reason": "camera door is offline",
        "cameras": {"door": "offline"},
    }


def test_healthz_uses_the_supplied_callable(make_server: Callable[..., WebServer]) -> None:
    server = make_server(
        health=lambda: Health(ok=False, reason="detector stuck"), cameras_info=lambda: CAMERAS
    )
    status, _, body = get(server.url + "/healthz")
    assert status == 503
    assert json.loads(body)["reason"] == "detector stuck"
    assert get(make_server().url + "/healthz")[0] == 503  # no source at all is not healthy


def test_index_lists_cameras_with_state_and_fps(make_server: Callable[..., WebServer]) -> None:
    server = make_server(cameras_info=lambda: CAMERAS)
    status, _, body = get(server.url + "/")
    page = body.decode()
    assert status == 200
    assert "<a href='/cameras/door'>door</a>" in page
    assert "12.5" in page
    assert "road &lt;1&gt;" in page  # escaped
    assert "/cameras/road%20%3C1%3E/stream.mjpg" in page
    status, _, body = get(server.url + "/api/cameras")
    assert json.loads(body)[0] == {"name": "door", "state": "online", "fps": 12.5, "enabled": True}


def test_unknown_routes_and_cameras_are_404(make_server: Callable[..., WebServer]) -> None:
    server = make_server(cameras_info=lambda: CAMERAS, jpeg_source=lambda _: JPEG)
    for path in ["/nope", "/cameras/", "/cameras/ghost", "/cameras/ghost/snapshot.jpg", "/cameras/door/x"]:
        assert get(server.url + path)[0] == 404, path


def test_snapshot_serves_the_latest_jpeg(make_server: Callable[..., WebServer]) -> None:
    frames: dict[str, bytes | None] = {"door": None}
    server = make_server(cameras_info=lambda: CAMERAS, jpeg_source=frames.get)
    assert get(server.url + "/cameras/door/snapshot.jpg")[0] == 503  # no frame yet
    frames["door"] = JPEG
    status, headers, body = get(server.url + "/cameras/door/snapshot.jpg")
    assert (status, headers["Content-Type"], body) == (200, "image/jpeg", JPEG)
    decoded = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    assert decoded.shape == (48, 64, 3)


def test_camera_page_and_geometry(make_server: Callable[..., WebServer]) -> None:
    geometry = {"normalized": False, "lines": [{"name": "door", "points": [[1, 2], [30, 40]]}], "zones": []}
    server = make_server(
        cameras_info=lambda: CAMERAS, geometry=lambda cam: geometry if cam == "door" else None
    )
    status, _, body = get(server.url + "/cameras/door")
    page = body.decode()
    assert status == 200
    assert 'const CAMERA = "door";' in page
    assert OVERLAY_COLOR in page
    assert "geometry.json" in page
    assert "stream.mjpg" in page
    assert "{{" not in page
    assert json.loads(get(server.url + "/cameras/door/geometry.json")[2]) == geometry
    assert json.loads(get(server.url + "/cameras/road%20%3C1%3E/geometry.json")[2]) == {
        "lines": [],
        "zones": [],
    }
    assert "road &lt;1&gt;" in get(server.url + "/cameras/road%20%3C1%3E")[2].decode()


def test_mjpeg_stream_is_rate_limited_and_encodes_only_while_watched(
    make_server: Callable[..., WebServer],
) -> None:
    calls = [0]

    def source(camera: str) -> bytes:
        calls[0] += 1
        return bytes(bytearray(JPEG))  # a new object: a new frame every call

    server = make_server(cameras_info=lambda: CAMERAS, jpeg_source=source, mjpeg_fps=10.0)
    time.sleep(0.2)
    assert calls[0] == 0  # nobody watches: nothing is encoded
    assert server.watchers() == 0

    seen = []
    watcher = threading.Thread(
        target=lambda: seen.append(read_mjpeg_frames(server.url + "/cameras/door/stream.mjpg", 12, 5.0))
    )
    watcher.start()
    deadline = time.monotonic() + 2.0
    while server.watchers("door") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.watchers("door") == 1
    assert server.watchers() == 1
    watcher.join()
    frames, took = seen[0]
    assert len(frames) == 12
    assert all(f == JPEG for f in frames)
    # 12 frames at 10 fps take about 1.1 s; a rate limit that does not work would take ~0 s.
    assert took >= 1.0
    deadline = time.monotonic() + 2.0
    while server.watchers() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.watchers() == 0  # the closed connection ended the stream
    after = calls[0]
    time.sleep(0.3)
    assert calls[0] == after  # and encoding stopped with it


def test_mjpeg_gives_at_least_5_frames_in_2_s(make_server: Callable[..., WebServer]) -> None:
    server = make_server(cameras_info=lambda: CAMERAS, jpeg_source=lambda _: bytes(bytearray(JPEG)))
    frames, took = read_mjpeg_frames(server.url + "/cameras/door/stream.mjpg", 5, 2.0)
    assert len(frames) == 5
    assert took < 2.0


def test_mjpeg_does_not_resend_an_unchanged_frame(make_server: Callable[..., WebServer]) -> None:
    server = make_server(cameras_info=lambda: CAMERAS, jpeg_source=lambda _: JPEG, mjpeg_fps=20.0)
    frames, _ = read_mjpeg_frames(server.url + "/cameras/door/stream.mjpg", 3, 0.5)
    assert len(frames) == 1


def test_streams_are_bounded(make_server: Callable[..., WebServer]) -> None:
    server = make_server(
        cameras_info=lambda: CAMERAS, jpeg_source=lambda _: bytes(bytearray(JPEG)), max_streams=1
    )
    holder = threading.Thread(
        target=read_mjpeg_frames, args=(server.url + "/cameras/door/stream.mjpg", 10, 1.5)
    )
    holder.start()
    deadline = time.monotonic() + 2.0
    while server.watchers() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    status, _, body = get(server.url + "/cameras/door/stream.mjpg")
    assert (status, body) == (503, b"too many open streams\n")
    holder.join()


def try_healthz(port: int) -> int | None:
    """Status of GET /healthz on a fresh connection, or None when the server closes it unanswered."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        response.read()
    except (ConnectionError, http.client.HTTPException):
        return None
    else:
        return response.status
    finally:
        conn.close()


def test_connections_are_bounded(
    make_server: Callable[..., WebServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server(
        cameras_info=lambda: [CameraInfo("door", "online", 5.0)],
        jpeg_source=lambda _: bytes(bytearray(JPEG)),
        max_connections=1,
    )
    holder = threading.Thread(
        target=read_mjpeg_frames, args=(server.url + "/cameras/door/stream.mjpg", 10, 1.5)
    )
    holder.start()
    deadline = time.monotonic() + 2.0
    while server.watchers() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    with caplog.at_level(logging.INFO, logger="edge.web"):
        assert try_healthz(server.port) is None  # the one slot is taken by the stream
        holder.join()
        deadline = time.monotonic() + 2.0
        status = None
        while status is None and time.monotonic() < deadline:
            time.sleep(0.05)  # the slot is freed once the stream's thread has finished
            status = try_healthz(server.port)
        assert status == 200
    messages = [r.getMessage() for r in caplog.records]
    assert any("refusing" in m for m in messages)
    assert any("accepting connections again" in m for m in messages)


def test_stop_ends_open_streams_and_the_thread(make_server: Callable[..., WebServer]) -> None:
    server = make_server(
        cameras_info=lambda: CAMERAS, jpeg_source=lambda _: bytes(bytearray(JPEG)), mjpeg_fps=5.0
    )
    assert any(t.name == "edge-http" for t in threading.enumerate())
    url = server.url
    seen: list[tuple[list[bytes], float]] = []
    watcher = threading.Thread(
        target=lambda: seen.append(read_mjpeg_frames(url + "/cameras/door/stream.mjpg", 1000, 10.0))
    )
    watcher.start()
    deadline = time.monotonic() + 2.0
    while server.watchers() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.stop()
    watcher.join(5.0)
    assert not watcher.is_alive()
    assert seen[0][1] < 5.0  # the stream ended with the server, not at the client's timeout
    assert not any(t.name == "edge-http" for t in threading.enumerate())
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/healthz", timeout=1)  # noqa: S310


def test_a_failing_callable_is_a_logged_500_and_the_server_lives_on(
    make_server: Callable[..., WebServer], caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> Health:
        raise ZeroDivisionError

    server = make_server(health=broken, cameras_info=lambda: CAMERAS)
    with caplog.at_level(logging.ERROR, logger="edge.web"):
        assert get(server.url + "/healthz")[0] == 500
    assert any("HTTP /healthz failed" in r.getMessage() and r.exc_info for r in caplog.records)
    assert get(server.url + "/api/cameras")[0] == 200


def test_port_zero_binds_a_free_port_and_port_requires_start() -> None:
    server = WebServer("127.0.0.1", 0)
    with pytest.raises(RuntimeError):
        _ = server.port
    server.start()
    try:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()
