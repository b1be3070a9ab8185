"""Acceptance (issue 16) through the real daemon: ``edge run`` on a recorded walkway, yolov8n, a private
mosquitto, and Home Assistant's view of it.

- Snapshots: each arrives within 1 s of its event, is a valid JPEG, and shows the object (the model finds
  a person in it).
- Reset button: pressing one line's button (its ``command_topic`` and ``payload_press``) zeroes that line
  and leaves the other one counting.
- Removal: a line removed from the config by SIGHUP loses its discovery configs; a later subscriber sees
  none of them.
- Clean stop: zone state republished empty, availability ``offline``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pytest
from helpers.ha_discovery import render
from helpers.mosquitto import Mosquitto, Received, Subscriber, free_port
from helpers.paths import REPO_ROOT, data_dir, models_dir, require, require_tool

from edge.detector import Detector
from edge.snapshots import jpeg_comment

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timing]

NODE = "ci-ha"
BASE = f"edge/{NODE}/walk"


def config(video: Path, model: Path, state: Path, broker: Mosquitto, *, with_east: bool) -> str:
    east = (
        "      - name: east\n        points: [[560, 120], [560, 440]]\n"  # no class filter: totals only
        if with_east
        else ""
    )
    return (
        f"node: {NODE}\nstate_dir: {state}\n"
        f"model:\n  path: {model}\n  classes: [person]\n  batch_size: 1\n"
        f"mqtt:\n  host: {broker.host}\n  port: {broker.port}\n"
        f"metrics:\n  port: {free_port()}\n"
        "cameras:\n"
        f"  - name: walk\n    source: {video}\n    loop: true\n    realtime: true\n    fps: 8\n"
        "    snapshots: {mode: full, max_width: 640}\n"
        "    lines:\n"
        "      - name: west\n        points: [[430, 120], [430, 440]]\n        classes: [person]\n"
        f"{east}"
        "    zones:\n"
        "      - name: plaza\n        polygon: [[0, 0], [960, 0], [960, 540], [0, 540]]\n"
        "        classes: [person]\n"
    )


def total(messages: list[Received], line: str) -> int:
    states = [m for m in messages if m.topic == f"{BASE}/lines/{line}/state"]
    if not states:
        return -1
    state = json.loads(states[-1].payload)
    return int(state["in"]["total"]) + int(state["out"]["total"])


def late(broker: Mosquitto, filters: list[str]) -> dict[str, bytes]:
    with Subscriber(broker.host, broker.port, filters, client_id=f"late-{time.monotonic_ns()}") as sub:
        seen = -1
        while seen != len(sub.messages):
            seen = len(sub.messages)
            time.sleep(0.5)
        return {m.topic: m.payload for m in sub.messages if m.retain and m.payload}


def test_snapshots_reset_button_removal_and_clean_stop(tmp_path: Path) -> None:
    require_tool("mosquitto")
    model = require(models_dir() / "yolov8n.onnx", "yolov8n.onnx")
    video = require(data_dir() / "video" / "pedestrians.mp4", "shared videos")
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    cfg = tmp_path / "edge.yaml"
    cfg.write_text(config(video, model, tmp_path / "state", broker, with_east=True))
    sub = Subscriber(broker.host, broker.port, ["edge/#", "homeassistant/#"], client_id="ha").start()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "run", "--config", str(cfg)],
        cwd=REPO_ROOT,
        env={**os.environ, "EDGE_LOGGING__LEVEL": "INFO"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Both lines count, and snapshots have come.
        assert sub.wait_for(
            lambda m: (
                total(m, "west") > 0
                and total(m, "east") > 0
                and sum(x.topic == f"{BASE}/snapshot" for x in m) >= 3
            ),
            120.0,
        ), "no crossings on both lines, or fewer than 3 snapshots, within 120 s"

        # -- snapshots: within 1 s of their events, valid JPEGs ------------------------------------------
        events = {json.loads(m.payload)["event_id"]: m for m in sub.messages if f"{BASE}/events/" in m.topic}
        snaps = [m for m in sub.messages if m.topic == f"{BASE}/snapshot"]
        delays = []
        for snap in snaps:
            comment = jpeg_comment(snap.payload)
            assert comment is not None
            assert comment.startswith("edge events: ")
            ids = comment.removeprefix("edge events: ").split()
            delays += [abs(snap.at - events[i].at) for i in ids if i in events]
            image = cv2.imdecode(np.frombuffer(snap.payload, np.uint8), cv2.IMREAD_COLOR)
            assert image is not None
        assert delays, "no snapshot could be matched to its event"
        assert max(delays) <= 1.0, delays
        print(f"snapshot-event delays: n={len(delays)} max={max(delays):.3f} s")

        # -- the reset button of "west" ---------------------------------------------------------------
        button = json.loads(
            next(m.payload for m in sub.messages if m.topic.endswith("/walk_line_west_reset/config"))
        )
        east_before = total(sub.messages, "east")
        sub.publish(button["command_topic"], button["payload_press"], retain=button["retain"])
        assert sub.wait_for(lambda m: total(m, "west") == 0, 10.0)
        assert total(sub.messages, "east") >= east_before > 0  # untouched

        # -- SIGHUP without "east": its entities go ------------------------------------------------------
        discovery = [m.topic for m in sub.messages if m.topic.startswith("homeassistant/") and m.payload]
        assert any("_line_east_" in t for t in discovery)
        cfg.write_text(config(video, model, tmp_path / "state", broker, with_east=False))
        proc.send_signal(signal.SIGHUP)
        # Every east entity is cleared (stale configs go out in topic order, so the reset button's
        # clear is not the last one: wait for all of them before a late subscriber looks).
        east = {t for t in discovery if "_line_east_" in t}
        assert sub.wait_for(lambda m: east <= {x.topic for x in m if not x.payload}, 20.0), sorted(east)
        after = late(broker, ["homeassistant/#"])
        assert not any("_line_east_" in t for t in after), sorted(after)
        assert any("_line_west_" in t for t in after)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        sub.stop()
    try:
        assert proc.returncode == 0, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
        # -- displayed totals: "east" (no class filter, never reset, removed by the reload) shows exactly
        # the crossings its events report, rendered from its last retained state as Home Assistant does.
        crossings = {
            ev["event_id"]: ev
            for ev in (
                json.loads(m.payload) for m in sub.messages if m.topic.endswith("/events/line_crossing")
            )
            if ev["line"] == "east"
        }
        true = Counter(ev["direction"] for ev in crossings.values())
        assert sum(true.values()) > 0
        state = [m.payload for m in sub.messages if m.topic == f"{BASE}/lines/east/state"][-1]
        sensors = [
            json.loads(m.payload)
            for m in sub.messages
            if m.topic.startswith("homeassistant/sensor/") and "_line_east_" in m.topic and m.payload
        ]
        assert {s["name"] for s in sensors} == {"east in", "east out"}
        for cfg in sensors:
            direction = cfg["unique_id"].rsplit("_", 2)[1]
            assert render(cfg["value_template"], state) == str(true[direction]), (cfg["name"], state, true)
        # -- clean stop: zone empty, node offline -------------------------------------------------------
        final = late(broker, ["edge/#"])
        assert json.loads(final[f"{BASE}/zones/plaza/state"]) == {"occupancy": {"total": 0}}
        assert final[f"edge/{NODE}/availability"] == b"offline"
    finally:
        broker.stop()

    # -- the snapshots show the object: the model finds a person where each crossing's box is ------------
    # (crossings: the object is at the line then; a zone exit of a lost track has only its last box)
    # At the tracker's low threshold (0.1): ByteTrack keeps a track on such detections, so an event's box
    # can be one the default 0.25 would not report again.
    detector = Detector(model, max_batch=1, confidence=0.1)
    events = {json.loads(m.payload)["event_id"]: m for m in sub.messages if f"{BASE}/events/" in m.topic}
    checked = 0
    for snap in (m for m in sub.messages if m.topic == f"{BASE}/snapshot"):
        comment = jpeg_comment(snap.payload)
        assert comment is not None
        found = [json.loads(events[i].payload) for i in comment.split()[2:] if i in events]
        boxes = [ev["bbox"] for ev in found if ev["type"] == "line_crossing"]
        if not boxes:
            continue
        image = cv2.imdecode(np.frombuffer(snap.payload, np.uint8), cv2.IMREAD_COLOR)
        scale = image.shape[1] / 960  # full frames, scaled to max_width
        (dets,) = detector.infer([image])
        people = [b for c, b in zip(dets.class_id, dets.xyxy, strict=True) if c == 0]
        for box in boxes:
            best = max((iou(np.array(box) * scale, b) for b in people), default=0.0)
            assert best >= 0.5, (comment, box, best)
            checked += 1
    assert checked >= 2


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
