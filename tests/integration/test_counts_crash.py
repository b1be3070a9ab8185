"""SIGKILL at random points under load, 20 times: counts equal the events delivered, no total twice.

The child (``counts_child.py``) is the daemon's per-frame path: CameraPipeline -> outbox, whose counts are
committed in the same transaction as the events (``OutboxCounterStore``) -> a real Publisher -> a private
mosquitto. About 25 people a second walk across one line. The parent kills the child at a random moment,
restarts it (counts restored from the outbox) and repeats; a last clean run drains the outbox. Then, per
direction, the number of distinct crossing events the broker delivered must equal the stored count, and
the totals carried by those events must be exactly 1..N: none lost, none carried twice (the issue saw 364
and 365 published a second time after a kill).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers.mosquitto import Mosquitto, Subscriber
from helpers.paths import require_tool

if TYPE_CHECKING:
    from helpers.mosquitto import Received

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHILD = Path(__file__).with_name("counts_child.py")
KILLS = 20


def spawn(state: Path, broker: Mosquitto, mode: str) -> subprocess.Popen[str]:
    state.mkdir(parents=True, exist_ok=True)
    with (state.parent / "child.log").open("a") as log:  # the child's stderr, for a failure message
        return subprocess.Popen(
            [sys.executable, str(CHILD), str(state), broker.host, str(broker.port), mode],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )


def ready(child: subprocess.Popen[str], state: Path) -> None:
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    if line != "ready":
        child.kill()
        child.communicate()
        pytest.fail("child did not start:\n" + (state.parent / "child.log").read_text()[-3000:])


def crossings(messages: list[Received]) -> list[dict[str, object]]:
    seen: set[str] = set()
    out = []
    for m in messages:
        if m.topic.endswith("/events/line_crossing"):
            ev = json.loads(m.payload)
            if ev["event_id"] not in seen:
                seen.add(ev["event_id"])
                out.append(ev)
    return out


def test_sigkill_20_times_counts_equal_events_and_no_total_repeats(tmp_path: Path) -> None:
    require_tool("mosquitto")
    rng = random.Random(15)
    state = tmp_path / "state"
    with Mosquitto(tmp_path / "broker", extra=["max_queued_messages 0"]) as broker:
        sub = Subscriber(
            broker.host, broker.port, ["edge/crash/#"], client_id="counts-crash", clean_session=False
        )
        sub.start()
        try:
            for _ in range(KILLS):
                child = spawn(state, broker, "run")
                ready(child, state)
                time.sleep(rng.uniform(0.3, 1.5))
                child.send_signal(signal.SIGKILL)
                child.communicate()
                assert child.returncode == -signal.SIGKILL
            drain = spawn(state, broker, "drain")
            out, _ = drain.communicate(timeout=60)
            assert drain.returncode == 0
            final = json.loads(out.strip().splitlines()[-1])
            assert final["depth"] == 0
            stored = final["counts"]["lines"]["door"]
            sub.wait_for(lambda ms: len(crossings(ms)) >= sum(sum(v.values()) for v in stored.values()), 10.0)
            events = crossings(sub.messages)
        finally:
            sub.stop()
    by_direction: dict[str, list[int]] = defaultdict(list)
    for ev in events:
        direction = str(ev["direction"])
        by_direction[direction].append(int(ev["counts_all"][direction]))  # type: ignore[index]
    assert events, "no crossing was delivered"
    for direction in ("in", "out"):
        n_stored = sum(int(v) for v in stored.get(direction, {}).values())
        totals = sorted(by_direction[direction])
        assert len(totals) == n_stored, f"{direction}: {len(totals)} events delivered, {n_stored} counted"
        assert totals == list(range(1, n_stored + 1)), f"{direction}: a total was lost or carried twice"
    print(f"{KILLS} kills: {len(events)} crossings delivered, counts {stored}")
