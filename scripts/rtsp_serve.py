#!/usr/bin/python3
"""Serve video files as looping live RTSP streams (GStreamer RTSP server).

Usage::

    scripts/rtsp_serve.py FILE [FILE...] --port N [--path /name ...] [--host 127.0.0.1]
                          [--encode auto|copy|x264] [--fps F]

Each file is served on its own path: ``--path`` once per file, or by default ``/stream`` for a single
file and ``/stream0``, ``/stream1``, ... for several. Every file loops forever in real time, as a camera
would, whether or not a client is connected; a client that connects sees the stream "now", starting at
the next key frame. When every path is ready one line per path is printed to stdout::

    READY rtsp://127.0.0.1:8554/stream

so a test fixture can wait for it. SIGTERM/SIGINT stop the server.

Runs under Debian's ``/usr/bin/python3`` with ``python3-gi`` and ``gir1.2-gst-rtsp-server-1.0`` (not inside
a virtual environment, where ``gi`` is usually missing).

H.264 without B-frames is passed through untouched (``--encode auto`` or ``copy``); anything else is
decoded and re-encoded with x264 (``--encode x264``, or ``auto`` when ffprobe reports another codec or
B-frames). Re-encoding costs CPU; passthrough costs nothing but sends the file's own key frame interval,
so clients may wait up to one GOP for their first picture.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def probe_passthrough(path: Path) -> bool:
    """True when the first video stream is H.264 without B-frames (safe to send with live timestamps)."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return False
    out = subprocess.run(
        [ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name,has_b_frames", "-of", "json", str(path)],
        capture_output=True, text=True, check=False, timeout=30,
    )
    try:
        streams = json.loads(out.stdout or "{}").get("streams", [])
    except ValueError:
        return False
    if not streams:
        return False
    s = streams[0]
    return bool(s.get("codec_name") == "h264" and int(s.get("has_b_frames", 1)) == 0)


class Feeder:
    """Reads one file in a loop at real-time pace and pushes H.264 access units to attached clients.

    The feeding pipeline runs on its own (independent of clients) so the stream behaves like a live
    camera. Each RTSP media created for the path contributes one ``appsrc``; buffers are re-timestamped
    there (``do-timestamp``), which is why B-frames (PTS != DTS) are re-encoded away first.
    """

    def __init__(self, path: Path, *, encode: str, fps: float | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._sinks: list[list[Any]] = []  # [appsrc, waiting_for_keyframe]
        self.caps: Gst.Caps | None = None
        self.ready = threading.Event()
        self.failed = False
        self.on_error: Any = None
        location = str(path).replace("\\", "\\\\").replace('"', '\\"')
        passthrough = encode == "copy" or (encode == "auto" and fps is None and probe_passthrough(path))
        rate = ""
        if fps is not None:
            num, den = (round(fps * 1000), 1000)
            rate = f"videorate ! video/x-raw,framerate={num}/{den} ! "
        if passthrough:
            body = "parsebin ! h264parse config-interval=-1"
        else:
            gop = round(fps) if fps is not None else 30
            body = (
                f"decodebin ! videoconvert ! {rate}"
                f"x264enc tune=zerolatency speed-preset=ultrafast bframes=0 key-int-max={gop} "
                "! video/x-h264,profile=constrained-baseline ! h264parse config-interval=-1"
            )
        self.mode = "copy" if passthrough else "x264"
        self.pipeline = Gst.parse_launch(
            f'filesrc location="{location}" ! {body} '
            "! video/x-h264,stream-format=byte-stream,alignment=au "
            "! appsink name=sink sync=true emit-signals=true max-buffers=4 drop=false"
        )
        sink = self.pipeline.get_by_name("sink")
        sink.connect("new-sample", self._on_sample)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self._on_message)

    def start(self) -> None:
        self.pipeline.set_state(Gst.State.PLAYING)

    def stop(self) -> None:
        self.pipeline.set_state(Gst.State.NULL)

    def attach(self, appsrc: Any) -> None:
        if self.caps is not None:
            appsrc.set_property("caps", self.caps)
        with self._lock:
            self._sinks.append([appsrc, True])

    def detach(self, appsrc: Any) -> None:
        with self._lock:
            self._sinks = [s for s in self._sinks if s[0] is not appsrc]

    def _on_sample(self, sink: Any) -> Gst.FlowReturn:
        sample = sink.emit("pull-sample")
        if sample is None:
            return Gst.FlowReturn.OK
        if self.caps is None:
            self.caps = sample.get_caps()
            self.ready.set()
        buf = sample.get_buffer()
        keyframe = not buf.has_flags(Gst.BufferFlags.DELTA_UNIT)
        with self._lock:
            sinks = list(self._sinks)
        if not sinks:
            return Gst.FlowReturn.OK
        out = buf.copy()  # shares the memory; only metadata is new
        out.pts = Gst.CLOCK_TIME_NONE
        out.dts = Gst.CLOCK_TIME_NONE
        for entry in sinks:
            appsrc, waiting = entry
            if waiting and not keyframe:
                continue  # a new client starts at a key frame, not with undecodable deltas
            entry[1] = False
            if appsrc.get_property("caps") is None:
                appsrc.set_property("caps", self.caps)
            ret = appsrc.emit("push-buffer", out)
            if ret != Gst.FlowReturn.OK:
                self.detach(appsrc)
        return Gst.FlowReturn.OK

    def _on_message(self, _bus: Any, message: Any) -> None:
        if message.type == Gst.MessageType.EOS:
            # Loop: a flushing seek back to the start; the appsink keeps pacing in real time.
            self.pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0)
        elif message.type == Gst.MessageType.ERROR:
            err, debug = message.parse_error()
            print(f"ERROR {self.path}: {err.message} ({debug})", file=sys.stderr, flush=True)
            self.failed = True
            if self.on_error is not None:
                self.on_error()


class Factory(GstRtspServer.RTSPMediaFactory):  # type: ignore[misc]
    def __init__(self, feeder: Feeder) -> None:
        super().__init__()
        self.feeder = feeder
        self.set_shared(True)
        self.set_launch(
            "( appsrc name=src is-live=true do-timestamp=true format=time "
            "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )
        self.connect("media-configure", self._on_configure)

    def _on_configure(self, _factory: Any, media: Any) -> None:
        appsrc = media.get_element().get_child_by_name("src")
        self.feeder.attach(appsrc)
        media.connect("unprepared", lambda _m: self.feeder.detach(appsrc))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--path", action="append", dest="paths", default=None,
                        help="mount path, once per file (default /stream, or /stream0.. for several)")
    parser.add_argument("--encode", choices=("auto", "copy", "x264"), default="auto")
    parser.add_argument("--fps", type=float, default=None, help="re-encode at this frame rate")
    args = parser.parse_args(argv)

    files: list[Path] = args.files
    for f in files:
        if not f.is_file():
            print(f"ERROR no such file: {f}", file=sys.stderr, flush=True)
            return 2
    if args.paths is None:
        paths = ["/stream"] if len(files) == 1 else [f"/stream{i}" for i in range(len(files))]
    else:
        paths = [p if p.startswith("/") else "/" + p for p in args.paths]
        if len(paths) != len(files):
            print("ERROR give --path once per file", file=sys.stderr, flush=True)
            return 2

    Gst.init(None)
    loop = GLib.MainLoop()
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    feeders = []
    for f, p in zip(files, paths, strict=True):
        feeder = Feeder(f, encode=args.encode, fps=args.fps)
        feeders.append(feeder)
        mounts.add_factory(p, Factory(feeder))
        feeder.start()
    if server.attach(None) == 0:
        print(f"ERROR cannot listen on {args.host}:{args.port}", file=sys.stderr, flush=True)
        return 2

    def on_signal(*_a: object) -> bool:
        loop.quit()
        return False

    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, on_signal)
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, on_signal)

    def announce() -> bool:
        if all(fd.ready.is_set() for fd in feeders):
            for fd, p in zip(feeders, paths, strict=True):
                print(f"serving {fd.path} on {p} ({fd.mode})", file=sys.stderr, flush=True)
                print(f"READY rtsp://{args.host}:{args.port}{p}", flush=True)
            return False
        return True

    for fd in feeders:
        fd.on_error = loop.quit
    GLib.timeout_add(20, announce)
    try:
        loop.run()
    finally:
        for fd in feeders:
            fd.stop()
    return 3 if any(fd.failed for fd in feeders) else 0


if __name__ == "__main__":
    sys.exit(main())
