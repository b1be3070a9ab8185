"""edge's Numba ByteTracker gives exactly the ids of the plain-Python reference, frame by frame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.tracking import ByteTracker
from edge.tracking.motio import read_mot_detections, read_seqinfo
from edge.types import Detections

ALL_SEQUENCES = ("MOT17-02", "MOT17-04", "MOT17-05", "MOT17-09", "MOT17-10", "MOT17-11", "MOT17-13")


def assert_same_ids(edge: ByteTracker, ref: Any, frames: Any, label: str) -> int:
    """Feed both trackers; compare ids and removed ids every frame. Returns confirmed ids seen."""
    seen: set[int] = set()
    for f, (xyxy, scores) in enumerate(frames, start=1):
        got = edge.update_arrays(xyxy, scores)
        want = ref.update(xyxy, scores)
        assert np.array_equal(got, want), f"{label} frame {f}: edge {got.tolist()} != ref {want.tolist()}"
        assert edge.removed_ids().tolist() == ref.removed, f"{label} frame {f}: removed ids differ"
        assert edge.dropped_tracks == ref.dropped, f"{label} frame {f}: dropped counts differ"
        seen.update(int(i) for i in got[got >= 0])
    return len(seen)


def mot_frames(seq_dir: Path, limit: int | None = None) -> tuple[float, list[Any]]:
    info = read_seqinfo(seq_dir)
    dets = read_mot_detections(seq_dir / "det.txt")
    n = info.length if limit is None else min(limit, info.length)
    return info.frame_rate, [dets.frame(f) for f in range(1, n + 1)]


@pytest.mark.parametrize(("seq", "limit"), [("MOT17-02", 300), ("MOT17-05", 300)])
def test_parity_on_mot17_prefix(mot17_dir: Path, reference: Any, seq: str, limit: int) -> None:
    # MOT17-05 runs at 14 fps: the lost-track buffer is scaled (int(14 / 30 * 30) = 14 frames).
    fps, frames = mot_frames(mot17_dir / seq, limit)
    n_ids = assert_same_ids(ByteTracker(fps), reference.ReferenceByteTrack(fps), frames, seq)
    assert n_ids > 10  # the comparison saw real tracking, not all -1


@pytest.mark.slow
@pytest.mark.parametrize("seq", ALL_SEQUENCES)
def test_parity_on_all_mot17(mot17_dir: Path, reference: Any, seq: str) -> None:
    fps, frames = mot_frames(mot17_dir / seq)
    assert_same_ids(ByteTracker(fps), reference.ReferenceByteTrack(fps), frames, seq)


def churn_frames(n_frames: int, n_objects: int, seed: int) -> list[Any]:
    """Random walkers that leave and are replaced, some missed or scored low: every branch is hit."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, 600, (n_objects, 2))
    vel = rng.normal(0, 3, (n_objects, 2))
    frames = []
    for _ in range(n_frames):
        pos += vel
        gone = rng.random(n_objects) < 0.03
        pos[gone] = rng.uniform(0, 600, (int(gone.sum()), 2))
        boxes = np.concatenate([pos, pos + np.array([30.0, 70.0])], axis=1) + rng.normal(0, 2, (n_objects, 4))
        seen = rng.random(n_objects) > 0.1
        scores = rng.uniform(0.05, 1.0, n_objects)
        frames.append((boxes[seen].astype(np.float32), scores[seen].astype(np.float32)))
    return frames


@pytest.mark.parametrize(
    ("fps", "kwargs"),
    [
        (30.0, {}),
        (12.5, {"track_buffer": 10}),
        (30.0, {"max_tracks": 6}),  # overflow: both drop the same new tracks
        (30.0, {"fuse_score": False, "match_thresh": 0.9, "new_track_thresh": 0.5}),
    ],
)
def test_parity_on_synthetic_churn(reference: Any, fps: float, kwargs: dict[str, Any]) -> None:
    frames = churn_frames(400, 15, seed=int(fps) + len(kwargs))
    edge = ByteTracker(fps, **kwargs)
    ref = reference.ReferenceByteTrack(fps, **kwargs)
    assert_same_ids(edge, ref, frames, f"synthetic {fps} {kwargs}")
    if "max_tracks" in kwargs:
        assert edge.dropped_tracks > 0


def assert_same_extras(edge: ByteTracker, ref: Any, reference: Any, frames: Any, label: str) -> int:
    """``update()``'s Kalman boxes and links against the reference's; returns the links seen."""
    links = 0
    for f, (xyxy, scores) in enumerate(frames, start=1):
        n = len(xyxy)
        out = edge.update(Detections(xyxy, scores, np.zeros(n, np.int32), np.full(n, -1, np.int64)))
        want = ref.update(xyxy, scores)
        assert np.array_equal(out.track_id, want), f"{label} frame {f}: ids differ"
        box, link = reference.reference_extras(ref, xyxy, want, edge.link_distance)
        assert out.link_id is not None
        assert out.track_xyxy is not None
        assert np.array_equal(out.link_id, link), f"{label} frame {f}: {out.link_id} != {link}"
        np.testing.assert_allclose(out.track_xyxy, box, atol=1e-2, err_msg=f"{label} frame {f}")
        links += int(np.count_nonzero(link >= 0))
    return links


@pytest.mark.parametrize(("seq", "limit"), [("MOT17-02", 300), ("MOT17-05", 300)])
def test_extras_parity_on_mot17_prefix(mot17_dir: Path, reference: Any, seq: str, limit: int) -> None:
    fps, frames = mot_frames(mot17_dir / seq, limit)
    links = assert_same_extras(ByteTracker(fps), reference.ReferenceByteTrack(fps), reference, frames, seq)
    assert links > 0  # the comparison saw real links


def test_extras_parity_on_synthetic_churn_at_5_fps(reference: Any) -> None:
    frames = churn_frames(400, 15, seed=5)
    edge, ref = ByteTracker(5.0, track_buffer=60), reference.ReferenceByteTrack(5.0, track_buffer=60)
    assert assert_same_extras(edge, ref, reference, frames, "synthetic 5 fps") > 0


@pytest.mark.parametrize(("seq", "stride"), [("MOT17-02", 6), ("MOT17-05", 3), ("MOT17-13", 5)])
def test_parity_at_5_fps(mot17_dir: Path, reference: Any, seq: str, stride: int) -> None:
    # At 10 fps and below step (1b) matches by predicted-centre distance; ids, links and boxes agree.
    fps, frames = mot_frames(mot17_dir / seq)
    sub = frames[::stride]
    n_ids = assert_same_ids(ByteTracker(fps / stride), reference.ReferenceByteTrack(fps / stride), sub, seq)
    assert n_ids > 10
    edge, ref = ByteTracker(fps / stride), reference.ReferenceByteTrack(fps / stride)
    assert assert_same_extras(edge, ref, reference, sub, f"{seq} / {stride}") >= 0


@pytest.mark.parametrize(("seq", "stride"), [("MOT17-02", 6), ("MOT17-13", 5)])
def test_parity_at_5_fps_with_confirmation_at_birth(
    mot17_dir: Path, reference: Any, seq: str, stride: int
) -> None:
    # The daemon's config confirms confident new tracks at birth at <= 10 fps (confirm_thresh).
    fps, frames = mot_frames(mot17_dir / seq)
    sub = frames[::stride]
    edge = ByteTracker(fps / stride, confirm_thresh=0.9)
    ref = reference.ReferenceByteTrack(fps / stride, confirm_thresh=0.9)
    assert assert_same_extras(edge, ref, reference, sub, f"{seq} / {stride} confirm 0.9") > 0
