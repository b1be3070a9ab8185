"""Pure parts of capture shared by the daemon and its capture processes: names, the fps cap, error causes.

Nothing here touches OpenCV, threads or processes, so the capture child process (``edge.capture_worker``)
imports it without pulling in the daemon, and unit tests drive it with plain values.
"""

from __future__ import annotations

import math
import re
from typing import Literal

CONNECTING = "connecting"
ONLINE = "online"
STALLED = "stalled"
OFFLINE = "offline"
STOPPED = "stopped"

DROP_FPS_CAP = "fps_cap"
DROP_SUPERSEDED = "superseded"
DROP_SHUTDOWN = "shutdown"

SourceKind = Literal["stream", "file", "device"]
_STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "rtmps://", "udp://", "tcp://", "srt://")

OutcomeKind = Literal["stop", "eof", "truncated", "error", "stall"]


def source_kind(source: str) -> SourceKind:
    """``stream`` for network URLs, ``device`` for ``/dev/videoN`` or a bare device index, else ``file``."""
    lowered = source.lower()
    if lowered.startswith(_STREAM_SCHEMES):
        return "stream"
    if source.startswith("/dev/video") or source.isdigit():
        return "device"
    return "file"


class Outcome:
    """Why a read loop ended (a small value, not an exception: these are expected events)."""

    __slots__ = ("kind", "reason")

    def __init__(self, kind: OutcomeKind, reason: str) -> None:
        self.kind: OutcomeKind = kind
        self.reason = reason

    def __repr__(self) -> str:
        return f"Outcome({self.kind!r}, {self.reason!r})"


class FpsCap:
    """Evenly thins a frame sequence to ``fps`` frames per second of *stream* time, whatever the timestamps.

    A frame is kept when it is the first one in a new ``1/fps`` time bucket, so a 30 fps source capped at
    15 keeps every 2nd frame and at 5 every 6th - evenly spaced, never a burst followed by a gap. Stream
    time (the frame's presentation timestamp) is used rather than arrival time, so network jitter does not
    make the pattern stutter and an as-fast-as-possible file read is thinned by video time.

    Real timestamps are messy, and each kind of mess is handled without letting frames through:

    * **B-frames / small steps back** (``CAP_PROP_POS_MSEC`` of a file with B-frames goes 300, 267, 400):
      stream time never goes backwards; a timestamp behind the newest one counts as that newest time, so
      the frame falls in an already-used bucket. Re-syncing on every backwards step, as an earlier version
      did, let ``fps: 2`` through at ~12 frames/s.
    * **Missing or stuck timestamps** (NaN, negative, or the same value again and again): stream time
      advances by one nominal frame period (``1 / source_fps``, else 1/30 s) per frame.
    * **Variable frame rate**: buckets are in time, not in frames, so a VFR stream is thinned by its time.
    * **Jumps** of more than ``resync_s`` backwards (file loop) or forwards (reconnect, long gap) restart
      the bucket grid at the new time.

    The bucket grid starts half a source frame before the first frame (``source_fps``, when known), so
    bucket edges fall *between* frames: timestamps that wobble by a few milliseconds (RTP clocks do) then
    never flip a frame across an edge.
    """

    def __init__(self, fps: float, source_fps: float | None = None, resync_s: float = 2.0) -> None:
        if not fps > 0:
            raise ValueError(f"fps cap must be > 0, got {fps}")
        self.fps = float(fps)
        has_rate = source_fps is not None and math.isfinite(source_fps) and source_fps > 0
        self._period = 1.0 / source_fps if has_rate and source_fps else 1.0 / 30.0
        self._half = 0.5 * self._period if has_rate else 0.0
        self._resync_s = resync_s
        self._origin = 0.0
        self._last_bucket: int | None = None
        self._t = 0.0  # stream time of the newest frame, never decreasing between re-syncs
        self._raw: float | None = None  # the last timestamp as given

    def accept(self, t: float) -> bool:
        """Whether the frame with stream time ``t`` (seconds; NaN when unknown) is kept."""
        last = self._last_bucket
        raw = self._raw
        self._raw = t
        if not math.isfinite(t) or t < 0 or (raw is not None and t == raw):
            # Missing or stuck timestamp: assume one nominal frame period passed.
            t = self._t + self._period if last is not None else 0.0
        if last is None or t < self._t - self._resync_s or t - self._t > self._resync_s:
            self._origin = t - self._half
            self._t = t
            last = None
        elif t > self._t:
            self._t = t
        # The epsilon keeps k/30 * 15 == k/2 in bucket k//2 despite binary rounding.
        bucket = math.floor((self._t - self._origin) * self.fps + 1e-6)
        if last is None or bucket > last:
            self._last_bucket = bucket
            return True
        return False


# -- error causes from native library output --------------------------------------------------------------

CAUSE_REFUSED = "refused"
CAUSE_TIMEOUT = "timeout"
CAUSE_AUTH = "auth failed"
CAUSE_NOT_FOUND = "not found"
CAUSE_NOT_VIDEO = "not a video"
CAUSE_UNREACHABLE = "unreachable"
CAUSE_UNKNOWN = "failed"

# Checked in this order on FFmpeg's/OpenCV's own lines from one open attempt: the first match wins, so a
# specific cause (401) beats the generic lines that follow it ("Invalid data found").
_CAUSE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (CAUSE_REFUSED, re.compile(r"connection refused|ECONNREFUSED", re.IGNORECASE)),
    (CAUSE_AUTH, re.compile(r"\b401\b|unauthori[sz]ed|\b403\b|forbidden|authenticat", re.IGNORECASE)),
    (CAUSE_NOT_FOUND, re.compile(r"\b404\b|no such file|name or service not known|name resolution|"
                                 r"\b454\b|session not found", re.IGNORECASE)),
    (CAUSE_UNREACHABLE, re.compile(r"no route to host|network is unreachable|host is down", re.IGNORECASE)),
    (CAUSE_TIMEOUT, re.compile(r"immediate exit requested|timed? ?out|stream timeout", re.IGNORECASE)),
    (CAUSE_NOT_VIDEO, re.compile(r"invalid data found|moov atom not found|misdetection possible|"
                                 r"could not find codec|no video stream|unsupported codec|end of file",
                                 re.IGNORECASE)),
)

_CAUSE_HINTS = {
    CAUSE_REFUSED: "connection refused (nothing listens on that port)",
    CAUSE_TIMEOUT: "no answer within open_timeout {timeout:g} s",
    CAUSE_AUTH: "authentication failed (user or password wrong?)",
    CAUSE_NOT_FOUND: "not found (wrong path or host name?)",
    CAUSE_UNREACHABLE: "host unreachable",
    CAUSE_NOT_VIDEO: "not a video (wrong URL, unsupported codec or broken data)",
    CAUSE_UNKNOWN: "cannot open",
}


def classify_open_failure(
    lines: list[str], took: float, open_timeout: float, kind: SourceKind = "stream"
) -> tuple[str, str]:
    """The cause of a failed open and a one-line reason, from the native lines printed during it.

    ``took`` close to ``open_timeout`` means FFmpeg's interrupt ended the open: a timeout, whatever else
    was printed. A local file (it exists: the caller checked) that does not open is not a video.
    Returns ``(cause, reason)``; the reason quotes the most telling native line.
    """
    if kind == "file":
        quoted = f": {strip_native_prefix(lines[-1])}" if lines else ""
        return CAUSE_NOT_VIDEO, f"{_CAUSE_HINTS[CAUSE_NOT_VIDEO]}{quoted}"
    if took >= 0.9 * open_timeout:
        return CAUSE_TIMEOUT, _CAUSE_HINTS[CAUSE_TIMEOUT].format(timeout=open_timeout)
    for cause, pattern in _CAUSE_PATTERNS:
        for line in lines:
            if pattern.search(line):
                hint = _CAUSE_HINTS[cause].format(timeout=open_timeout)
                return cause, f"{hint}: {strip_native_prefix(line)}"
    if lines:
        return CAUSE_UNKNOWN, f"cannot open: {strip_native_prefix(lines[-1])}"
    return CAUSE_UNKNOWN, f"cannot open after {took:.1f} s (no reason given by FFmpeg)"


_NATIVE_PREFIX = re.compile(r"^\s*(\[OPENCV:FFMPEG:\d+\]\s*|\[\s*\w+:\d+@[\d.]+\]\s*(global\s+\S+\s+)?)")


def strip_native_prefix(line: str) -> str:
    """``[OPENCV:FFMPEG:16] Connection ... refused`` -> ``Connection ... refused`` (also OpenCV's own)."""
    return _NATIVE_PREFIX.sub("", line).strip()


def native_level(line: str) -> int:
    """Python logging level of one native line: FFmpeg's ``[OPENCV:FFMPEG:N]`` or OpenCV's ``[ WARN:...]``.

    FFmpeg levels: 8 fatal, 16 error, 24 warning, 32 info and above (debug).
    """
    m = re.match(r"\s*\[OPENCV:FFMPEG:(\d+)\]", line)
    if m:
        av = int(m.group(1))
        return 40 if av <= 16 else 30 if av <= 24 else 10
    head = line.lstrip()[:8].upper()
    if head.startswith(("[ERROR", "[FATAL")):
        return 40
    if head.startswith(("[ WARN", "[WARN")):
        return 30
    if head.startswith(("[ INFO", "[INFO")):
        return 20
    return 30


def read_failure(kind: SourceKind, n: int, expected: float, blocked: float, read_timeout: float) -> Outcome:
    """Why a read that returned no frame ended the read loop.

    ``n`` frames were read before; ``expected`` is a file's frame count from its header (0 if unknown);
    ``blocked`` is how long the failed read took.
    """
    if kind == "file":
        # FRAME_COUNT comes from the container header, so a file cut or damaged mid-way stops well before
        # it; a few frames of slack cover containers whose count is an estimate.
        if n == 0:
            return Outcome("truncated", "file opened but no frame could be decoded (corrupt?)")
        if expected > 0 and n < expected * 0.98 - 2:
            return Outcome(
                "truncated", f"file ended early after {n} of {int(expected)} frames (truncated or corrupt)"
            )
        return Outcome("eof", f"end of file after {n} frames")
    if blocked >= 0.9 * read_timeout:
        return Outcome("stall", f"no frame for {blocked:.1f} s")
    if n == 0:
        return Outcome("error", "opened but no frame could be read")
    return Outcome("error", "read failed (connection closed or decode error)")
