"""ByteTrack multi-object tracker on fixed-capacity arrays and Numba kernels.

One :class:`ByteTracker` per camera: ids, frames and state belong to the instance (no class-level id
counter). ``update`` returns the input rows, in input order, with ``track_id`` filled in. The rules are
those of the official ByteTrack (Zhang et al., ECCV 2022); docs/tracking.md lists them with the few
deliberate deviations.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from edge.tracking import kernels as k
from edge.tracking.camera_motion import shift_tracks
from edge.tracking.state import Scratch, TrackState
from edge.types import Detections

if TYPE_CHECKING:
    from edge.metrics import Metrics

log = logging.getLogger(__name__)

CENTER_MAX_FPS = 10.0
"""Frame rates at or below which step 3b of docs/tracking.md (the kernel's (1b)), matching by predicted-centre
distance, runs."""

LINK_DISTANCE_LOW = 3.0
"""Default ``link_distance`` at 10 fps and below, where a walker moves farther between the frames that
separate a lost track's last sighting from its successor's report."""
LINK_DISTANCE_HIGH = 2.5
"""Default ``link_distance`` above 10 fps. Chosen on the tuning sequences and the development sets of
docs/benchmarks.md, wrong line counts at 30 fps with 3.0 / 2.5: tuned 322 / 316, pans 533 / 528,
MOT15 above 10 fps unchanged; at ~5 fps 2.5 was worse on two of the three groups (tuned 357 / 361,
pans 578 / 586, MOT15 606 / 576). A small effect: it links fewer different people in crowds."""

CAMERA_MOTION_TOL_LOW = 0.5
"""Default ``camera_motion_tol`` at 10 fps and below: people move up to a few tenths of their height
between frames, and a pan is often a box width or more."""
CAMERA_MOTION_TOL_HIGH = 0.1
"""Default ``camera_motion_tol`` above 10 fps. Kalman velocities follow a steady pan, so what is left to
vote on is how the camera's motion changed since the last frame, a fraction of a box; with 0.5 the
unshifted predictions already land "close enough" and a turn is never found (synthetic pans of
MOT17-02/04/09 at 30 fps: ID switches 222 -> 155 with 0.1; static cameras never shift)."""

_ERRORS = {
    k.ERR_NONFINITE: "box or score is NaN or infinite",
    k.ERR_NEGATIVE_SIZE: "box has negative size (x2 < x1 or y2 < y1)",
}


class ByteTracker:
    """Associates detections across frames of one camera into tracks with stable ids.

    Args:
        frame_rate: frames per second the tracker is fed; scales ``track_buffer`` (a lost track is kept
            ``int(track_buffer * frame_rate / 30)`` frames).
        track_thresh: detections scoring above this are "high" and can match any track and start new
            ones; those at or below it (and above ``low_thresh``) only extend tracks already tracked.
            Raising it trusts fewer detections (fewer false tracks, more fragmentation).
        low_thresh: detections at or below this are ignored. Lowering it recovers occluded objects at the
            price of matching more clutter.
        match_thresh: largest ``1 - IoU`` (score-fused when ``fuse_score``) accepted in the first
            association. Raising it follows fast or jerky motion but swaps ids more in crowds.
        track_buffer: frames (at 30 fps) a lost track waits to be found again. Longer bridges longer
            occlusions, but a wrong re-match gets likelier and lost tracks cost a slot longer.
        fuse_score: multiply IoU by the detection score in the high-score associations (official on
            MOT17); favours confident detections when several overlap a track.
        max_tracks: slots for tracked + unconfirmed + lost tracks. The state is allocated once with this
            capacity; when full, new tracks are not started and counted in :attr:`dropped_tracks`.
        new_track_thresh: score a leftover high detection needs to start a track, default
            ``track_thresh + 0.1`` (the official ``det_thresh``). Raising it suppresses short false tracks
            but starts real ones later.
        center_gate: at ``frame_rate`` <= 10 only (:data:`CENTER_MAX_FPS`), tracked tracks and high
            detections that IoU left unmatched are matched by predicted-centre distance, in heights of
            the track's predicted box, below this gate (heights within 1.5x); so are unconfirmed tracks
            (by the centre of the box they were born with) and the high detections still left. At 5 fps
            a walker's boxes in successive frames often overlap too little for IoU (ByteTrack#64), and
            a new track would never be confirmed. Higher keeps more walkers, but swaps ids more in
            crowds; 0 turns it off. Above 10 fps it is off, so the official MOT17 figures (14-30 fps)
            are unchanged.
        confirm_thresh: at ``frame_rate`` <= 10 only, a new track whose detection scores at least
            this is confirmed (reported) on the frame it is born instead of the next one; ``None``
            (the official rule) waits for a second match. At 5 fps the wait is 0.2 s and a second
            match is far from certain, so people who cross a line soon after they appear are missed.
            Lower reports more tracks at once, and more one-frame false detections with them.
        link_distance: how far (in heights of the lost track's predicted box, centre to centre) a newly
            reported track may be from a lost track for :meth:`update` to name it in ``link_id`` (the
            analytics then continue the lost track's line state; ids are not changed). Higher bridges
            longer occlusions and faster walkers at low fps, but links two people more often in
            crowds; 0 turns links off. The gap bridged is at most the lost track's lifetime
            (``track_buffer / 30`` s). ``None``: :data:`LINK_DISTANCE_LOW` at 10 fps and below,
            :data:`LINK_DISTANCE_HIGH` above.
        camera_motion: before associating, shift every track by the camera's motion since the last
            frame, voted by the tracks from the detections alone (:mod:`edge.tracking.camera_motion`).
            A panning or vehicle-mounted camera at 5 fps moves every box by more than its width and
            loses every track at once without it; at 25-30 fps a car turning moves small people out
            of their predicted boxes before the Kalman velocity catches up. A static camera is left
            alone unless most tracks agree on one shift. Off in this class (the official algorithm);
            the daemon's config turns it on.
        camera_motion_tol: how close (in track heights) a shifted prediction must land to a detection
            to support a shift. Larger finds the shift under jerkier motion but lets people walking
            together pass for camera motion. ``None``: :data:`CAMERA_MOTION_TOL_LOW` at 10 fps and
            below, :data:`CAMERA_MOTION_TOL_HIGH` above.
        metrics: optional :class:`edge.metrics.Metrics`; when given, each update observes
            ``edge_tracker_seconds``, sets ``edge_active_tracks`` and counts ``edge_tracks_dropped``.
        camera: the ``camera`` label for those metrics.

    Detections are tracked class-agnostically (as the official ByteTrack): ``class_id`` is carried but
    not used for association.
    """

    def __init__(
        self,
        frame_rate: float,
        *,
        track_thresh: float = 0.6,
        low_thresh: float = 0.1,
        match_thresh: float = 0.8,
        track_buffer: int = 30,
        fuse_score: bool = True,
        max_tracks: int = 1024,
        new_track_thresh: float | None = None,
        link_distance: float | None = None,
        center_gate: float = 1.0,
        confirm_thresh: float | None = None,
        camera_motion: bool = False,
        camera_motion_tol: float | None = None,
        metrics: Metrics | None = None,
        camera: str = "",
    ) -> None:
        if not (frame_rate > 0 and np.isfinite(frame_rate)):
            raise ValueError(f"frame_rate must be a positive number, got {frame_rate!r}")
        if not 0.0 <= low_thresh <= track_thresh <= 1.0:
            raise ValueError(
                f"need 0 <= low_thresh <= track_thresh <= 1, got low_thresh={low_thresh}, "
                f"track_thresh={track_thresh}"
            )
        if not 0.0 < match_thresh <= 1.0:
            raise ValueError(f"match_thresh must be in (0, 1], got {match_thresh}")
        if track_buffer < 0:
            raise ValueError(f"track_buffer must be >= 0, got {track_buffer}")
        if max_tracks < 1:
            raise ValueError(f"max_tracks must be >= 1, got {max_tracks}")
        if not center_gate >= 0.0:
            raise ValueError(f"center_gate must be >= 0, got {center_gate}")
        # The low-frame-rate rules (docs/tracking.md, steps 3b, 5b and 6) and the by-rate defaults.
        low_rate = frame_rate <= CENTER_MAX_FPS
        if link_distance is None:
            link_distance = LINK_DISTANCE_LOW if low_rate else LINK_DISTANCE_HIGH
        if not link_distance >= 0.0:
            raise ValueError(f"link_distance must be >= 0, got {link_distance}")
        if confirm_thresh is not None and not 0.0 <= confirm_thresh <= 1.0:
            raise ValueError(f"confirm_thresh must be in [0, 1] or None, got {confirm_thresh}")
        if camera_motion_tol is None:
            camera_motion_tol = CAMERA_MOTION_TOL_LOW if low_rate else CAMERA_MOTION_TOL_HIGH
        if not camera_motion_tol > 0.0:
            raise ValueError(f"camera_motion_tol must be > 0, got {camera_motion_tol}")
        self.frame_rate = float(frame_rate)
        self.track_thresh = float(track_thresh)
        self.low_thresh = float(low_thresh)
        self.match_thresh = float(match_thresh)
        self.track_buffer = int(track_buffer)
        self.fuse_score = bool(fuse_score)
        self.max_tracks = int(max_tracks)
        self.new_track_thresh = (
            self.track_thresh + 0.1 if new_track_thresh is None else float(new_track_thresh)
        )
        # The official buffer: int(frame_rate / 30 * track_buffer), truncated.
        self.max_time_lost = int(self.frame_rate / 30.0 * self.track_buffer)

        self._params = np.zeros(k.N_PARAMS, np.float64)
        self._params[k.P_TRACK_THRESH] = self.track_thresh
        self._params[k.P_LOW_THRESH] = self.low_thresh
        self._params[k.P_MATCH_THRESH] = self.match_thresh
        self._params[k.P_NEW_THRESH] = self.new_track_thresh
        self._params[k.P_MAX_TIME_LOST] = self.max_time_lost
        self._params[k.P_FUSE] = 1.0 if self.fuse_score else 0.0
        # Fixed limits of the official algorithm: low-score association 0.5, unconfirmed 0.7,
        # duplicates are pairs with IoU > 0.85.
        self._params[k.P_SECOND_THRESH] = 0.5
        self._params[k.P_UNCONFIRMED_THRESH] = 0.7
        self._params[k.P_DUPLICATE_IOU_DIST] = 0.15
        self._params[k.P_CENTER_GATE] = center_gate if low_rate else 0.0
        self.confirm_thresh = confirm_thresh
        # Above 1 no score reaches it: off.
        self._params[k.P_CONFIRM_THRESH] = (
            confirm_thresh if confirm_thresh is not None and low_rate else 2.0
        )

        self.link_distance = float(link_distance)
        self.camera_motion = bool(camera_motion)
        self.camera_motion_tol = float(camera_motion_tol)
        self.last_shift = (0.0, 0.0)
        self._state = TrackState(self.max_tracks)
        self._used = np.zeros(self.max_tracks, np.bool_)
        self._scratch = Scratch(self.max_tracks)
        self._removed_view: npt.NDArray[np.int64] = self._state.removed[:0]
        self._metrics = metrics
        self._camera = camera
        self._dropped_reported = 0
        if metrics is not None:
            self._m_seconds = metrics.tracker_seconds.labels(camera=camera)
            self._m_active = metrics.active_tracks.labels(camera=camera)
            self._m_dropped = metrics.tracks_dropped.labels(camera=camera)
        warmup()

    # -- public API --------------------------------------------------------------------------------

    def update(self, dets: Detections) -> Detections:
        """Track one frame: the same rows in the same order, ``track_id`` set (-1: no confirmed track).

        Raises:
            ValueError: a box or score is NaN/inf, or a box has negative width or height (nothing is
                changed then). Zero-area boxes are accepted and get -1.
        """
        ids = self._run(dets.xyxy, dets.confidence)
        track_xyxy, link = self._extras(dets.xyxy, ids)
        return dets.with_track_ids(ids, track_xyxy, link)

    def _extras(
        self, xyxy: npt.NDArray[np.float32], ids: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Kalman box and ``link_id`` per row (see :func:`edge.tracking.kernels.extras`)."""
        n = ids.shape[0]
        st = self._state
        box = np.empty((n, 4), np.float32)
        link = np.empty(n, np.int64)
        k.extras(
            self._scratch.xyxy, n, self.link_distance,
            st.state, st.activated, st.last_frame, st.det_row, st.boxes, st.track_id, st.reported,
            st.live, st.counters, self._used, box, link,
        )  # fmt: skip
        return box, link

    def update_arrays(
        self,
        xyxy: npt.ArrayLike,
        scores: npt.ArrayLike,
        classes: npt.ArrayLike | None = None,
    ) -> npt.NDArray[np.int64]:
        """Like :meth:`update` for plain arrays: ``(N, 4)`` x1, y1, x2, y2 boxes and ``(N,)`` scores.

        ``classes`` is only checked for length (the tracker is class-agnostic). Returns ``int64 (N,)``
        track ids, -1 where a row has no confirmed track.
        """
        boxes = np.asarray(xyxy)
        conf = np.asarray(scores)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"xyxy: expected shape (N, 4), got {boxes.shape}")
        if conf.shape != (boxes.shape[0],):
            raise ValueError(f"scores: expected shape ({boxes.shape[0]},), got {conf.shape}")
        if classes is not None and np.shape(classes) != (boxes.shape[0],):
            raise ValueError(f"classes: expected shape ({boxes.shape[0]},), got {np.shape(classes)}")
        return self._run(boxes, conf)

    def removed_ids(self) -> npt.NDArray[np.int64]:
        """Ids of confirmed tracks removed in the last update (a view, valid until the next update)."""
        return self._removed_view

    def tracks(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Confirmed tracks matched in the last update: ids and their Kalman boxes (x1, y1, x2, y2).

        The Kalman box is smoother than the detection box; the MOT benchmark scores it.
        """
        st = self._state
        live = st.live[: st.n_live]
        sel = live[
            (st.state[live] == k.TRACKED)
            & st.activated[live]
            & (st.last_frame[live] == st.counters[k.C_FRAME])
        ]
        return st.track_id[sel].copy(), st.boxes[sel].astype(np.float32)

    def reset(self) -> None:
        """Forget every track; ids restart at 1 and the next frame counts as the first."""
        self._state.clear()
        self._removed_view = self._state.removed[:0]

    @property
    def active_count(self) -> int:
        """Confirmed tracks currently tracked (not lost)."""
        st = self._state
        live = st.live[: st.n_live]
        return int(np.count_nonzero((st.state[live] == k.TRACKED) & st.activated[live]))

    @property
    def live_slots(self) -> int:
        """Slots in use: tracked, unconfirmed and lost tracks (at most ``max_tracks``)."""
        return self._state.n_live

    @property
    def dropped_tracks(self) -> int:
        """New tracks not started because all ``max_tracks`` slots were in use (since construction)."""
        return int(self._state.counters[k.C_DROPPED])

    @property
    def frame_id(self) -> int:
        """Frames processed since construction or :meth:`reset`."""
        return int(self._state.counters[k.C_FRAME])

    # -- internals ---------------------------------------------------------------------------------

    def _run(self, xyxy: npt.NDArray[np.generic], scores: npt.NDArray[np.generic]) -> npt.NDArray[np.int64]:
        started = time.perf_counter() if self._metrics is not None else 0.0
        n = int(xyxy.shape[0])
        sc = self._scratch
        sc.ensure(n, self._state.n_live)
        # Copy into fixed-dtype scratch: one compiled signature whatever the caller passes
        # (float64, read-only or strided arrays would otherwise each trigger a new compilation).
        sc.xyxy[:n] = xyxy
        sc.scores[:n] = scores
        st = self._state
        if self.camera_motion:
            # Before the step, which associates; on a frame the step rejects (NaN, negative size)
            # this changes nothing either.
            self.last_shift = shift_tracks(
                sc.xyxy, sc.scores, n, self.track_thresh, self.camera_motion_tol,
                st.mean, st.state, st.activated, st.live, st.n_live, k.TRACKED,
            )  # fmt: skip
        status, out = _step(st, sc, self._params, n)
        if status != k.OK:
            row, code = divmod(status, 4)
            raise ValueError(
                f"detection row {row}: {_ERRORS[code]}: xyxy={sc.xyxy[row].tolist()} "
                f"score={float(sc.scores[row])}"
            )
        self._removed_view = st.removed[: st.counters[k.C_N_REMOVED]]
        if self._metrics is not None:
            self._m_seconds.observe(time.perf_counter() - started)
            self._m_active.set(self.active_count)
            dropped = int(st.counters[k.C_DROPPED])
            if dropped > self._dropped_reported:
                self._m_dropped.inc(dropped - self._dropped_reported)
                self._dropped_reported = dropped
        return out


def _step(
    state: TrackState, scratch: Scratch, params: npt.NDArray[np.float64], n: int
) -> tuple[int, npt.NDArray[np.int64]]:
    """Run the kernel on the first ``n`` rows already copied into ``scratch``."""
    out = np.empty(n, np.int64)
    st, sc = state, scratch
    status = k.step(
        sc.xyxy, sc.scores, n, params,
        st.mean, st.cov, st.track_id, st.state, st.activated, st.last_frame, st.start_frame,
        st.det_row, st.live, st.free, st.counters, st.boxes, st.removed, out,
        sc.det_idx, sc.pool, sc.cost, sc.tbuf, sc.match_r, sc.match_c, sc.col4row,
        sc.work_f, sc.work_i, sc.work_b, sc.kwork,
    )  # fmt: skip
    return int(status), out


@functools.cache
def _compile() -> None:
    # Three small frames (tracks born, matched high and low, lost, an empty frame) through the real
    # kernel; it has a single signature because ByteTracker always passes the same dtypes.
    state, scratch = TrackState(8), Scratch(8)
    params = np.array([0.6, 0.1, 0.8, 0.7, 30, 1, 0.5, 0.7, 0.15, 1.0, 0.9], np.float64)
    boxes = np.array([[10, 10, 50, 90], [100, 20, 140, 100], [200, 20, 240, 100]], np.float32)
    scores = np.array([0.9, 0.5, 0.8], np.float32)
    used = np.zeros(8, np.bool_)
    for shift, n in ((0, 3), (2, 3), (4, 0), (6, 3)):
        scratch.xyxy[:n] = boxes[:n] + shift
        scratch.scores[:n] = scores[:n]
        _step(state, scratch, params, n)
        st = state
        k.extras(
            scratch.xyxy, n, 3.0, st.state, st.activated, st.last_frame, st.det_row, st.boxes,
            st.track_id, st.reported, st.live, st.counters, used, np.empty((n, 4), np.float32),
            np.empty(n, np.int64),
        )  # fmt: skip
        shift_tracks(
            scratch.xyxy, scratch.scores, n, 0.6, 0.5, st.mean, st.state, st.activated, st.live, st.n_live,
            k.TRACKED,
        )  # fmt: skip


def warmup() -> float:
    """Compile (or load from Numba's on-disk cache) the tracker kernel; returns the seconds it took.

    The :class:`ByteTracker` constructor calls it, so the first real frame does not pay for
    compilation; call it at startup to move that cost earlier still. Idempotent: about 0 once warm.
    """
    t0 = time.perf_counter()
    _compile()
    elapsed = time.perf_counter() - t0
    log.debug("tracker kernels ready in %.3f s", elapsed)
    return elapsed
