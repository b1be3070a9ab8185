"""Bounded memory: 100 000 frames of constant churn leave the tracker's memory and slot count flat."""

from __future__ import annotations

import tracemalloc

import numpy as np

from edge.tracking import ByteTracker

N_FRAMES = 100_000
CHUNK = 1_000
N_OBJECTS = 12
LIFETIME = 50  # frames an object lives before another one replaces it somewhere else


def churn_chunk(start: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(CHUNK, N_OBJECTS, 4)`` boxes: object ``k`` is reborn at a random spot every LIFETIME frames."""
    frames = np.arange(start, start + CHUNK)[:, None]
    phase = (frames + np.arange(N_OBJECTS)[None, :] * 7) % LIFETIME
    generation = (frames + np.arange(N_OBJECTS)[None, :] * 7) // LIFETIME
    # Birth place depends only on (object, generation): deterministic, different for each life.
    # (multiplicative hashing, so consecutive lives are far apart and never continue the old track).
    key = generation * N_OBJECTS + np.arange(N_OBJECTS)[None, :]
    origin = np.stack([(key * 2654435761) % 1800, (key * 40503) % 900], axis=-1).astype(np.float32)
    pos = origin + phase[..., None].astype(np.float32) * 2.0
    xyxy = np.concatenate([pos, pos + np.float32([40, 100])], axis=-1)
    scores = rng.uniform(0.3, 1.0, (CHUNK, N_OBJECTS)).astype(np.float32)
    return xyxy.astype(np.float32), scores


def test_100k_frames_of_churn_keep_memory_and_slots_flat() -> None:
    rng = np.random.default_rng(0)
    tracker = ByteTracker(30.0, max_tracks=64)

    def buffers() -> list[int]:
        st, sc = tracker._state, tracker._scratch
        return [id(a) for a in (st.mean, st.cov, st.removed, sc.cost, sc.tbuf, sc.xyxy, sc.work_f)]

    warm_buffers: list[int] = []
    max_live = 0
    removed = 0
    tracemalloc.start()
    try:
        baseline = 0
        for start in range(0, N_FRAMES, CHUNK):
            xyxy, scores = churn_chunk(start, rng)
            for f in range(CHUNK):
                tracker.update_arrays(xyxy[f], scores[f])
                removed += tracker.removed_ids().size
            max_live = max(max_live, tracker.live_slots)
            if start == 10 * CHUNK:  # after warm-up: the steady state starts here
                baseline = tracemalloc.get_traced_memory()[0]
                warm_buffers = buffers()
        growth = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    # Churn really happened: thousands of tracks were born and removed.
    next_id = int(tracker._state.counters[1])
    assert next_id > N_FRAMES * N_OBJECTS // LIFETIME // 2
    assert removed > N_FRAMES * N_OBJECTS // LIFETIME // 2
    # Slots stay bounded by the scene (objects plus lost ones waiting out track_buffer), not by time.
    assert max_live <= 3 * N_OBJECTS
    assert tracker.dropped_tracks == 0
    # After warm-up no buffer was reallocated and the Python heap did not grow.
    assert warm_buffers == buffers()
    assert growth < 64 * 1024, f"heap grew by {growth} bytes over {N_FRAMES} frames"
