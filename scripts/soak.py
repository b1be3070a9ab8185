#!/usr/bin/env python3
"""Soak: the real daemon for N minutes with scheduled faults, and a ledger of what it promised.

Runs ``edge run`` against real RTSP cameras (GStreamer, ``edge.benchmarks.rtsp``) and a private mosquitto on a
free port (persistence on; nothing touches the broker on 127.0.0.1:1883), while a persistent-session QoS 1
consumer records everything. Scheduled faults, repeating through the run:

* ``rtsp_kill``: the RTSP server is SIGKILLed and restarted on the same port 5 s later;
* ``broker_restart``: mosquitto is stopped (SIGTERM) and started again 3 s later;
* ``sighup``: a zone's ``loiter_seconds`` is changed in the config and edge gets SIGHUP;
* ``sigkill``: edge is SIGKILLed and started again (only in the first minutes, so that one process lives
  from minute 5 to the end and its memory can be compared).

Report (``--json`` file and a summary on stdout):

* events created (per run and camera: the highest ``seq``) vs received (distinct ``event_id``), gaps
  (created but never received), duplicates (raw redeliveries);
* counters vs events: each line's final retained total per direction vs the crossing events received, and
  totals carried by two different events (both must be 0);
* RSS, threads and open file descriptors of the daemon every ``--sample-s`` seconds;
* recovery time of every fault: until the daemon is ``online`` again on MQTT (availability and cameras).

Usage::

    .venv/bin/python scripts/soak.py --minutes 30 --json soak.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.benchmarks.rtsp import RtspServer  # noqa: E402

NODE = "soak"
CAMERAS = ("north", "south")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """A private mosquitto with persistence, restartable on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {workdir}/",
            "autosave_interval 1",
            "max_queued_messages 0",
            f"log_dest file {workdir}/mosquitto.log",
        ]
        if os.geteuid() == 0:
            import getpass

            lines.append(f"user {getpass.getuser()}")
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
                return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


@dataclass
class Ledger:
    """Everything the consumer received, thread-safe."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    raw_events: int = 0
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # event_id -> event
    retained: dict[str, bytes] = field(default_factory=dict)  # topic -> last payload (state topics)
    state_changes: list[tuple[float, str, str]] = field(default_factory=list)  # (t, topic, payload)

    def on_message(self, topic: str, payload: bytes) -> None:
        now = time.monotonic()
        with self.lock:
            if "/events/" in topic:
                self.raw_events += 1
                ev = json.loads(payload)
                self.events.setdefault(ev["event_id"], ev)
            else:
                self.retained[topic] = payload
                if topic.endswith(("/availability", "/status")):
                    self.state_changes.append((now, topic, payload.decode(errors="replace")))

    def online(self) -> bool:
        """Availability online and every camera online, as the last messages say."""
        with self.lock:
            if self.retained.get(f"edge/{NODE}/availability") != b"online":
                return False
            return all(self.retained.get(f"edge/{NODE}/{c}/status") == b"online" for c in CAMERAS)


def start_consumer(port: int, ledger: Ledger) -> Any:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="soak-consumer", clean_session=False)
    client.reconnect_delay_set(0.2, 1)

    def on_connect(c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            c.subscribe(f"edge/{NODE}/#", qos=1)

    client.on_connect = on_connect
    client.on_message = lambda _c, _u, msg: ledger.on_message(msg.topic, bytes(msg.payload))
    client.connect("127.0.0.1", port, keepalive=5)
    client.loop_start()
    return client


def make_clip(src: Path, dst: Path) -> Path:
    """H.264 baseline 640x360 at 10 fps, one key frame a second: passed through by the RTSP server."""
    if not dst.exists():
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-t", "60", "-vf", "scale=640:360,fps=10", "-an",
             "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "baseline", "-pix_fmt", "yuv420p",
             "-g", "10", "-keyint_min", "10", "-sc_threshold", "0", str(dst)],
            check=True, timeout=300,
        )  # fmt: skip
    return dst


def write_config(path: Path, *, urls: list[str], broker_port: int, metrics_port: int, state: Path,
                 model: Path, loiter: float) -> None:  # fmt: skip
    cams = "".join(
        f"""
  - name: {name}
    source: {url}
    fps: 5
    stall_timeout: 3
    coordinates: normalized
    lines:
      - {{name: walkway, points: [[0.45, 0.2], [0.45, 0.82]], classes: [person]}}
    zones:
      - {{name: plaza, polygon: [[0.1, 0.4], [0.9, 0.4], [0.9, 0.95], [0.1, 0.95]], loiter_seconds: {loiter}}}
"""
        for name, url in zip(CAMERAS, urls, strict=True)
    )
    path.write_text(
        f"""node: {NODE}
state_dir: {state}
shutdown_timeout: 15
model: {{path: {model}, classes: [person], batch_size: 2}}
mqtt: {{host: 127.0.0.1, port: {broker_port}, keepalive: 5}}
metrics: {{host: 127.0.0.1, port: {metrics_port}}}
cameras:{cams}""",
        encoding="utf-8",
    )


def proc_sample(pid: int) -> dict[str, float] | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_mb": int(fields["VmRSS"].split()[0]) / 1024.0,
        "threads": int(fields["Threads"]),
        "fds": fds,
    }


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(args.workdir)
        self.work.mkdir(parents=True, exist_ok=True)
        self.state = self.work / "state"
        self.config = self.work / "edge.yaml"
        self.stderr_path = self.work / "edge.stderr"
        self.ledger = Ledger()
        self.samples: list[dict[str, float]] = []
        self.faults: list[dict[str, Any]] = []
        self.daemon: subprocess.Popen[bytes] | None = None
        self.daemon_starts = 0
        self.metrics_port = free_port()
        self.loiter = 30.0

    def spawn(self) -> None:
        with self.stderr_path.open("a") as err:
            self.daemon = subprocess.Popen(
                [sys.executable, "-m", "edge", "run", "--config", str(self.config)],
                stdout=subprocess.DEVNULL, stderr=err, cwd=REPO,
            )  # fmt: skip
        self.daemon_starts += 1

    def wait_online(self, since: float, timeout: float = 120.0) -> float | None:
        """Seconds from ``since`` until availability and every camera are online again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ledger.online():
                return time.monotonic() - since
            time.sleep(0.1)
        return None

    def fault(self, kind: str, t0: float) -> None:
        a, start = self.args, time.monotonic()
        if kind == "rtsp_kill":
            self.rtsp.stop()
            self._went_offline(lambda: not self.ledger.online(), 15.0)
            time.sleep(5.0)
            self.rtsp.start()
        elif kind == "broker_restart":
            self.broker.stop()
            with self.ledger.lock:  # the consumer cannot see anything until the broker is back
                self.ledger.retained.pop(f"edge/{NODE}/availability", None)
            time.sleep(3.0)
            self.broker.start()
        elif kind == "sighup":
            self.loiter = 45.0 if self.loiter == 30.0 else 30.0
            self.write_config()
            assert self.daemon is not None
            applied = self._reloads()
            self.daemon.send_signal(signal.SIGHUP)
            self._went_offline(lambda: self._reloads() > applied, 30.0)  # recovery: the reload is applied
        elif kind == "sigkill":
            assert self.daemon is not None
            self.daemon.send_signal(signal.SIGKILL)
            self.daemon.wait()
            with self.ledger.lock:
                self.ledger.retained.pop(f"edge/{NODE}/availability", None)
            offline = f"edge/{NODE}/availability"
            self._went_offline(lambda: self.ledger.retained.get(offline) == b"offline", 15)
            self.spawn()
        restored = start if kind == "sighup" else time.monotonic()
        recovery = self.wait_online(restored, timeout=a.recovery_timeout_s)
        self.faults.append({
            "kind": kind, "at_s": round(start - t0, 1),
            "recovery_s": None if recovery is None else round(recovery, 2),
        })  # fmt: skip
        took = "never" if recovery is None else f"{recovery:.1f} s"
        print(f"[{start - t0:7.1f}s] {kind}: recovered in {took}", flush=True)

    def _reloads(self) -> int:
        try:
            return self.stderr_path.read_text(errors="replace").count("reload: configuration applied")
        except OSError:
            return 0

    def _went_offline(self, predicate: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not predicate():
            time.sleep(0.1)

    def write_config(self) -> None:
        write_config(
            self.config, urls=self.rtsp.urls(), broker_port=self.broker.port, metrics_port=self.metrics_port,
            state=self.state, model=Path(self.args.model), loiter=self.loiter,
        )  # fmt: skip

    def schedule(self, minutes: float) -> list[tuple[float, str]]:
        total = minutes * 60.0
        plan: list[tuple[float, str]] = []
        for kind, first, every in (("rtsp_kill", 40.0, 110.0), ("broker_restart", 70.0, 130.0),
                                   ("sighup", 55.0, 90.0)):  # fmt: skip
            t = first
            while t < total - 25.0:
                plan.append((t, kind))
                t += every
        kill_until = min(total - 30.0, 240.0)  # one process lives from minute 4 on: its memory is compared
        plan += [(t, "sigkill") for t in (95.0, 190.0) if t < kill_until]
        return sorted(plan)

    def run(self) -> dict[str, Any]:
        a = self.args
        clip = make_clip(Path(a.video), self.work / "soak_clip.mp4")
        self.broker = Broker(self.work / "broker")
        self.broker.start()
        consumer = start_consumer(self.broker.port, self.ledger)
        self.rtsp = RtspServer([clip, clip], encode="copy", log_dir=self.work).start()
        self.write_config()
        self.spawn()
        t0 = time.monotonic()
        first = self.wait_online(t0, timeout=180.0)
        print(f"daemon online after {first} s", flush=True)
        plan = self.schedule(a.minutes)
        end = t0 + a.minutes * 60.0
        next_sample = t0
        try:
            while time.monotonic() < end:
                now = time.monotonic()
                if now >= next_sample:
                    next_sample += a.sample_s
                    if self.daemon is not None and (s := proc_sample(self.daemon.pid)) is not None:
                        self.samples.append({"t_s": round(now - t0, 1), "pid": self.daemon.pid, **s})
                if plan and now - t0 >= plan[0][0]:
                    _, kind = plan.pop(0)
                    self.fault(kind, t0)
                    continue
                if self.daemon is not None and self.daemon.poll() is not None:
                    print(f"edge exited on its own with {self.daemon.returncode}; restarting", flush=True)
                    self.faults.append({"kind": "unexpected_exit", "at_s": round(now - t0, 1),
                                        "rc": self.daemon.returncode})  # fmt: skip
                    self.spawn()
                time.sleep(0.2)
            exit_code = self.stop_daemon()
        finally:
            if self.daemon is not None and self.daemon.poll() is None:
                self.daemon.kill()
            self.rtsp.stop(crash=False)
            time.sleep(3.0)  # deliveries still on their way to the consumer
            consumer.disconnect()
            consumer.loop_stop()
            self.broker.stop()
        return self.report(exit_code, first)

    def stop_daemon(self) -> int | None:
        assert self.daemon is not None
        self.daemon.send_signal(signal.SIGTERM)
        try:
            return self.daemon.wait(60)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            return None

    def report(self, exit_code: int | None, first_online: float | None) -> dict[str, Any]:
        led = self.ledger
        created: dict[tuple[str, str], int] = defaultdict(int)
        seqs: dict[tuple[str, str], set[int]] = defaultdict(set)
        crossings: dict[tuple[str, str, str], list[int]] = defaultdict(list)
        with led.lock:
            events = list(led.events.values())
            retained = dict(led.retained)
            raw = led.raw_events
        for ev in events:
            key = (str(ev["run_id"]), str(ev["camera"]))
            created[key] = max(created[key], int(ev["seq"]) + 1)  # seq counts from 0 per run and camera
            seqs[key].add(int(ev["seq"]))
            if ev["type"] == "line_crossing":
                d = str(ev["direction"])
                crossings[(str(ev["camera"]), str(ev["line"]), d)].append(int(ev["counts_all"][d]))
        n_created = sum(created.values())
        gaps = sum(created[k] - len(seqs[k]) for k in created)
        mismatches, repeated, lines = 0, 0, []
        for cam in CAMERAS:
            payload = retained.get(f"edge/{NODE}/{cam}/lines/walkway/state")
            state = json.loads(payload) if payload else {"in": {"total": 0}, "out": {"total": 0}}
            for d in ("in", "out"):
                totals = crossings.get((cam, "walkway", d), [])
                retained_total = int(state[d]["total"])
                mismatch = retained_total != len(totals)
                twice = len(totals) - len(set(totals))
                mismatches += int(mismatch)
                repeated += twice
                lines.append({"camera": cam, "direction": d, "events": len(totals),
                              "retained_total": retained_total, "totals_carried_twice": twice})  # fmt: skip
        left = None
        with contextlib.suppress(sqlite3.Error):
            db = sqlite3.connect(f"file:{self.state / 'outbox.sqlite3'}?mode=ro", uri=True)
            left = int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
            db.close()
        rss = _rss_compare(self.samples, self.args.minutes)
        by_kind: dict[str, list[float]] = defaultdict(list)
        for f in self.faults:
            if f.get("recovery_s") is not None:
                by_kind[f["kind"]].append(float(f["recovery_s"]))
        return {
            "minutes": self.args.minutes,
            "first_online_s": first_online,
            "daemon_starts": self.daemon_starts,
            "final_exit_code": exit_code,
            "events_created": n_created,
            "events_received": len(events),
            "gaps": gaps,
            "duplicates": raw - len(events),
            "left_in_outbox": left,
            "count_mismatches": mismatches,
            "totals_carried_twice": repeated,
            "lines": lines,
            "faults": self.faults,
            "unrecovered_faults": sum(1 for f in self.faults if f.get("recovery_s") is None),
            "recovery_s": {
                k: {"n": len(v), "median": statistics.median(v), "max": max(v)} for k, v in by_kind.items()
            },
            "rss": rss,
            "samples": self.samples,
        }  # fmt: skip


def _rss_compare(samples: list[dict[str, float]], minutes: float) -> dict[str, Any]:
    """RSS of the last process at minute 5 (or a third in) and one minute before the end."""
    if not samples:
        return {}
    last_pid = samples[-1]["pid"]
    mine = [s for s in samples if s["pid"] == last_pid]
    early_t = min(300.0, minutes * 60.0 / 3)
    late_t = minutes * 60.0 - 60.0
    early = min(mine, key=lambda s: abs(s["t_s"] - early_t))
    late = min(mine, key=lambda s: abs(s["t_s"] - late_t))
    change = (late["rss_mb"] - early["rss_mb"]) / early["rss_mb"] * 100.0
    return {
        "early": early, "late": late, "change_pct": round(change, 2),
        "threads_change": late["threads"] - early["threads"], "fds_change": late["fds"] - early["fds"],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    shared = REPO.parent / "shared"
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--workdir", default="/tmp/edge-soak")  # noqa: S108 - a scratch dir the user can change
    p.add_argument("--json", help="write the full report here")
    models = Path(os.environ.get("EDGE_MODELS", shared / "models"))
    p.add_argument("--model", default=str(models / "yolo11n_320.onnx"))
    p.add_argument("--video", default=str(shared / "data" / "video" / "pedestrians.mp4"))
    p.add_argument("--sample-s", type=float, default=10.0, help="seconds between RSS/threads/fds samples")
    p.add_argument("--recovery-timeout-s", type=float, default=90.0)
    args = p.parse_args(argv)
    report = Soak(args).run()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    summary = {k: v for k, v in report.items() if k not in ("samples", "faults")}
    print(json.dumps(summary, indent=2))
    ok = report["gaps"] == 0 and report["count_mismatches"] == 0 and report["totals_carried_twice"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
