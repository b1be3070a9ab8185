"""The tracks bus and the events agree: scripts/tracks_subscriber.py sees the ids that events report.

Real MOT17 detections go through the real tracker and analytics; every frame's tracks are published on a
real ZeroMQ socket and received by the documented subscriber example running as its own process.
"""

from __future__ import annotations

import ast
import queue
import subprocess
import sys
import threading
import time

import pytest
from helpers.paths import REPO_ROOT

from edge.bus import TracksBus
from edge.events import CameraAnalytics, LineSpec, ZoneSpec
from edge.tools.replay import mot_frames
from edge.tracking import ByteTracker
from edge.types import Detections

pytestmark = pytest.mark.integration

FRAMES = 300


def _lines(stream, out: queue.Queue) -> None:
    for line in stream:
        out.put(line)


def test_subscriber_example_receives_the_track_ids_of_the_events(mot17_dir):
    det = mot17_dir / "MOT17-04" / "det.txt"
    with TracksBus("tcp://127.0.0.1:*", hwm=100_000) as bus:
        proc = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "scripts" / "tracks_subscriber.py"), bus.bound_endpoint],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            lines: queue.Queue[str] = queue.Queue()
            threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
            # ZeroMQ's slow joiner: publish empty frames until the subscriber prints one.
            deadline = time.monotonic() + 20
            while lines.empty():
                assert time.monotonic() < deadline, "subscriber example printed nothing"
                bus.publish("mot", 0, 0.0, Detections.empty())
                time.sleep(0.05)

            tracker = ByteTracker(30.0)
            analytics = CameraAnalytics(
                "mot",
                [LineSpec("mid", (0.0, 540.0), (1920.0, 540.0))],
                [ZoneSpec("left", ((0.0, 400.0), (700.0, 400.0), (700.0, 1080.0), (0.0, 1080.0)))],
                run_id="t",
            )
            events = []
            _, frames = mot_frames(det)
            for frame_no, dets in frames:
                if frame_no > FRAMES:
                    break
                tracked = tracker.update(dets)
                ts = 1_700_000_000.0 + frame_no / 30.0
                events += analytics.update(tracked, tracker.removed_ids(), frame_no, ts, frame_no / 30.0)
                bus.publish("mot", frame_no, ts, tracked)
            assert bus.dropped == 0

            received: dict[int, dict[int, list[float]]] = {}
            deadline = time.monotonic() + 20
            while FRAMES not in received:
                assert time.monotonic() < deadline, f"got {len(received)} of {FRAMES} frames"
                try:
                    topic, seq, tracks = lines.get(timeout=1).split(" ", 2)
                except queue.Empty:
                    continue
                assert topic == "mot"
                if int(seq) > 0:
                    received[int(seq)] = ast.literal_eval(tracks)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            proc.stdout.close()

    assert sorted(received) == list(range(1, FRAMES + 1))
    assert len(events) >= 5, "MOT17-04 has people crossing the middle line and entering the zone"
    for e in events:
        if getattr(e, "reason", None) == "lost":
            # The tracker removed the track: the event carries its last box from an earlier frame.
            seen = [received[f][e.track_id] for f in range(1, e.frame) if e.track_id in received[f]]
            assert seen, f"lost track {e.track_id} was never on the bus"
            assert list(e.bbox) in [pytest.approx(b, abs=0.11) for b in seen]
            continue
        boxes = received[e.frame]
        assert e.track_id in boxes, f"{e.type} of track {e.track_id} at frame {e.frame} not on the bus"
        assert boxes[e.track_id] == pytest.approx(list(e.bbox), abs=0.11)
    assert {e.type for e in events} >= {"line_crossing", "zone_enter"}
