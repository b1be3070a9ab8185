"""A fleet on one machine: 3 edge daemons (3 nodes, different configs) against ONE broker, one subscriber
aggregating their line counts across nodes. See docs/deploy.md ("Try it locally").

What it does:

1. starts a private mosquitto on a free port of 127.0.0.1 (the shared one on 1883 is not touched);
2. writes one config per node (``store-a``, ``store-b``, ``store-c``): different cameras (the shared videos
   played as live cameras: looped, real-time pacing), different lines, a small fps cap and
   ``yolo11n_320.onnx``, each with its own state directory, metrics on a free port;
3. starts a subscriber on ``<prefix>/+/+/lines/+/state`` (retained counts, one topic per node, camera and
   line) and ``<prefix>/+/+/events/line_crossing`` (the events, de-duplicated on ``event_id``);
4. runs ``edge run --config <node>.yaml`` for each node as a subprocess for ``--seconds`` of playback,
   then stops them with SIGTERM (each must exit 0 after flushing its outbox);
5. prints per node: the counts its retained state topics show, the line-crossing events received, and the
   node's own counters (stored with the events in its outbox database, read after it stopped),
   then the fleet totals as the subscriber aggregated them.

Exit status 0 when, for every node, the retained counts == its own saved counters == the events received,
and the aggregated total == the sum of the nodes' own totals (> 0); 1 otherwise; 2 when something could
not be started. ``--json`` prints the whole result as one JSON object.

    .venv/bin/python scripts/simulate_fleet.py --seconds 20
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGE_SHARED_DIR", REPO.parent / "shared"))
MODELS = Path(os.environ.get("EDGE_MODELS_DIR", SHARED / "models"))
VIDEOS = Path(os.environ.get("EDGE_DATA_DIR", SHARED / "data")) / "video"
PREFIX = "fleet"

# Three nodes with different cameras and lines (pixel coordinates of the shared videos, as in
# config/demo.yaml). Node c watches the road with a second, lower line and counts everything.
NODES: dict[str, list[dict[str, Any]]] = {
    "store-a": [
        {
            "name": "road",
            "video": "vehicle_counting_input_video.mp4",
            "lines": [
                {"name": "road", "points": [[190, 230], [640, 230]], "classes": ["car", "truck", "bus"]}
            ],
        }
    ],
    "store-b": [
        {
            "name": "plaza",
            "video": "pedestrians.mp4",
            "lines": [{"name": "walkway", "points": [[430, 120], [430, 440]], "classes": ["person"]}],
        }
    ],
    "store-c": [
        {
            "name": "gate",
            "video": "vehicle_counting_input_video.mp4",
            "lines": [{"name": "lower", "points": [[100, 280], [640, 280]], "classes": None}],
        },
        {
            "name": "square",
            "video": "pedestrians.mp4",
            "lines": [{"name": "middle", "points": [[480, 100], [480, 500]], "classes": ["person"]}],
        },
    ],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A private mosquitto on a free port; returns the process and the port once it accepts connections."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    with (work / "mosquitto.log").open("wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([exe, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return proc, port
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    msg = f"mosquitto did not start on port {port}; see {work / 'mosquitto.log'}"
    raise RuntimeError(msg)


def node_config(
    node: str, cameras: list[dict[str, Any]], *, work: Path, port: int, fps: float, model: Path
) -> Path:
    """Write ``<node>.yaml``; returns its path."""
    cams = []
    for cam in cameras:
        lines = []
        for ln in cam["lines"]:
            classes = "" if ln["classes"] is None else f"        classes: [{', '.join(ln['classes'])}]\n"
            lines.append(
                f"      - name: {ln['name']}\n        points: {json.dumps(ln['points'])}\n{classes}"
            )
        cams.append(
            f"  - name: {cam['name']}\n"
            f"    source: {VIDEOS / cam['video']}\n"
            f"    loop: true\n"
            f"    realtime: true\n"
            f"    fps: {fps}\n"
            f"    lines:\n{''.join(lines)}"
        )
    path = work / f"{node}.yaml"
    path.write_text(
        f"node: {node}\n"
        f"state_dir: {work / node}\n"
        f"model:\n  path: {model}\n  providers: [cpu]\n  intra_op_threads: 1\n  batch_size: {len(cameras)}\n"
        f"tracker:\n  track_buffer: 30\n"
        f"mqtt:\n  host: 127.0.0.1\n  port: {port}\n  topic_prefix: {PREFIX}\n"
        f"metrics:\n  host: 127.0.0.1\n  port: 0\n"
        f"logging:\n  level: WARNING\n"
        f"cameras:\n{''.join(cams)}"
    )
    return path


class Aggregator:
    """The fleet-wide subscriber: latest retained counts per (node, camera, line), events per node."""

    def __init__(self, port: int) -> None:
        self.lock = threading.Lock()
        self.states: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.events: dict[str, set[str]] = {}
        self.connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fleet-aggregator")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(10):
            msg = "aggregator could not subscribe"
            raise RuntimeError(msg)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        client.subscribe([(f"{PREFIX}/+/+/lines/+/state", 1), (f"{PREFIX}/+/+/events/line_crossing", 1)])
        self.connected.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        node = parts[1]
        with self.lock:
            if parts[3] == "lines" and parts[-1] == "state":
                self.states[(node, parts[2], parts[4])] = json.loads(msg.payload)
            elif parts[3] == "events":
                self.events.setdefault(node, set()).add(json.loads(msg.payload)["event_id"])

    def per_node(self) -> dict[str, int]:
        """Sum of ``in.total + out.total`` over each node's lines, from the retained state topics."""
        out: dict[str, int] = {}
        with self.lock:
            for (node, _cam, _line), st in self.states.items():
                n = int(st.get("in", {}).get("total", 0)) + int(st.get("out", {}).get("total", 0))
                out[node] = out.get(node, 0) + n
        return out

    def total(self) -> int:
        """The fleet's count, computed the way a dashboard would: one pass over every retained state."""
        with self.lock:
            return sum(
                int(st.get("in", {}).get("total", 0)) + int(st.get("out", {}).get("total", 0))
                for st in self.states.values()
            )

    def events_per_node(self) -> dict[str, int]:
        with self.lock:
            return {node: len(ids) for node, ids in self.events.items()}

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def saved_counts(state_dir: Path) -> int:
    """The node's own line counters as it stored them: in its outbox database (the ``counters`` table,
    committed with the events that changed them), or the ``counts-<camera>.json`` files without MQTT."""
    db = state_dir / "outbox.sqlite3"
    if db.exists():
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            docs = [json.loads(text) for (text,) in conn.execute("SELECT counts FROM counters")]
    else:
        docs = [json.loads(f.read_text())["counts"] for f in state_dir.glob("counts-*.json")]
    total = 0
    for counts in docs:
        for line in counts.get("lines", {}).values():
            for direction in ("in", "out"):
                total += sum(int(n) for n in line.get(direction, {}).values())
    return total


def run(seconds: float, fps: float, model: Path, work: Path, *, quiet: bool) -> dict[str, Any]:
    edge = os.environ.get("EDGE_BIN") or str(Path(sys.executable).with_name("edge"))
    broker, port = start_broker(work)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    agg: Aggregator | None = None
    exit_codes: dict[str, int | None] = {}
    try:
        agg = Aggregator(port)
        for node, cams in NODES.items():
            cfg = node_config(node, cams, work=work, port=port, fps=fps, model=model)
            with (work / f"{node}.log").open("wb") as log:
                procs[node] = subprocess.Popen(
                    [edge, "run", "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT, cwd=work
                )
        time.sleep(seconds)
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for node, p in procs.items():
            try:
                exit_codes[node] = p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                exit_codes[node] = None
        time.sleep(1.0)  # the last retained states and events reach the subscriber
        nodes: dict[str, dict[str, int]] = {}
        retained = agg.per_node()
        events = agg.events_per_node()
        for node in NODES:
            nodes[node] = {
                "retained": retained.get(node, 0),
                "events": events.get(node, 0),
                "saved": saved_counts(work / node),
            }
        aggregated = agg.total()
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        if agg is not None:
            agg.close()
        broker.terminate()
        broker.wait(10)
    node_sum = sum(v["saved"] for v in nodes.values())
    problems = []
    for node, code in exit_codes.items():
        if code != 0:
            tail = (work / f"{node}.log").read_text(errors="replace")[-1500:]
            problems.append(f"{node} exited {code}: {tail}")
    for node, v in nodes.items():
        if not v["retained"] == v["saved"] == v["events"]:
            problems.append(
                f"{node}: retained {v['retained']}, saved {v['saved']}, events {v['events']} differ"
            )
    if aggregated != node_sum:
        problems.append(f"aggregated {aggregated} != sum of nodes {node_sum}")
    if node_sum == 0:
        problems.append("no line was crossed: nothing was counted")
    if not quiet:
        for node, v in nodes.items():
            print(f"{node:<8} retained {v['retained']:>4}  events {v['events']:>4}  saved {v['saved']:>4}")
        print(f"fleet    aggregated {aggregated} (sum of the nodes' own counts: {node_sum})")
    return {
        "nodes": nodes,
        "aggregated": aggregated,
        "sum_of_nodes": node_sum,
        "exit_codes": exit_codes,
        "ok": not problems,
        "problems": problems,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=30.0, help="playback before SIGTERM (default 30)")
    parser.add_argument("--fps", type=float, default=6.0, help="fps cap of every camera (default 6)")
    parser.add_argument("--model", type=Path, default=MODELS / "yolo11n_320.onnx")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep configs, logs and state here")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    for p in (args.model, VIDEOS / "pedestrians.mp4", VIDEOS / "vehicle_counting_input_video.mp4"):
        if not p.exists():
            print(f"simulate_fleet: {p} not found (set EDGE_SHARED_DIR)", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="edge-fleet-") as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        try:
            result = run(args.seconds, args.fps, args.model.resolve(), work, quiet=args.json)
        except RuntimeError as exc:
            print(f"simulate_fleet: {exc}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(result))
    for problem in result["problems"]:
        print(f"simulate_fleet: {problem}", file=sys.stderr)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
