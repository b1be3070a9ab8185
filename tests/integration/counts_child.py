"""A daemon-shaped child for the crash tests: CameraPipeline -> outbox (counts in the same transaction)
-> real Publisher, fed synthetic people walking across a line. Killed with SIGKILL by the parent.

usage: counts_child.py STATE_DIR HOST PORT run|drain
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from edge.config import TrackerConfig
from edge.events import LineSpec
from edge.events.store import OutboxCounterStore
from edge.outbox import Outbox
from edge.pipeline import CameraPipeline
from edge.publisher import Publisher
from edge.sinks import PublisherSink
from edge.types import Detections

LINE = LineSpec(name="door", a=(100.0, 0.0), b=(100.0, 400.0))
SPEED = 5.0  # px per frame (a 16 px box: IoU 0.5 between frames, so new tracks confirm)
EVERY = 4  # a new person every 4 frames
LANES = 8


def people(frame: int) -> Detections:
    """Everybody on screen at ``frame``: person k starts at frame k*EVERY at x=30 and walks right."""
    boxes = []
    for k in range(max(0, frame // EVERY - 40), frame // EVERY + 1):
        x = 30.0 + SPEED * (frame - k * EVERY)
        if 30.0 <= x <= 190.0:
            y = 40.0 + 45.0 * (k % LANES)
            boxes.append([x - 8, y - 30, x + 8, y])
    n = len(boxes)
    return Detections(
        xyxy=np.array(boxes, np.float32).reshape(n, 4),
        confidence=np.full(n, 0.9, np.float32),
        class_id=np.zeros(n, np.int32),
        track_id=np.full(n, -1, np.int64),
    )


async def main(state: Path, host: str, port: int, mode: str) -> None:
    outbox = Outbox(state / "outbox.sqlite3")
    store = OutboxCounterStore(outbox, state)
    pub = Publisher("crash", host=host, port=port, outbox=outbox, reconnect_base=0.1, reconnect_cap=0.5)
    await pub.start()
    pipeline = CameraPipeline(
        "cam",
        lambda _w, _h: ([LINE], []),
        tracker=TrackerConfig(),
        class_names=["person"],
        run_id=uuid.uuid4().hex[:12],
        sink=PublisherSink(pub),
        store=store,
        frame_rate=30.0,
    )
    analytics = pipeline.prepare((400, 400))
    if mode == "drain":
        deadline = time.monotonic() + 30.0
        while outbox.depth and time.monotonic() < deadline:  # noqa: ASYNC110 - the depth is a plain int
            await asyncio.sleep(0.05)
        await pub.stop()
        print(json.dumps({"depth": outbox.depth, "counts": analytics.counts()}), flush=True)
        outbox.close()
        return
    frame = 0
    start = time.monotonic()
    while True:
        frame += 1
        now = time.monotonic()
        pipeline.step(people(frame), frame_no=frame, ts_wall=time.time(), ts_mono=now, size=(400, 400))
        if frame == 1:  # the tracker's kernels are compiled: from here on the kill lands under load
            print("ready", flush=True)
            start = time.monotonic()
        await asyncio.sleep(max(0.0, start + frame / 100.0 - time.monotonic()))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]))
