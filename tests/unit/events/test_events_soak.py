"""Bounded memory: per-line and per-zone state never outgrows the live tracks (principle 5)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.events.analytics import CameraAnalytics
from edge.events.lines import LineSpec
from edge.events.zones import ZoneSpec
from edge.types import Detections

FRAMES = 100_000


@pytest.mark.slow  # about 30 s on 2 shared cores
def test_state_bounded_by_live_tracks_over_100k_frames() -> None:
    rng = np.random.default_rng(5)
    analytics = CameraAnalytics(
        "soak",
        [
            LineSpec("h", (0.0, 240.0), (640.0, 240.0)),
            LineSpec("v", (320.0, 0.0), (320.0, 480.0), anchor="center", count_repeats=True),
        ],
        [ZoneSpec("z", ((100.0, 100.0), (540.0, 100.0), (540.0, 380.0), (100.0, 380.0)), loiter_seconds=2.0)],
        run_id="soak",
    )
    # The synthetic tracker: live tracks walk straight lines; some are missed by the detector on a
    # frame (still live), some are removed at random or when they leave the frame, new ones are born.
    ids = np.zeros(0, np.int64)
    pos = np.zeros((0, 2))
    vel = np.zeros((0, 2))
    next_id = 0
    max_live = 0
    events = 0
    for n in range(FRAMES):
        born = int(rng.poisson(0.3))
        if born:
            ids = np.concatenate((ids, np.arange(next_id, next_id + born)))
            next_id += born
            pos = np.concatenate((pos, rng.uniform((0, 0), (640, 480), (born, 2))))
            vel = np.concatenate((vel, rng.normal(0, 6, (born, 2))))
        pos += vel
        gone = (pos[:, 0] < 0) | (pos[:, 0] > 640) | (pos[:, 1] < 0) | (pos[:, 1] > 480)
        gone |= rng.random(ids.shape[0]) < 0.002
        removed = ids[gone]
        ids, pos, vel = ids[~gone], pos[~gone], vel[~gone]
        seen = rng.random(ids.shape[0]) > 0.1
        p = pos[seen]
        dets = Detections(
            xyxy=np.column_stack((p[:, 0] - 10, p[:, 1] - 40, p[:, 0] + 10, p[:, 1])).astype(np.float32),
            confidence=np.full(p.shape[0], 0.9, np.float32),
            class_id=(ids[seen] % 3).astype(np.int32),
            track_id=ids[seen],
        )
        events += len(analytics.update(dets, removed, frame_no=n, ts_wall=n / 10, ts_mono=n / 10))
        live = ids.shape[0]
        max_live = max(max_live, live)
        sizes = analytics.state_sizes()
        assert max(sizes.values()) <= live, (n, sizes, live)
    assert next_id > 25_000  # tracks really were born and removed all along
    assert events > 10_000  # and the lines and zone really were exercised
    assert max_live < 50
