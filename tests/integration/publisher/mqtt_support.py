"""Shared pieces of the publisher integration tests (not a test module)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

from helpers.mosquitto import Mosquitto, Received
from helpers.paths import require_tool

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


def make_broker(workdir: Path, **kwargs: object) -> Mosquitto:
    """A private mosquitto; queues for offline persistent sessions are unbounded so nothing is lost there."""
    require_tool("mosquitto")
    extra = ["max_queued_messages 0", *kwargs.pop("extra", ())]  # type: ignore[misc]
    return Mosquitto(workdir, extra=extra, **kwargs)  # type: ignore[arg-type]


def event(camera: str, seq: int) -> bytes:
    """A stand-in for the analytics module's JSON event: what the publisher sees is opaque bytes."""
    return json.dumps({"event_id": f"{camera}-{seq:06d}", "seq": seq, "camera": camera}).encode()


def first_arrivals(messages: list[Received]) -> list[dict[str, object]]:
    """Decoded events in arrival order, duplicates (at-least-once redeliveries) removed by event_id."""
    seen: set[object] = set()
    out = []
    for m in messages:
        if "/events/" not in m.topic:
            continue
        ev = json.loads(m.payload)
        if ev["event_id"] not in seen:
            seen.add(ev["event_id"])
            out.append(ev)
    return out


def seq_in_order_per_camera(events: list[dict[str, object]]) -> bool:
    last: dict[object, int] = {}
    for ev in events:
        seq = int(ev["seq"])  # type: ignore[call-overload]
        if seq <= last.get(ev["camera"], -1):
            return False
        last[ev["camera"]] = seq
    return True


async def wait_until(predicate: Callable[[], bool], within: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
    return True
